"""v2 cpuset controller: cpuset.cpus / cpuset.mems (empty = inherit, unlike v1, so no copying)
and their .effective values."""

from __future__ import annotations

from .. import fs
# cpuset.cpus and cpuset.mems are written as on v1 (v2 needs no copying from the parent).
from ..v1.cpuset import apply, needed

NAME = "cpuset"
SECTION = "cpuset"
__all__ = ["NAME", "SECTION", "apply", "needed", "stats"]


def stats(directory: str) -> dict | None:
    return fs.read_fields(directory, (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems"),
                                      ("effective_cpus", "cpuset.cpus.effective"),
                                      ("effective_mems", "cpuset.mems.effective")))
