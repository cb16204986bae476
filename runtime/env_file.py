"""Docker's ``--env-file``: one variable a line, read the way `docker run` reads it.

``KEY=VALUE`` is taken verbatim (no quote processing, no trimming of the value), ``KEY`` alone
takes the caller's value (and is left out when the caller has none), lines whose first
non-blank character is ``#`` and blank lines are skipped; a name with a blank in it is an error.
"""

from __future__ import annotations

import os

from isoinspect.runtime.errors import UsageError

_BLANKS = " \t"


def read_env_file(path: str) -> list[str]:
    """The ``KEY=VALUE`` entries of the file at ``path`` (UsageError on a bad file)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"--env-file {path}: {exc.strerror}") from None
    return parse_env_lines(data, path)


def parse_env_lines(data: bytes, path: str = "-") -> list[str]:
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        data = data[3:]
    result = []
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"env file {path} contains invalid utf8 bytes at line "
                             f"{number}") from None
        line = text.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.lstrip(_BLANKS)
        if any(blank in name for blank in _BLANKS):
            raise UsageError(f"invalid env file {path}: variable {name!r} contains whitespaces")
        if not name:
            raise UsageError(f"invalid env file {path}: no variable name on line {line!r}")
        if sep:
            result.append(f"{name}={value}")
        elif name in os.environ:
            result.append(f"{name}={os.environ[name]}")
    return result
