"""Comma-separated choices on a bench command line ("runc,host"), checked against the known ones.

One parser for every bench command that takes a list of names (targets, tests), so each refuses
an unknown name with the same one-line usage error listing what is known.
"""

from __future__ import annotations

from typing import Sequence

from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError


def parse_names(text: str | None, known: Sequence[str], what: str,
                unique: bool = False) -> list[str]:
    """'a,b' -> ['a', 'b'] in the order given (all of ``known`` when empty); UsageError for an
    unknown name or an empty list, and with ``unique`` for a name given twice (otherwise a
    repeat is dropped)."""
    if not text:
        return list(known)
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what}(s) {', '.join(unknown) or repr(text)}; known: "
                         f"{', '.join(known)}", exit_code=USAGE_EXIT_CODE)
    if unique and len(set(names)) != len(names):
        raise UsageError(f"a {what} is named twice: {text!r}", exit_code=USAGE_EXIT_CODE)
    return list(dict.fromkeys(names))
