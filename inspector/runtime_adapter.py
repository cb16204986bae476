"""The one place the inspector knows isoinspect's runtime: attribution of OUR containers.

``TraceHook`` is a runtime pre-start hook: after clone and before the container's exec it
registers the container's cgroup id and pid with the tracer, so a container that lives 5 ms is
seen whole (the pid tree of the runtime process is watched from just before clone too, which
covers the child's cgroup join and mounts before the hook runs).

``run_traced(runtime, spec)`` runs a container through the Runtime's public steps (create,
start, wait_child, remove: those of ``Runtime.run``) with a tracer and returns (exit code,
report): the start-up timeline, namespace costs, enforcement events cross-checked with the
cgroup's counters (read before the cgroup is removed), and the tracer's own cost. Its tracer
is a ``TraceSession`` (probes and ring buffer in a tracer process; this process, which clones
the container, does no BPF work) unless the caller hands it an in-process ``Tracer``.
"""

from __future__ import annotations

import os
import sys

from isoinspect.runtime.container_state import ContainerState, Status

from . import nsflags
from . import timeline as timeline_mod
from .attribution import Container
from .cgroupfs import CgroupView


class TraceHook:
    def __init__(self, tracer) -> None:
        self.tracer = tracer
        self.cgroup_ids: dict[str, int] = {}

    def wants(self, record: ContainerState) -> bool:
        return True

    def prestart(self, runtime, record: ContainerState, pid: int) -> None:
        cgroup_id = runtime.cgroup(record).cgroup_id()
        container = Container(record.id, record.name, "isoinspect",
                              "/" + record.cgroup, cgroup_id)
        self.tracer.attributor.register(container, pid)
        if cgroup_id:
            self.cgroup_ids[record.id] = cgroup_id
        # one request: with a tracer process this is one round trip in the start-up path,
        # between clone and exec (p50 35 us idle, 124 us on a loaded 2-CPU VM)
        self.tracer.watch(pids=(pid,), cgroups=(cgroup_id,) if cgroup_id else ())

    def poststop(self, runtime, record: ContainerState) -> None:
        cgroup_id = self.cgroup_ids.pop(record.id, None)
        if cgroup_id:
            self.tracer.unwatch_cgroup(cgroup_id)


def _exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def report_for(tracer, record: ContainerState, init_pid: int, usage: dict | None) -> dict:
    cgroup_path = "/" + record.cgroup
    events = timeline_mod.container_events(tracer.events, cgroup_path=cgroup_path,
                                           cgroup_id=usage.get("cgroup_id") if usage else None,
                                           init_pid=init_pid, container_id=record.id)
    tl = timeline_mod.build(events, cgroup_path=cgroup_path,
                            cgroup_id=usage.get("cgroup_id") if usage else None,
                            init_pid=init_pid, container_id=record.id)
    ooms = [e for e in events if e["event"] == "oom_victim"]
    deaths = [e for e in events if e["event"] == "oom_death"]
    pids_hits = [e for e in events if e["event"] == "pids_limit"]
    counters = (usage or {}).get("stats", {})
    return {
        "container": {"id": record.id, "name": record.name, "cgroup": cgroup_path,
                      "cgroup_id": (usage or {}).get("cgroup_id"), "init_pid": init_pid},
        "timeline": tl,
        "namespaces": nsflags.per_type_costs(events),
        "enforcement": {
            "oom_kills": len(ooms),
            "oom_kill_to_exit_ms": [round(e["mark_to_exit_ns"] / 1e6, 3) for e in deaths],
            "cgroup_oom_kill": counters.get("memory", {}).get("events", {}).get("oom_kill"),
            "pids_limit_hits": len(pids_hits),
            "cgroup_pids_max_events": counters.get("pids", {}).get("events", {}).get("max"),
            "cpu": counters.get("cpu"),
        },
        "cgroup": usage,
        "events": events,
        "cost": tracer.cost(),
    }


def _wait_traced(tracer, pid: int) -> None:
    """Wait until the container's PID 1 has exited (not reaped: its cgroup, and so its
    counters, stay until ``Runtime.wait_child`` records the exit). A tracer process reads its
    buffer itself, so this process only waits; an in-process ``Tracer`` is polled meanwhile."""
    poll = getattr(tracer, "poll", None) or (lambda _ms: _wait_exit(pid))
    try:
        while not _exited(pid):
            poll(20)
    except KeyboardInterrupt:
        os.kill(pid, 9)
        while not _exited(pid):
            poll(20)


