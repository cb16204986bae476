"""Stand-in for program.Figure until u/workload is merged (the brief's contract; removed then)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    test: str
    status: str
    ops: int
    ns_per_op: float
    value: float
    unit: str
    reason: str
