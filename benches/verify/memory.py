"""Memory: a hog past ``--memory`` is OOM-killed and usage never passes the limit by more than
the kernel's charge batching; a process under the limit is left alone.

The hog (``head -c N /dev/zero | tail``: busybox tail keeps an unterminated line in memory)
runs under the container's shell, so the container outlives it: we read its exit status from
the output and memory.events (v2) / memory.oom_control (v1) from the live cgroup. Its size is
fixed, so even with no limit at all (the control) the host never feels it.
"""

from __future__ import annotations

import time

from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets.base import Target
from isoinspect.benches.targets.box import Box
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.result import make_result, memory_batch_bytes, unsupported
from isoinspect.runtime.diagnostics import Status

LIMIT = 32 << 20
# tail (holding everything it reads) volunteers as the OOM victim, and head too: while tail's
# memory is being released head still writes to the pipe, which can trigger a second OOM kill
# (measured: oom_kill 2 in ~1 of 3 runs), and its victim must not be the reporting shell (the
# container then died without its report, under runc and isoinspect alike).
_VOLUNTEER = "echo 1000 > /proc/self/oom_score_adj; exec"
HOG_PIPE = (f"({_VOLUNTEER} head -c {{size}} /dev/zero) | ({_VOLUNTEER} tail) "
            "> /dev/null 2>&1; echo hog-exit=$?")
HOG = HOG_PIPE + "; sleep 60"


def _swap_total(path: str = "/proc/swaps") -> int:
    with open(path) as handle:
        return sum(int(line.split()[2]) for line in handle.readlines()[1:] if line.split())


def run_hog(rt: Target, size: int, limits: Limits, ctx: Context) -> tuple[Box, dict]:
    """Start the hog; return the box (still running, caller stops it) and what was seen."""
    box = rt.start(["sh", "-c", HOG.format(size=size)], limits)
    t, current = [], []
    start = time.monotonic()

    def sample() -> None:
        usage = box.view.figures().to_dict().get("memory") or {}
        if "current" in usage:
            t.append(round(time.monotonic() - start, 3))
            current.append(usage["current"])

    try:
        text = box.wait_for("hog-exit=", timeout=60, sample=sample)
    except BaseException:
        box.stop()
        raise
    sample()
    usage = box.view.figures().to_dict().get("memory") or {}
    exit_status = int(text.split("hog-exit=", 1)[1].split()[0])
    seen = {"hog_exit": exit_status, "peak": usage.get("peak", max(current or [0])),
            "events": usage.get("events", {}),
            "limit_in_cgroup": usage.get("max"),
            "series": {"t": t, "value": current, "unit": "bytes"}}
    traced = ctx.traced(box, ("oom_victim", "oom_death"))
    if traced is not None:
        seen["traced_oom_victims"] = [e for e in traced if e["event"] == "oom_victim"]
    return box, seen


def check_oom(rt: Target, ctx: Context) -> list[dict]:
    size, batch = 3 * LIMIT, memory_batch_bytes(ctx.cpus)
    box, seen = run_hog(rt, size, Limits(memory=LIMIT), ctx)
    box.stop()
    oom_kills = seen["events"].get("oom_kill", 0)
    problems = []
    if seen["hog_exit"] != 137:
        problems.append(f"the hog was not killed (exit {seen['hog_exit']})")
    if not oom_kills:
        problems.append("no oom_kill in the cgroup's memory events")
    if seen["peak"] > LIMIT + batch:
        problems.append(f"peak {seen['peak']} passed the limit by more than {batch}")
    victims = seen.get("traced_oom_victims")
    if victims is not None and not victims:
        problems.append("the tracer saw no oom:mark_victim in the container")
    why = "; ".join(problems) or (
        f"hog of {size >> 20} MiB SIGKILLed by the OOM killer ({oom_kills} oom_kill"
        + ("" if victims is None else f", {len(victims)} oom:mark_victim traced")
        + "), peak within limit + charge batch")
    return [make_result(rt.name, "memory-oom", "memory", Status.judge(not problems),
                        measured=seen["peak"], expected=LIMIT, tolerance=batch, unit="bytes",
                        why=why, evidence={**seen, "hog_bytes": size})]


def check_under_limit(rt: Target, ctx: Context) -> list[dict]:
    size, batch = LIMIT // 4, memory_batch_bytes(ctx.cpus)
    box, seen = run_hog(rt, size, Limits(memory=LIMIT), ctx)
    box.stop()
    problems = []
    if seen["limit_in_cgroup"] in (None, -1) or seen["limit_in_cgroup"] > LIMIT + batch:
        problems.append(f"no {LIMIT >> 20} MiB limit in force on the container's cgroup "
                        f"(memory max {seen['limit_in_cgroup']})")
    if seen["hog_exit"] != 0 or seen["events"].get("oom_kill", 0):
        problems.append(f"a {size >> 20} MiB process was killed (exit {seen['hog_exit']})")
    why = "; ".join(problems) or f"{size >> 20} MiB under a {LIMIT >> 20} MiB limit ran to " \
                                 "the end, no oom_kill"
    return [make_result(rt.name, "memory-under-limit", "memory",
                        Status.judge(not problems), measured=seen["peak"], expected=LIMIT,
                        tolerance=batch, unit="bytes", why=why,
                        evidence={**seen, "hog_bytes": size})]


def check_swap(rt: Target, ctx: Context) -> list[dict]:
    """memory + swap: a hog between --memory and --memory-swap survives (swapping), one past
    --memory-swap is killed. Needs swap on the host to tell the two apart."""
    swap = _swap_total()
    if not swap:
        return [unsupported(rt.name, "memory-swap", "memory",
                            "the host has no swap (/proc/swaps is empty): memory+swap cannot "
                            "be told apart from memory alone")]
    memory_swap, batch = 2 * LIMIT, memory_batch_bytes(ctx.cpus)
    limits = Limits(memory=LIMIT, memory_swap=memory_swap)
    box, inside = run_hog(rt, LIMIT + LIMIT // 4, limits, ctx)
    box.stop()
    box, past = run_hog(rt, 2 * memory_swap, limits, ctx)
    box.stop()
    ok = inside["hog_exit"] == 0 and past["hog_exit"] == 137
    why = (f"{(LIMIT + LIMIT // 4) >> 20} MiB (under memory+swap) exit {inside['hog_exit']}, "
           f"{(2 * memory_swap) >> 20} MiB (past it) exit {past['hog_exit']}; want 0 and 137")
    return [make_result(rt.name, "memory-swap", "memory", Status.judge(ok),
                        measured=past["peak"], expected=LIMIT, tolerance=batch, unit="bytes",
                        why=why, evidence={"inside": inside, "past": past,
                                           "swap_kib": swap})]
