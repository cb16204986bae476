"""CPU: a CFS quota gives a busy container that share of CPU time (and cpu.stat counts the
throttled periods); two busy containers pinned to one CPU split it by their shares.

CPU time comes from the container's cgroup (cpuacct.usage on v1, cpu.stat usage_usec on v2)
over a short window. Burners are bounded by ``timeout``, besides being killed with the box.
"""

from __future__ import annotations

import math
import time

from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets.base import Target
from isoinspect.benches.targets.box import Box
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.result import (cfs_quota_tolerance, make_result,
                                              shares_ratio_tolerance, unsupported, within)
from isoinspect.runtime.diagnostics import Status

BURN = ("i=0; while [ $i -lt {n} ]; do timeout -s KILL 60 sh -c 'while :; do :; done' & "
        "i=$((i+1)); done; echo burning; wait")
QUOTAS = (0.5, 0.2, 1.5)


SERIES_STEP = 0.25  # seconds between samples of the CPU-share time series


def burner(n: int) -> list[str]:
    return ["sh", "-c", BURN.format(n=n)]


def _host_idle_seconds(path: str = "/proc/stat") -> float:
    with open(path) as handle:
        fields = handle.readline().split()[1:]
    return (int(fields[3]) + int(fields[4])) / 100.0  # idle + iowait, USER_HZ = 100


def _cpu(box: Box) -> dict:
    return box.view.figures().to_dict().get("cpu") or {}


def measure(boxes: list[Box], ctx: Context) -> dict:
    """CPU seconds per second of each box over the window, their throttling and host idle."""
    for box in boxes:
        box.wait_for("burning", timeout=30)
    time.sleep(ctx.warmup)
    before = [_cpu(box) for box in boxes]
    idle0, t0 = _host_idle_seconds(), time.monotonic()
    t, value = [], []  # the first box's CPU share per step: the report draws it over time
    last, last_t = before[0].get("usage_usec", 0), t0
    while (now := time.monotonic()) < t0 + ctx.window:
        time.sleep(min(SERIES_STEP, t0 + ctx.window - now))
        used, now = _cpu(boxes[0]).get("usage_usec", 0), time.monotonic()
        t.append(round(now - t0, 3))
        value.append(round((used - last) / 1e6 / max(now - last_t, 1e-6), 4))
        last, last_t = used, now
    after = [_cpu(box) for box in boxes]
    elapsed, idle = time.monotonic() - t0, _host_idle_seconds() - idle0
    for box in boxes:
        box.note_pids()
    share = [round((a.get("usage_usec", 0) - b.get("usage_usec", 0)) / 1e6 / elapsed, 4)
             for a, b in zip(after, before)]
    return {"window_s": round(elapsed, 3), "host_idle_cpus": round(idle / elapsed, 3),
            "share": share, "series": {"t": t, "value": value, "unit": "cpus"},
            "throttled_periods": [a.get("nr_throttled", 0) - b.get("nr_throttled", 0)
                                  for a, b in zip(after, before)],
            "periods": [a.get("nr_periods", 0) - b.get("nr_periods", 0)
                        for a, b in zip(after, before)]}


def _quota_once(rt: Target, cpus: float, workers: int, ctx: Context) -> dict:
    box = rt.start(burner(workers), Limits(cpus=cpus))
    try:
        return measure([box], ctx)
    finally:
        box.stop()


def judge_quota(share: float, cpus: float, tolerance: float, throttled: int,
                idle: float) -> tuple[Status, str]:
    """(status, why) of a quota measurement; ``idle``: CPUs the host left idle meanwhile.

    Above expected + tolerance: the limit did not hold (FAIL). Within: PASS only if cpu.stat
    saw throttling (else the quota did not act). Below: FAIL if the host sat idle for at least
    the shortfall (the busy container could have had it); otherwise other work took the CPU
    and the figure says nothing about the quota (ERROR, inconclusive).
    """
    if share > cpus + tolerance:
        return Status.FAIL, f"{share:.3f} CPUs used, above {cpus} + {tolerance}"
    if share >= cpus - tolerance:
        if throttled <= 0:
            return Status.FAIL, f"{share:.3f} CPUs but cpu.stat counted no throttled period"
        return Status.OK, f"{share:.3f} CPUs, {throttled} periods throttled"
    shortfall = cpus - tolerance - share
    if idle < shortfall:
        return Status.ERROR, (f"inconclusive: {share:.3f} CPUs while other work kept the host busy "
                         f"(idle {idle:.2f} CPUs), so the quota was not what limited")
    return Status.FAIL, f"{share:.3f} CPUs, below {cpus} - {tolerance} with {idle:.2f} CPUs idle"


def check_quota(rt: Target, ctx: Context, cpus: float) -> list[dict]:
    """``--cpus cpus`` with a burner per host CPU: the quota, not the burners, must limit."""
    workers = ctx.cpus
    if math.ceil(cpus) > ctx.cpus:
        return [unsupported(rt.name, f"cpu-quota-{cpus:g}", "cpu",
                            f"--cpus {cpus} needs {math.ceil(cpus)} CPUs, the host has "
                            f"{ctx.cpus}")]
    tolerance = cfs_quota_tolerance(cpus, ctx.window, workers)
    attempts = []
    for _ in range(3):  # again while a busy host, not the quota, starved the container
        seen = _quota_once(rt, cpus, workers, ctx)
        attempts.append(seen)
        status, why = judge_quota(seen["share"][0], cpus, tolerance,
                                  seen["throttled_periods"][0], seen["host_idle_cpus"])
        if status is not Status.ERROR:
            break
    return [make_result(rt.name, f"cpu-quota-{cpus:g}", "cpu", status,
                        measured=seen["share"][0], expected=cpus, tolerance=tolerance,
                        unit="cpus", why=f"{why} ({workers} burners, {len(attempts)} run(s))",
                        evidence={"workers": workers, "series": seen["series"],
                                  "attempts": attempts})]


def check_shares(rt: Target, ctx: Context, heavy: int = 1024, light: int = 256
                 ) -> list[dict]:
    """Two one-burner containers pinned to the same CPU with shares ``heavy`` and ``light``."""
    ratio = heavy / light
    tolerance = shares_ratio_tolerance(ratio, ctx.window)
    cpu = str(ctx.cpus - 1)
    boxes = []
    try:
        for shares in (heavy, light):
            boxes.append(rt.start(burner(1), Limits(cpu_shares=shares, cpuset_cpus=cpu)))
        seen = measure(boxes, ctx)
    finally:
        for box in boxes:
            box.stop()
    a, b = seen["share"]
    measured = round(a / b, 3) if b > 0 else float("inf")
    ok = within(measured, ratio, tolerance)
    why = (f"{a:.3f} vs {b:.3f} CPUs on CPU {cpu}" if ok else
           f"split {a:.3f} : {b:.3f} CPUs = {measured}, not {ratio:g} ± {tolerance}")
    return [make_result(rt.name, "cpu-shares", "cpu", Status.judge(ok),
                        measured=measured, expected=ratio, tolerance=tolerance, unit="ratio",
                        why=why, evidence={**seen, "shares": [heavy, light], "cpu": cpu})]
