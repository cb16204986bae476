"""Docker's time formats: RFC 3339 with fixed nanoseconds out, its ``--since`` forms in.

``logs -t`` prints ``2026-12-06T21:04:13.685842477Z`` (Docker's RFC3339NanoFixed, UTC), and
``--since``/``--until`` accept what the docker CLI does (api/types/time.GetTimestamp): a
duration before now (``10m``, ``1h30m``, ``1.5s``), Unix seconds with an optional fraction, or an
RFC 3339 date-time, complete or cut after the day, hour or minute, local time without a zone.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from isoinspect.runtime.errors import IsoinspectError

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)")
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?")


def rfc3339_nano(time_ns: int) -> str:
    """UTC, always nine fraction digits (sorts as text, lines up in columns)."""
    seconds, fraction = divmod(time_ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def _duration_ns(text: str) -> int | None:
    """Go's time.ParseDuration for positive durations; None if ``text`` is not one."""
    if not text or _DURATION.sub("", text):
        return None
    total = 0.0
    for match in _DURATION.finditer(text):
        number = re.match(r"[\d.]+", match.group()).group()
        total += float(number) * _DURATION_UNITS[match.group()[len(number):]]
    return int(total)


def parse_time(value: str, flag: str, now_ns: int | None = None) -> int:
    """``--since``/``--until`` as ns since the epoch; Docker's message (exit 1) otherwise."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    duration = _duration_ns(value)
    if duration is not None:
        return now_ns - duration
    unix = _UNIX.fullmatch(value)
    if unix:
        return int(unix.group(1)) * 10**9 + int((unix.group(2) or "0").ljust(9, "0"))
    if _DATE.fullmatch(value):
        text = value.replace("Z", "+00:00")
        fraction = re.search(r"\.(\d+)", text)
        nanos = int(fraction.group(1).ljust(9, "0")) if fraction else 0
        if fraction:
            text = text.replace(fraction.group(0), "")
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.astimezone()  # local time, as Docker reads a date without a zone
        return int(stamp.timestamp()) * 10**9 + nanos
    raise IsoinspectError(f'invalid value for "{flag}": failed to parse value as time or '
                          f'duration: "{value}"', exit_code=1)
