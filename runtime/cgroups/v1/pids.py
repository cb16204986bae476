"""pids controller: pids.max ("max" = unlimited), pids.current, pids.events ("max N": forks
refused at the limit). The files are the same on v1 and v2, so v2/pids.py reuses this module."""

from __future__ import annotations

from .. import fs

NAME = "pids"
SECTION = "pids"


def needed(res) -> bool:
    return res.pids_limit is not None


def apply(directory: str, res) -> list[str]:
    limit = res.pids_limit
    fs.write_value(directory, "pids.max", "max" if limit in (-1, 0) else limit)
    return []


def stats(directory: str) -> dict | None:
    current = fs.read_int(directory, "pids.current")
    if current is None:
        return None
    events = fs.read_keyed(directory, "pids.events") or {}
    return {
        "current": current,
        "limit": fs.read_int(directory, "pids.max"),
        "max_hits": events.get("max", 0),
        "peak": fs.read_int(directory, "pids.peak"),
    }
