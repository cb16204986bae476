"""The tracer's own cost on a container start: the same container started with and without the
probes, in one run.

    from isoinspect.inspector.overhead import measure
    result = measure(runtime, lambda: ContainerSpec.from_flags("busybox", ["true"], remove=True))

Blocks alternate: plain starts with no BPF loaded, then traced starts (probes attached in a
tracer process, the TraceHook registering each container: what ``run --trace`` does minus
printing and the one-off compile). Attaching or detaching probes between single starts is
avoided on purpose: detaching queues RCU work that slows the next start down and would bias
the comparison.
``bpf_run_time_us_per_start`` (kernel.bpf_stats) is the robust figure on a busy machine; the wall
time difference is noisy there.
"""

from __future__ import annotations

import statistics
import time


def _one(runtime, spec) -> float:
    started = time.perf_counter()
    runtime.run(spec)
    return (time.perf_counter() - started) * 1000.0


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(values), "p50": round(statistics.median(values), 2),
            "mean": round(statistics.fmean(values), 2),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2)}


def measure(runtime, make_spec, runs: int = 30, warmup: int = 3, blocks: int = 3) -> dict:
    """Wall time (ms) of ``runtime.run(make_spec())`` without and with tracing.

    ``blocks`` rounds of (plain block, traced block); each traced block starts a fresh tracer
    process (~0.7 s) so load drift on a shared machine hits both sides.
    """
    from .runtime_adapter import TraceHook
    from .trace_session import TraceSession

    for _ in range(warmup):
        _one(runtime, make_spec())
    per_block = max(1, runs // blocks)
    plain: list[float] = []
    traced: list[float] = []
    bpf_ns = bpf_runs = events = lost = 0
    for _ in range(blocks):
        time.sleep(0.3)                       # let RCU work queued by detaching settle
        plain += [_one(runtime, make_spec()) for _ in range(per_block)]
        with TraceSession() as tracer:
            hook = TraceHook(tracer)
            _one(runtime, make_spec())        # warm the traced path
            base = tracer.cost()
            runtime.prestart_hooks.append(hook)
            try:
                for _ in range(per_block):
                    traced.append(_one(runtime, make_spec()))
                    tracer.drain()
            finally:
                runtime.prestart_hooks.remove(hook)
            cost = tracer.cost()
            bpf_ns += cost["run_time_ns"] - base["run_time_ns"]
            bpf_runs += cost["run_cnt"] - base["run_cnt"]
            events += len(tracer.events)
            lost += cost["lost_events"]
    p50_plain, p50_traced = statistics.median(plain), statistics.median(traced)
    return {
        "runs": len(traced),
        "plain_ms": _summary(plain),
        "traced_ms": _summary(traced),
        "overhead_pct": round((p50_traced - p50_plain) / p50_plain * 100.0, 2),
        "bpf_run_time_us_per_start": round(bpf_ns / len(traced) / 1000.0, 1),
        "bpf_cpu_pct_of_start": round(bpf_ns / len(traced) / 1e6 / p50_plain * 100.0, 2),
        "bpf_runs_per_start": round(bpf_runs / len(traced)),
        "events": events,
        "lost_events": lost,
    }
