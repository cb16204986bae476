"""The tracer process: owns the BPF object, reads the ring buffer, answers ``trace_session``.

Started by ``TraceSession`` (a fresh interpreter, never a fork of the measured process) with one
end of a Unix socket pair. It loads the probes, then loops: answer a request if one is waiting,
else read what the ring buffer holds every ``READ_EVERY_S`` (a non-blocking read, so a burst of
events costs one wake-up, not one per event). It exits when asked or when the measured process
goes away (end of file on the socket); the kernel detaches the probes with the last fd.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

from . import trace_messages as msg

READ_EVERY_S = 0.05


def _handle(tracer, request):
    """One request -> its reply."""
    if isinstance(request, msg.Watch):
        tracer.watch(request.pids, request.cgroups)
        return msg.Done()
    if isinstance(request, msg.Unwatch):
        if request.everything:
            tracer.unwatch_all()
        for pid in request.pids:
            tracer.unwatch_pid(pid)
        for cgroup_id in request.cgroups:
            tracer.unwatch_cgroup(cgroup_id)
        return msg.Done()
    if isinstance(request, msg.Begin):
        tracer.consume()
        tracer.events.clear()
        tracer.watch(request.watch.pids, request.watch.cgroups)
        return msg.Snapshot(msg.ProbeCost.from_tracer(tracer.cost()))
    if isinstance(request, msg.Collect):
        tracer.consume()
        events = list(tracer.events)
        tracer.events.clear()
        if request.unwatch_all:
            tracer.unwatch_all()
        return msg.Events(events, msg.ProbeCost.from_tracer(tracer.cost()))
    if isinstance(request, msg.AskCost):
        return msg.Snapshot(msg.ProbeCost.from_tracer(tracer.cost()))
    if isinstance(request, msg.AskRunq):
        if request.clear:
            tracer.clear_runq()
            return msg.Done()
        return msg.Runq(tracer.runq_delay())
    return msg.Failed(f"unknown request {type(request).__name__}")


def serve(conn: Connection) -> None:
    from .tracer import Tracer, TracerUnavailable

    opened = conn.recv()
    if not isinstance(opened, msg.Open):
        conn.send(msg.Failed(f"expected Open, got {type(opened).__name__}"))
        return
    try:
        tracer = Tracer(opened.probes, filter_enabled=opened.filter_enabled,
                        measure_cost=opened.measure_cost, all_clones=opened.all_clones,
                        all_prctl=opened.all_prctl, buffer=opened.buffer, attribute=False)
    except (TracerUnavailable, OSError) as exc:
        conn.send(msg.Failed(str(exc)))
        return
    try:
        conn.send(msg.Ready(os.getpid(), tracer.mode, tracer.buffer, tuple(tracer.missing),
                            tuple(tracer.checks), tracer.load_seconds,
                            tracer.stats.method if tracer._stats_on else None))
        while True:
            if conn.poll(READ_EVERY_S):
                try:
                    request = conn.recv()
                except EOFError:
                    return
                if isinstance(request, msg.Close):
                    conn.send(msg.Done())
                    return
                try:
                    reply = _handle(tracer, request)
                except Exception as exc:  # noqa: BLE001 - the client raises it
                    reply = msg.Failed(f"{type(exc).__name__}: {exc}")
                conn.send(reply)
            else:
                tracer.consume()
    finally:
        tracer.close()


def main(fd: int) -> None:
    """Entry point of the tracer process (see ``trace_session.spawn_argv``)."""
    # Ctrl-C at the terminal reaches the whole process group: the measured process decides when
    # tracing ends (it sends Close, or its end of the socket closes).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        serve(conn)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass
    finally:
        conn.close()
    sys.exit(0)
