"""Verify results (RunRecord kind "verify"), the tolerances they are judged with, and the table.

Tolerances are derived from how the kernel enforces each limit (DESIGN §4):
* CFS quota: a cgroup may overrun its quota by about 1 ms per CPU per 100 ms period, and a
  measuring window that does not start on a period boundary can see one extra period's quota;
* memory: charges are batched per CPU (64 pages), so usage may pass the limit by that much;
* pids.max and cpusets are exact.

A result is a record row (measured, expected, tolerance, evidence of one limit on one runtime),
not a host fact, so it stays the RunRecord's dict; its status is the diagnostics ``Status``
(runtime.diagnostics) written as verify's verdict word: PASS / FAIL / UNSUPPORTED / ERROR.
"""

from __future__ import annotations

import os

from isoinspect.runtime.diagnostics import Status

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MEMCG_CHARGE_BATCH = 64          # pages pre-charged per CPU (include/linux/memcontrol.h)
CFS_OVERRUN_S = 0.001            # quota overrun per CPU per period
SAMPLING_MARGIN = 0.02           # share of the expected figure: clock reads, start-up noise


def make_result(runtime: str, check: str, limit: str, status: Status | str, *, measured=None,
                expected=None, tolerance=None, unit: str = "", why: str = "",
                evidence: dict | None = None) -> dict:
    """One verify result, in the RunRecord contract's shape. ``status``: a Status with a
    verdict, or the verdict word; anything else is a ValueError."""
    if isinstance(status, Status):
        verdict = status.verdict
        if verdict is None:
            raise ValueError(f"verify has no verdict for status {status.name}")
    else:
        verdict = Status.from_verdict(status).verdict
    return {"kind": "verify", "runtime": runtime, "check": check, "limit": limit,
            "status": verdict, "measured": measured, "expected": expected,
            "tolerance": tolerance, "unit": unit, "why": why, "evidence": evidence or {}}


def unsupported(runtime: str, check: str, limit: str, why: str, **fields) -> dict:
    return make_result(runtime, check, limit, Status.UNSUPPORTED, why=why, **fields)


def within(measured: float, expected: float, tolerance: float) -> bool:
    return abs(measured - expected) <= tolerance


def memory_batch_bytes(cpus: int | None = None) -> int:
    """How far memory usage may pass the limit: one charge batch per CPU."""
    return MEMCG_CHARGE_BATCH * PAGE * (cpus or os.cpu_count() or 1)


def cfs_quota_tolerance(cpus: float, window_s: float, workers: int,
                        period_s: float = 0.1) -> float:
    """Tolerance, in CPUs, on the CPU share measured over ``window_s`` under ``cpus`` quota.

    overrun: each of ``workers`` runnable CPUs may run ~1 ms past the quota per period;
    phase: the window may hold one period's quota more or less than its length says;
    sampling: a small fixed share of the expected figure.
    """
    overrun = workers * CFS_OVERRUN_S / period_s
    phase = cpus * period_s / window_s
    return round(overrun + phase + SAMPLING_MARGIN * cpus, 4)


def shares_ratio_tolerance(ratio: float, window_s: float, latency_s: float = 0.024) -> float:
    """Tolerance on the CPU-time ratio of two busy cgroups sharing one CPU by weight.

    CFS is fair to within about one scheduling latency per runqueue (6 ms x (1 + log2 ncpu),
    doubled for margin) of each task's ideal share; the light task's share of the window is
    1 / (ratio + 1), so its relative error - and the ratio's - is latency / its time.
    """
    light_time = window_s / (ratio + 1)
    relative = 2 * latency_s / light_time + SAMPLING_MARGIN * 2
    return round(ratio * relative, 3)


def io_tolerance(rate: float, window_s: float, slice_s: float = 0.1) -> float:
    """Tolerance in bytes/s on a blk-throttle rate: the throttle grants a slice's worth
    (100 ms) ahead, so a window can see one slice of budget more; plus the sampling margin."""
    return round(rate * slice_s / window_s + rate * SAMPLING_MARGIN * 2)


def _figure(value, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, int) and unit == "bytes" and abs(value) >= 1 << 20:
        text = f"{value / (1 << 20):.1f}Mi"
    elif isinstance(value, int) and unit == "bytes" and abs(value) >= 1 << 10:
        text = f"{value / (1 << 10):.0f}Ki"
    elif isinstance(value, int) and unit == "bytes/s" and abs(value) >= 1 << 10:
        text = f"{value / (1 << 20):.2f}Mi"
    else:
        text = str(value)
    return text


def format_table(results: list[dict], control: tuple[str, ...] = ("control",)) -> str:
    """A fixed-width table: runtime, check, status, measured, expected, tolerance, why.

    Results of a control runtime (containers started without limits) show "FAIL (expected)"
    for a FAIL and "PASS (!)" for a PASS, which means the check could not see a missing limit.
    """
    header = ("RUNTIME", "CHECK", "STATUS", "MEASURED", "EXPECTED", "TOL", "UNIT", "WHY")
    rows = [header]
    for r in results:
        unit = r.get("unit") or ""
        status = r["status"]
        if r["runtime"] in control and status in ("FAIL", "PASS"):
            status = "FAIL (expected)" if status == "FAIL" else "PASS (!)"
        tol = r.get("tolerance")
        rows.append((r["runtime"], r["check"], status, _figure(r.get("measured"), unit),
                     _figure(r.get("expected"), unit),
                     "-" if tol is None else "±" + _figure(tol, unit), unit,
                     (r.get("why") or "")[:90]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join(cells + [str(row[-1])]).rstrip())
    return "\n".join(lines)


def exit_code(results: list[dict], control: tuple[str, ...] = ("control",)) -> int:
    """1 if a real runtime FAILed or ERRORed, or if a control check PASSed (the verifier could
    not tell a missing limit from an enforced one); else 0."""
    for r in results:
        status = Status.from_verdict(r["status"])
        if r["runtime"] in control:
            if status is Status.OK:
                return 1
        elif status in (Status.FAIL, Status.ERROR):
            return 1
    return 0