def _wait_exit(pid: int) -> None:
    """Block until ``pid`` exits (a pidfd becomes readable), without reaping it."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def run_traced(runtime, spec, tracer=None, stdio=(None, None, None)) -> tuple[int, dict]:
    """``Runtime.run`` under a tracer: the same public steps (create, start, wait_child, remove
    when ``spec.remove``), with a pre-start hook registering the container and, between its
    exit and ``wait_child``, the tracer drained and the cgroup's counters read; (exit code,
    report)."""
    from isoinspect.runtime.errors import NotFound

    own_tracer = tracer is None
    if own_tracer:
        from .trace_session import TraceSession

        tracer = TraceSession()
    hook = TraceHook(tracer)
    runtime.prestart_hooks.append(hook)
    record = None
    me = os.getpid()
    # This process is watched from before the cgroup is made to after it is removed: its
    # cgroup_mkdir/rmdir and the clone of the container's first process are part of the timeline.
    tracer.watch_pid(me)
    tracer.clear_runq()
    try:
        record = runtime.create(spec)
        started = runtime.start(record, stdio)
        _wait_traced(tracer, started.pid)
        try:   # counters before wait_child releases the cgroup
            usage = CgroupView.for_path(record.cgroup).snapshot()
        except OSError:
            usage = None
        runq = tracer.runq_delay()
        code = runtime.wait_child(started)
        tracer.drain()
        report = report_for(tracer, record, started.pid, usage)
        report["enforcement"]["runq_delay"] = runq
        return code, report
    finally:
        runtime.prestart_hooks.remove(hook)
        if record is not None and spec.remove:
            try:
                runtime.remove(record.id, force=True)
            except NotFound:
                pass
        tracer.unwatch_pid(me)
        if own_tracer:
            tracer.close()


def run_with_trace(runtime, spec) -> int:
    """``isoinspect run --trace``: run, then print the start-up timeline on stderr. The probes
    live in a tracer process (``trace_session``): this process, which clones the container,
    never loads BCC."""
    from .tracer import TracerUnavailable

    try:
        from .trace_session import TraceSession

        tracer = TraceSession()
    except TracerUnavailable as exc:
        sys.stderr.write(f"isoinspect: --trace: {exc}\n")
        return runtime.run(spec)
    try:
        code, report = run_traced(runtime, spec, tracer=tracer)
    finally:
        tracer.close()
    sys.stdout.flush()
    err = sys.stderr
    container = report["container"]
    err.write(f"\nstart-up timeline of {container['name']} (cgroup {container['cgroup']}, "
              f"id {container['cgroup_id']}, pid {container['init_pid']}):\n")
    err.write(timeline_mod.format_table(report["timeline"]) + "\n")
    if report["namespaces"]:
        costs = ", ".join(f"{k} {v['mean_us']}us" for k, v in report["namespaces"].items())
        err.write(f"unshare cost: {costs}\n")
    enf = report["enforcement"]
    if enf["oom_kills"] or enf["cgroup_oom_kill"]:
        err.write(f"OOM kills: {enf['oom_kills']} seen (cgroup says {enf['cgroup_oom_kill']})\n")
    if enf["pids_limit_hits"] or enf["cgroup_pids_max_events"]:
        err.write(f"pids limit hits: {enf['pids_limit_hits']} seen (pids.events max "
                  f"{enf['cgroup_pids_max_events']})\n")
    runq = enf.get("runq_delay") or {}
    if runq.get("count"):
        err.write(f"run-queue delay: {runq['count']} waits, mean {runq['mean_us']}us, "
                  f"p99 <= {runq['p99_us_le']}us, max <= {runq['max_us_le']}us\n")
    cpu = enf.get("cpu") or {}
    if cpu.get("nr_throttled"):
        err.write(f"CPU throttled in {cpu['nr_throttled']}/{cpu['nr_periods']} periods, "
                  f"{cpu['throttled_usec'] / 1000:.1f} ms\n")
    cost = report["cost"]
    err.write(f"tracer ({cost['mode']} mode): {cost['programs']} programs, {cost['run_cnt']} runs, "
              f"{cost['run_time_ns'] / 1e3:.0f}us in BPF, {cost['lost_events']} events lost\n")
    return code


def find_ours(ref: str, root: str | None = None) -> Container | None:
    """One of our containers by name or id (prefix); None if the runtime does not know it."""
    from isoinspect.runtime.errors import IsoinspectError
    from isoinspect.runtime.runtime import Runtime

    try:
        runtime = Runtime(root)
        record = runtime.get(ref)
    except (IsoinspectError, OSError):
        return None
    view = CgroupView.for_path(record.cgroup)
    return Container(record.id, record.name, "isoinspect", "/" + record.cgroup,
                     view.cgroup_id())


def pid_of_ours(ref: str, root: str | None = None) -> int | None:
    """The host pid of one of our running containers' first process."""
    from isoinspect.runtime.errors import IsoinspectError
    from isoinspect.runtime.runtime import Runtime

    try:
        record = Runtime(root).get(ref)
    except (IsoinspectError, OSError):
        return None
    return record.pid if record.status == Status.RUNNING else None
