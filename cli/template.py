"""Docker's ``--format``: a small subset of Go templates, parsed here (no jinja2, no click).

Supported: text; ``{{.}}``; ``{{.Field}}`` and ``{{.A.B}}``; ``{{json .X}}``, ``{{upper .X}}``,
``{{lower .X}}``; a ``table`` prefix (a header row, columns aligned at tabs); the literal
escapes ``\\t`` and ``\\n`` (as the docker CLI replaces them); ``json`` alone for one JSON object
per line (``docker ps --format json``). A field that does not exist is an error, as in Docker.
``ps`` prints through this on its click-free fast path, so it imports neither typing nor
dataclasses (~14 ms together), nor re (parsed by hand) nor json (only for ``{{json}}``).
"""

from __future__ import annotations

# collections.abc's classes, from the module os has already loaded: collections.abc itself
# imports collections (~1.5 ms on ps's fast path)
from _collections_abc import Callable, Mapping, Sequence

from isoinspect.runtime.errors import DAEMON_EXIT_CODE, UsageError



def _json(value: object) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


_FUNCTIONS: dict[str, Callable[[object], str]] = {
    "json": _json,
    "upper": lambda value: _text(value).upper(),
    "lower": lambda value: _text(value).lower(),
}


class TemplateError(UsageError):
    """A --format the template cannot parse or fill; Docker exits 1 for these."""

    def __init__(self, message: str) -> None:
        super().__init__(f"template: {message}", exit_code=DAEMON_EXIT_CODE)


class Action:
    """One ``{{...}}``: an optional function applied to a field path (() is ``.``)."""

    __slots__ = ("function", "path")

    def __init__(self, function: str | None, path: tuple[str, ...]) -> None:
        self.function, self.path = function, path

    def __repr__(self) -> str:
        return f"Action({self.function!r}, {self.path!r})"


class Template:
    """A parsed --format: literal strings and actions in order; ``table`` adds a header."""

    __slots__ = ("parts", "table", "source")

    def __init__(self, parts: tuple[str | Action, ...], table: bool, source: str) -> None:
        self.parts, self.table, self.source = parts, table, source

    def __repr__(self) -> str:
        return f"Template({self.parts!r}, {self.table!r}, {self.source!r})"


def _parse_path(text: str, source: str) -> tuple[str, ...]:
    if text == ".":
        return ()
    if not text.startswith(".") or not all(_is_name(part) for part in text[1:].split(".")):
        raise TemplateError(f"{source!r}: unsupported field {text!r} (use .Field or .A.B)")
    return tuple(text[1:].split("."))


def _is_name(part: str) -> bool:
    """[A-Za-z_][A-Za-z0-9_]* (ASCII, as Go's field names in a template)."""
    return bool(part) and part.isascii() and not part[0].isdigit() and \
        all(c.isalnum() or c == "_" for c in part)


def _actions(text: str):
    """(start, end, inner) of each ``{{...}}``, as the pattern ``{{-?\\s*(.*?)\\s*-?}}``
    finds them: a ``{{-`` / ``-}}`` trim marker and the spaces inside dropped, no line break
    in what is left."""
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            return
        end = text.find("}}", start + 2)
        if end < 0:
            return
        inner = text[start + 2:end]
        inner = (inner[1:] if inner.startswith("-") else inner).lstrip()
        inner = (inner[:-1] if inner.endswith("-") else inner).rstrip()
        if "\n" in inner:  # not an action here: look again one character on
            position = start + 1
            continue
        yield start, end + 2, inner
        position = end + 2


def _parse_action(text: str, source: str) -> Action:
    words = text.split()
    if len(words) == 1:
        return Action(None, _parse_path(words[0], source))
    if len(words) == 2 and words[0] in _FUNCTIONS:
        return Action(words[0], _parse_path(words[1], source))
    raise TemplateError(f"{source!r}: unsupported action {{{{{text}}}}} (fields, "
                        f"{', '.join(_FUNCTIONS)})")


def parse(source: str) -> Template:
    """Parse a --format value; ``json`` alone is ``{{json .}}``."""
    text = source.replace("\\t", "\t").replace("\\n", "\n")
    table = text.startswith("table")
    if table:
        text = text[len("table"):].lstrip(" ")
    if text.strip() == "json":
        text = "{{json .}}"
    parts: list[str | Action] = []
    position = 0
    for start, end, inner in _actions(text):
        if start > position:
            parts.append(text[position:start])
        parts.append(_parse_action(inner, source))
        position = end
    if position < len(text):
        parts.append(text[position:])
    if "{{" in "".join(p for p in parts if isinstance(p, str)):
        raise TemplateError(f"{source!r}: unclosed action")
    return Template(tuple(parts), table, source)


def _text(value: object) -> str:
    """Go's default printing: true/false, <nil>, [a b] for lists, map[k:v] for maps."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _lookup(obj: object, path: tuple[str, ...], source: str) -> object:
    for name in path:
        if not isinstance(obj, Mapping) or name not in obj:
            raise TemplateError(f"{source!r}: can't evaluate field {name}")
        obj = obj[name]
    return obj


def render(template: Template, obj: Mapping[str, object]) -> str:
    """Fill the template with one object (a row of ``ps``, one ``inspect`` result...)."""
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _lookup(obj, part.path, template.source)
        out.append(_FUNCTIONS[part.function](value) if part.function else _text(value))
    return "".join(out)


def _header(template: Template, headers: Mapping[str, str]) -> str:
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        elif not part.path:
            out.append("JSON" if part.function == "json" else "")
        else:
            out.append(headers.get(part.path[0], part.path[-1].upper()))
    return "".join(out)


def align(lines: Sequence[str], min_width: int = 0) -> list[str]:
    """Columns at tabs padded to the widest cell plus 3 spaces, at least ``min_width``
    (Docker's tabwriter: 0 for listings, 20 for ``top``)."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths.get(index, min_width - 3), len(cell))
    return ["".join(cell.ljust(widths[i] + 3) if i < len(row) - 1 else cell
                    for i, cell in enumerate(row)).rstrip() for row in rows]


def format_rows(source: str, rows: Sequence[Mapping[str, object]],
                headers: Mapping[str, str]) -> list[str]:
    """The output lines for ``--format source`` over ``rows`` (headers: field -> column name)."""
    template = parse(source)
    lines = [render(template, row) for row in rows]
    if template.table:
        return align([_header(template, headers), *lines])
    return lines
