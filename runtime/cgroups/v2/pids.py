"""v2 pids controller: pids.max, pids.current and pids.events are the same files as on v1."""

from __future__ import annotations

from ..v1.pids import NAME, SECTION, apply, needed, stats

__all__ = ["NAME", "SECTION", "apply", "needed", "stats"]
