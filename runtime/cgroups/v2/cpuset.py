"""v2 cpuset controller: cpuset.cpus / cpuset.mems (empty = inherit, unlike v1, so no copying)
and their .effective values."""

from __future__ import annotations

# cpuset.cpus and cpuset.mems are written as on v1 (v2 needs no copying from the parent).
from ..v1.cpuset import apply, needed

NAME = "cpuset"
__all__ = ["NAME", "apply", "needed"]
