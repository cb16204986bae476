"""pids controller: pids.max ("max" = unlimited), pids.current, pids.events ("max N": forks
refused at the limit). The files are the same on v1 and v2, so v2/pids.py reuses this module."""

from __future__ import annotations

from .. import fs

NAME = "pids"


def needed(res) -> bool:
    return res.pids_limit is not None


def apply(directory: str, res) -> list[str]:
    limit = res.pids_limit
    fs.write_value(directory, "pids.max", "max" if limit in (-1, 0) else limit)
    return []
