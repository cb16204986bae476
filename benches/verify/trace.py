"""The inspector's eBPF view of enforcement during the checks: ``oom:mark_victim`` for the OOM
kill and fork/clone returning EAGAIN for the pids limit, for any runtime.

One tracer (the inspector's enforcement probes, ~3 s to compile) serves the whole run. It runs
unfiltered - these events are rare on a host - and events are given to a container by its v2
cgroup id (bpf_get_current_cgroup_id; on a hybrid host the runtimes make a unified-hierarchy
cgroup too) or by the pids seen in its cgroup.
"""

from __future__ import annotations

from isoinspect.benches.targets.box import Box


class EnforcementTrace:
    def __init__(self) -> None:
        from isoinspect.inspector.tracer import Tracer

        self.tracer = Tracer(probes=("enforcement",), filter_enabled=False, measure_cost=False)

    def poll(self) -> None:
        self.tracer.poll(0)

    def events_for(self, box: Box, names: tuple[str, ...]) -> list[dict]:
        """The events named ``names`` that came from ``box`` since the last call."""
        self.tracer.drain()
        events, self.tracer.events = self.tracer.events, []
        own = box.view.cgroup_id() if box.view.paths.get("unified", "/") != "/" else None
        pids = {pid for pid, _ in box.seen_pids}
        return [e for e in events if e["event"] in names and (
            (own is not None and e.get("cgroup_id") == own) or e.get("pid") in pids
            or e.get("target_pid") in pids)]

    def close(self) -> None:
        self.tracer.close()


def start() -> tuple[EnforcementTrace | None, str]:
    """(tracer, '') or (None, why it cannot run here)."""
    try:
        return EnforcementTrace(), ""
    except Exception as exc:  # TracerUnavailable, BCC missing, compile failure
        return None, f"{type(exc).__name__}: {exc}"[:300]
