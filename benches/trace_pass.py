"""Per-phase start-up breakdown from the inspector, and the tracer's own cost, in a bench run.

After the measured rounds, every container target runs a few more lifecycles with the BCC
tracer loaded (tracepoints only). The tracer follows the process tree of this benchmark (and of
the daemons a target names, e.g. containerd for Docker), so runc's, runsc's, Docker's and our
own containers are seen the same way. The container's first process is the one that exec'd the
workload (``true``); ``inspector.timeline.build`` orders its kernel events into phases. A phase's
value is the time since the previous phase (the first: since the target was asked to start),
so the phases of one run add up to its start-to-exit span.

The tracer's cost (``trace_overhead``): one target's lifecycle measured untraced right before the
tracer is loaded, then traced inside this pass: the same target, the same run, adjacent blocks.
"""

from __future__ import annotations

import os
import time

from isoinspect.benches import stats

WORKLOAD = "true"


def init_pid(events: list[dict], workload: str = WORKLOAD) -> int | None:
    """The pid that exec'd the workload (the last such exec: runtimes may exec helpers)."""
    execs = [e for e in events if e.get("event") == "exec"
             and os.path.basename(str(e.get("filename", ""))) == workload]
    return execs[-1]["pid"] if execs else None


def phases_of(events: list[dict], begin_ns: int) -> dict[str, float]:
    """{phase: seconds since the previous phase} for one traced run (empty if no exec seen)."""
    from isoinspect.inspector import timeline

    pid = init_pid(events)
    if pid is None:
        return {}
    built = timeline.build(events, init_pid=pid)
    out: dict[str, float] = {}
    previous = begin_ns
    for phase in built["phases"]:
        if phase["ts_ns"] < begin_ns:
            continue
        out[phase["phase"]] = (phase["ts_ns"] - previous) / 1e9
        previous = phase["ts_ns"]
    return out


def traced_pass(targets: list, runs: int, overhead_target: str | None = "isoinspect-lib",
                metric: str = "lifecycle") -> dict:
    """Trace ``runs`` lifecycles of every container target.

    Returns {"status", "reason", "probe_mode", "phases": {target: {phase: [s]}},
    "overhead": trace_overhead result or None}. Never raises for a missing tracer.
    """
    from isoinspect.inspector.tracer import Tracer, TracerUnavailable

    out: dict = {"status": "ok", "reason": "", "probe_mode": None, "phases": {},
                 "overhead": None}
    overhead = next((t for t in targets if t.name == overhead_target), None)
    plain = _samples(overhead, runs, metric) if overhead is not None else []
    try:
        tracer = Tracer()
    except (TracerUnavailable, OSError, ImportError) as exc:
        out.update(status="unsupported", reason=f"tracer unavailable: {exc}")
        return out
    try:
        out["probe_mode"] = tracer.mode
        me = os.getpid()
        tracer.watch_pid(me)
        for target in targets:
            extra = target.trace_pids()
            for pid in extra:
                tracer.watch_pid(pid)
            base = tracer.cost()
            seen = 0
            walls, per_phase = [], {}
            try:
                for _ in range(runs):
                    target.settle()
                    tracer.events.clear()
                    begin = time.monotonic_ns()
                    walls.append(target.measure(metric).wall)
                    tracer.drain()
                    seen += len(tracer.events)
                    for phase, seconds in phases_of(tracer.events, begin).items():
                        per_phase.setdefault(phase, []).append(seconds)
            except Exception as exc:  # noqa: BLE001 - one target's failure is recorded
                out["phases"][target.name] = {"error": str(exc)[:300]}
                continue
            finally:
                for pid in extra:
                    tracer.unwatch_pid(pid)
            out["phases"][target.name] = per_phase
            if target is overhead and plain and walls:
                cost = tracer.cost()
                ratio = stats.ratio_ci(walls, plain)
                out["overhead"] = {
                    "kind": "trace_overhead", "status": "ok", "target": target.name,
                    "metric": metric, "unit": "s", "samples_with": walls,
                    "samples_without": plain, "ratio": ratio["ratio"], "ci": ratio["ci"],
                    "bpf_run_time_ns": cost["run_time_ns"] - base["run_time_ns"],
                    "bpf_runs": cost["run_cnt"] - base["run_cnt"],
                    "events": seen, "lost": cost["lost_events"],
                    "probe_mode": tracer.mode}
        tracer.unwatch_pid(me)
    finally:
        tracer.close()
    return out


def _samples(target, runs: int, metric: str) -> list[float]:
    walls = []
    for _ in range(runs):
        target.settle()
        walls.append(target.measure(metric).wall)
    return walls
