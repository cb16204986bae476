"""JSON in and out without ``import json``, for the commands containerd runs per container.

``import json`` imports ``re`` (and with it enum, functools, collections): ~5 ms of the ~15 ms
an ``isoinspect-runc state`` spends importing. The parsing and string escaping are C code in
``_json`` anyway; this module drives them directly: ``loads`` through the C scanner (the one
``json.loads`` uses), ``dumps`` with ``json.dumps``' output for the plain values a state file
or the OCI state holds (dict with str keys, list, str, int, float, bool, None). Anything else,
or a Python without ``_json``, goes through the json module. ``_json`` itself is loaded on
first need: a string of printable ASCII without a quote or backslash (names, ids, numbers:
an event line of ``rm``) is its own JSON body, so such a dumps loads nothing (~0.5 ms).
"""

from __future__ import annotations

_json = None  # the C accelerator module, once _accelerator() has loaded it
_scan = None  # its scanner, made with _Context

class _Context:
    """The attributes the C scanner reads from a JSONDecoder (json.decoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


def _accelerator():
    """``_json`` (None on a Python without it), imported and its scanner made once."""
    global _json, _scan
    if _json is None:
        try:
            import _json as module
        except ImportError:  # pragma: no cover - CPython always has it
            return None
        _scan = module.make_scanner(_Context())
        _json = module
    return _json


def _quote(text: str) -> str:
    """json.dumps(text) (ensure_ascii): as it is between quotes when that is already JSON."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    accelerator = _accelerator()
    if accelerator is None:  # pragma: no cover - CPython always has it
        from json.encoder import py_encode_basestring_ascii
        return py_encode_basestring_ascii(text)
    return accelerator.encode_basestring_ascii(text)


def loads(text: str | bytes):
    """json.loads for a whole document; ValueError (json.JSONDecodeError's base) if it is
    not one."""
    if isinstance(text, bytes):
        text = text.decode()
    if _accelerator() is None:
        import json
        return json.loads(text)
    start = _skip_space(text, 0)
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"Expecting value: char {start}") from None
    if _skip_space(text, end) != len(text):
        raise ValueError(f"Extra data: char {end}")
    return value


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def dumps(value, indent: int | None = None) -> str:
    """json.dumps(value, indent=indent), byte for byte, for plain values."""
    parts: list[str] = []
    _dump(value, parts, indent, 0)
    return "".join(parts)


def _dump(value, parts: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, str):
        parts.append(_quote(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, float) and value == value and value not in (float("inf"),
                                                                       float("-inf")):
        parts.append(float.__repr__(value))
    elif isinstance(value, dict) and all(isinstance(key, str) for key in value):
        _dump_items([(_quote(k) + ": ", v) for k, v in value.items()],
                    "{", "}", parts, indent, depth)
    elif isinstance(value, (list, tuple)):
        _dump_items([("", v) for v in value], "[", "]", parts, indent, depth)
    else:  # NaN, non-str keys, other types: the json module's rules and errors
        import json
        text = json.dumps(value, indent=indent)
        if indent is not None and depth:
            text = text.replace("\n", "\n" + " " * (indent * depth))
        parts.append(text)


def _dump_items(items: list[tuple[str, object]], opening: str, closing: str,
                parts: list[str], indent: int | None, depth: int) -> None:
    if not items:
        parts.append(opening + closing)
        return
    if indent is None:
        inner, separator, outer = "", ", ", ""
    else:
        inner = "\n" + " " * (indent * (depth + 1))
        separator, outer = "," + inner, "\n" + " " * (indent * depth)
    parts.append(opening + inner)
    for number, (prefix, item) in enumerate(items):
        if number:
            parts.append(separator)
        parts.append(prefix)
        _dump(item, parts, indent, depth + 1)
    parts.append(outer + closing)
