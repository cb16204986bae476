"""A tracer in its own process, driven from the process being measured.

    with TraceSession() as session:          # raises TracerUnavailable with a one-line reason
        session.begin(pids=(os.getpid(),))  # between runs: one round trip
        ...                                  # the measured run: no BPF work in this process
        events = session.collect(unwatch_all=True)

A tracer that reads its ring buffer inside the process it measures distorts it (DESIGN.md
section 5): BCC and LLVM make the process hundreds of MB larger, so every fork of it copies more
page tables, and reading events takes its CPU and GIL in the middle of a run. Here the measured
process never imports BCC and holds no BPF fd: the tracer process (``trace_server``, a fresh
interpreter) owns the BPF object and reads the buffer; this side sends watch/unwatch requests
and takes the events over between runs. The in-kernel filter (cgroup ids, pid trees) is the
same as ``Tracer``'s. Events are attributed here (``Attributor.attribute``), so a caller
registers its containers with ``session.attributor`` as with ``Tracer``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

from . import trace_messages as msg
from .attribution import Attributor
from .probes import ALL
from .tracer import TracerUnavailable, preflight

#: the first compile of the probes takes a few seconds (BCC caches nothing across processes)
OPEN_TIMEOUT_S = 180.0
REPLY_TIMEOUT_S = 60.0
BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
        "from isoinspect.inspector.trace_server import main; main(int(sys.argv[2]))")


def spawn_argv(fd: int) -> list[str]:
    """A fresh interpreter like this one: its -I/-S flags (the fast launcher runs -I -S) and its
    import path (an editable install's finder comes back with site)."""
    flags = (["-I"] if sys.flags.isolated else []) + (["-S"] if sys.flags.no_site else [])
    return [sys.executable, *flags, "-c", BOOT, json.dumps(sys.path), str(fd)]


class TraceSession:
    """The client side: ``Tracer``'s interface for what a measured process needs."""

    def __init__(self, probes=ALL, filter_enabled: bool = True, measure_cost: bool = True,
                 all_clones: bool = False, all_prctl: bool = False, buffer: str = "ring",
                 attributor: Attributor | None = None) -> None:
        preflight()                                  # root and tracefs: fail before spawning
        self.attributor = attributor or Attributor()
        self.events: list[dict] = []
        self.process: subprocess.Popen | None = None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = subprocess.Popen(spawn_argv(theirs.fileno()),
                                            pass_fds=(theirs.fileno(),),
                                            stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            mine.close()
            raise TracerUnavailable(f"cannot start the tracer process: {exc}") from None
        finally:
            theirs.close()
        self._conn = Connection(mine.detach())
        try:
            ready = self._ask(msg.Open(tuple(probes), filter_enabled, measure_cost, all_clones,
                                       all_prctl, buffer), OPEN_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        self.pid = ready.pid
        self.mode = ready.mode
        self.buffer = ready.buffer
        self.missing = list(ready.missing)
        self.checks = [dict(c) for c in ready.checks]
        self.load_seconds = ready.load_seconds
        self.stats_method = ready.stats_method

    # -- requests ----------------------------------------------------------------------------
    def _ask(self, request, timeout: float = REPLY_TIMEOUT_S):
        try:
            self._conn.send(request)
            if not self._conn.poll(timeout):
                raise TracerUnavailable(f"the tracer process did not answer "
                                        f"{type(request).__name__} within {timeout:.0f} s")
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            code = None
            if self.process is not None:
                try:
                    code = self.process.wait(2)
                except subprocess.TimeoutExpired:
                    pass
            raise TracerUnavailable(f"the tracer process went away (exit {code}): "
                                    f"{exc or type(exc).__name__}") from None
        if isinstance(reply, msg.Failed):
            raise TracerUnavailable(reply.reason)
        return reply

    def watch(self, pids=(), cgroups=()) -> None:
        self._ask(msg.Watch(tuple(pids), tuple(c for c in cgroups if c)))

    def watch_pid(self, pid: int) -> None:
        self.watch(pids=(pid,))

    def watch_cgroup(self, cgroup_id: int) -> None:
        self.watch(cgroups=(cgroup_id,))

    def unwatch_pid(self, pid: int) -> None:
        self._ask(msg.Unwatch(pids=(pid,)))

    def unwatch_cgroup(self, cgroup_id: int) -> None:
        self._ask(msg.Unwatch(cgroups=(cgroup_id,)))

    def unwatch_all(self) -> None:
        self._ask(msg.Unwatch(everything=True))

    def begin(self, pids=(), cgroups=()) -> msg.ProbeCost:
        """A run begins: events so far are dropped, ``pids``/``cgroups`` watched; the probes'
        cost now (subtract it from ``collect``'s)."""
        self.events.clear()
        return self._ask(msg.Begin(msg.Watch(tuple(pids), tuple(cgroups)))).cost

    def collect(self, unwatch_all: bool = False) -> list[dict]:
        """The events since ``begin`` (or the last collect), attributed, also appended to
        ``events``; ``last_cost`` is the probes' cost at this moment."""
        reply = self._ask(msg.Collect(unwatch_all))
        for event in reply.events:
            self.attributor.attribute(event)
        self.events.extend(reply.events)
        self.last_cost = reply.cost
        return reply.events

    def drain(self) -> None:
        """``Tracer.drain``'s role: everything read so far is in ``events``."""
        self.collect()

    def cost(self) -> dict:
        return self._ask(msg.AskCost()).cost.as_dict()

    def probe_cost(self) -> msg.ProbeCost:
        return self._ask(msg.AskCost()).cost

    def runq_delay(self) -> dict:
        return self._ask(msg.AskRunq()).histogram

    def clear_runq(self) -> None:
        self._ask(msg.AskRunq(clear=True))

    # -- end ---------------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Ask the tracer process to detach and exit; SIGKILL if it does not (the kernel then
        detaches the probes with its last fd)."""
        process, self.process = self.process, None
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.send(msg.Close())
                conn.poll(timeout)
            except OSError:
                pass
            conn.close()
            self._conn = None
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "TraceSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def holds_bpf(pid: int | str = "self") -> list[str]:
    """BPF objects (programs, maps, links, stats) a process has open, and BCC mapped into it:
    what a measured process must not have (tests and a doctor-like check)."""
    found = []
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("anon_inode:bpf") or target.startswith("anon_inode:[bpf"):
            found.append(f"fd {name}: {target}")
    with open(f"/proc/{pid}/maps") as maps:
        libraries = {line.split()[-1] for line in maps if "libbcc" in line}
    return found + sorted(libraries)
