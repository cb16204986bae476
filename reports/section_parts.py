"""What the overhead, density and exposure sections share: their frame, the "in this run"
wording, intervals as text, and the chart scaffolding of charts.py."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from isoinspect.reports.render import Section
from isoinspect.reports.tables import factor, missing


def frame_of(frames: dict, runs: Sequence[dict], name: str, build: Callable):
    """``frames[name]``, built from ``runs`` (the report's merged view) the first time."""
    if name not in frames:
        frames[name] = build(runs)
    return frames[name]


def filled(section: Section, frame, empty: str, *, table: Callable, findings: Callable,
           notes: Callable, chart: Callable) -> Section:
    """``section`` with its table, findings, notes and chart made from ``frame``, or its
    ``empty`` text when the frame has no row (each callable takes the frame)."""
    if frame.empty:
        section.empty = empty
        return section
    section.tables = [table(frame)]
    section.findings = findings(frame)
    section.notes = notes(frame)
    drawn = chart(frame)
    section.charts = [drawn] if drawn else []
    return section


def where(runs: Sequence[dict]) -> str:
    """'this run' or 'these runs', as the other sections say it."""
    sources = runs[0].get("sources") if runs else None
    return "these runs" if (sources and len(sources) > 1) or len(runs) > 1 else "this run"


def real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not missing(value)


def interval(ratio: Any, lo: Any, hi: Any) -> str:
    """``1.52× [1.11, 2.29]``; without a CI, the ratio alone; '–' without a ratio."""
    if not real(ratio):
        return "–"
    if real(lo) and real(hi):
        return f"{factor(ratio)}× [{factor(lo)}, {factor(hi)}]"
    return f"{factor(ratio)}×"


def mib(value: Any) -> str:
    """Bytes as MiB with about three significant digits; '–' when absent."""
    if not real(value):
        return "–"
    value /= 2 ** 20
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 \
        else f"{value:.2f}"


def short(text: str, limit: int = 70) -> str:
    """A reason in at most ``limit`` characters (the full text goes into a tooltip): its first
    clause when that fits, else its beginning."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    for mark in (" (", ": ", "; "):
        clause = text.split(mark, 1)[0]
        if 8 <= len(clause) <= limit:
            return clause + "…"
    return text[:limit - 1].rstrip() + "…"


def error_bars(values: list[float], lows: list[Any], highs: list[Any]) -> list[list[float]]:
    """matplotlib's [[below], [above]] from CI bounds (none where a bound is missing)."""
    below = [max(v - lo, 0.0) if real(lo) else 0.0 for v, lo in zip(values, lows)]
    above = [max(hi - v, 0.0) if real(hi) else 0.0 for v, hi in zip(values, highs)]
    return [below, above]
