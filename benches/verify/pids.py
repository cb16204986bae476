"""pids: a fork bomb stops exactly at ``--pids-limit``: fork fails with EAGAIN, pids.events
counts it, and nothing is left behind once the container is stopped.

The bomb is bounded (at most CAP sleeps, each ``sleep 60``) and runs in a subshell, so the
container's shell survives it: it prints how many forks worked, the subshell dies at the first
EAGAIN ("can't fork"), and the shell then ``wait``s on its own sleep while we read the cgroup.
Processes in the container at the failed fork: shell + its sleep + subshell + n sleeps.
"""

from __future__ import annotations

from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets.base import Target
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.result import make_result
from isoinspect.runtime.diagnostics import Status

LIMIT = 16
CAP = 100
BOMB = ("sleep 60 & (i=0; while [ $i -lt {cap} ]; do sleep 60 & i=$((i+1)); echo n=$i; done) "
        "2>&1; echo bomb-exit=$?; wait")
OVERHEAD = 3  # shell, its own sleep, the subshell


def check_pids(rt: Target, ctx: Context) -> list[dict]:
    box = rt.start(["sh", "-c", BOMB.format(cap=CAP)], Limits(pids_limit=LIMIT))
    try:
        text = box.wait_for("bomb-exit=", timeout=60)
        traced = ctx.traced(box, ("pids_limit",))
        usage = box.view.figures().to_dict().get("pids") or {}
        limit_in_cgroup = usage.get("max")
    finally:
        box.stop()
    left = box.left_behind()
    forks = [int(line[2:]) for line in text.splitlines() if line.startswith("n=")]
    counted = OVERHEAD + (forks[-1] if forks else 0)
    measured = usage.get("peak", counted)
    eagain = "can't fork" in text or "Resource temporarily unavailable" in text
    refused = usage.get("events", {}).get("max", 0)
    problems = []
    if measured != LIMIT:
        problems.append(f"{measured} processes at the peak, limit {LIMIT}")
    if not eagain:
        problems.append("no fork failed with EAGAIN")
    if not refused:
        problems.append("pids.events counted no refused fork")
    if left:
        problems.append(f"{len(left)} processes left behind after the stop")
    if traced is not None and not traced:
        problems.append("the tracer saw no fork/clone returning EAGAIN in the container")
    why = "; ".join(problems) or (
        f"fork refused at {measured} (EAGAIN"
        + ("" if traced is None else f", {len(traced)} traced")
        + f"), pids.events max {refused}, nothing left behind")
    return [make_result(rt.name, "pids-limit", "pids", Status.judge(not problems),
                        measured=measured, expected=LIMIT, tolerance=0, unit="pids", why=why,
                        evidence={"forks_done": forks[-1] if forks else 0,
                                  "counted_from_output": counted, "pids_peak": usage.get("peak"),
                                  "pids_events_max": refused, "eagain": eagain,
                                  "limit_in_cgroup": limit_in_cgroup, "left_behind": left,
                                  "traced_eagain": traced,
                                  "bomb_cap": CAP})]
