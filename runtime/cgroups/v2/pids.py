"""v2 pids controller: pids.max, pids.current and pids.events are the same files as on v1."""

from __future__ import annotations

from ..v1.pids import NAME, apply, needed

__all__ = ["NAME", "apply", "needed"]
