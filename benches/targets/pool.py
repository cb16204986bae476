"""isoinspect's warm pool (runtime/warm_pool.py): zygotes made ahead, a start hands one a command.

The SOCK-style figure: namespaces, cgroup, overlay root, privileges and seccomp are set up before
the timer starts; ``settle()`` (untimed) waits until the background thread has refilled the pool,
so every measured start finds a zygote ready, as a pool sized for its load would. Each run ends
with that wait too, so the refill never competes with another target's measured start.

Lifecycle ends when ``finish()`` has the exit code: the pool's thread removes the container
(record, cgroup, directories, its mounts) after that, also inside ``settle()``. ``teardown``
times that removal to its end (``finish()`` + ``drain()``), so it stays the cost of a removal.
"""

from __future__ import annotations

import os
import time

from isoinspect.benches.targets.base import (MARKER, READY_COMMAND, Sample, TargetError,
                                             cpu_now, read_marker, wait_exit)
from isoinspect.benches.targets.isoinspect import COMMAND, InProcessTarget


def task_cpu(pid: int) -> float:
    """On-CPU seconds of a process's main thread so far, zombies included (schedstat, ns)."""
    try:
        with open(f"/proc/{pid}/schedstat") as handle:
            return int(handle.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class WarmPoolTarget(InProcessTarget):
    name = "isoinspect-pool"
    notes = ("warm pool: zygotes pre-made (namespaces, cgroup, overlay root, seccomp), start = "
             "hand over the command; refilled in the background, untimed")

    def __init__(self, size: int = 2) -> None:
        super().__init__()
        self.size = size
        self.pool = None

    def prepare(self, workdir: str) -> None:
        super().prepare(workdir)
        from isoinspect.runtime.runtime import Runtime
        from isoinspect.runtime.warm_pool import WarmPool

        self.pool = WarmPool(Runtime(self.root), self.user_spec(COMMAND), size=self.size)
        #: a zygote is handed its whole argv: the user's entrypoint + command, resolved
        self.command = list(self.user.argv) if self.user else list(COMMAND)
        self.pool.open()

    def settle(self) -> None:
        if not self.pool.drain():
            raise TargetError(f"the pool did not remove its containers: {self.pool.errors[-1:]}")
        if not self.pool.wait_full():
            raise TargetError(f"the pool did not refill: {self.pool.errors[-1:]}")

    def trace_pids(self) -> list[int]:
        """Zygotes made before the tracer was loaded are not in the traced process tree."""
        return [zygote.pid for zygote in list(self.pool.idle)] if self.pool else []

    def _start(self, argv: list[str], stdout: int | None = None):
        out = self._null if stdout is None else stdout
        return self.pool.start(argv, (self._null, out, self._null))

    def ready_once(self) -> Sample:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        started = None
        try:
            begin = time.perf_counter_ns()
            started = self._start(READY_COMMAND, write_fd)
            os.close(write_fd)
            write_fd = -1
            end = read_marker(read_fd, MARKER.encode())
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
            if started is not None:
                code = self.pool.finish(started)
        self.settle()  # untimed: the refill must not run during another target's start
        if end is None or code != 0:
            raise TargetError(f"no marker from the zygote (exit {code})")
        return Sample((end - begin) / 1e9, None)

    def lifecycle_once(self) -> Sample:
        # The zygote is reaped with its container, so its rusage brings along the CPU time of
        # its set-up, spent ahead of time: take that out.
        prepared = task_cpu(self.pool.idle[0].pid) if self.pool.idle else 0.0
        cpu0 = cpu_now() + prepared
        t0 = time.perf_counter_ns()
        started = self._start(self.command)
        t1 = time.perf_counter_ns()
        code = self.pool.finish(started)
        t2 = time.perf_counter_ns()
        cpu = cpu_now() - cpu0
        self.settle()
        self.check_exit(code)
        self.last_phases = {"hand_off_to_exec": started.startup_seconds,
                            "wait_for_exit": (t2 - t1) / 1e9}
        return Sample((t2 - t0) / 1e9, cpu)

    def teardown_once(self) -> Sample:
        started = self._start(self.command)
        try:
            wait_exit(started.pid)
        finally:
            cpu0 = cpu_now() + task_cpu(started.pid)  # the zombie's own life: not teardown
            t0 = time.perf_counter_ns()
            code = self.pool.finish(started)
            self.pool.drain()  # the removal itself, done by the pool's thread
            wall = (time.perf_counter_ns() - t0) / 1e9
            cpu = cpu_now() - cpu0
        self.settle()
        self.check_exit(code)
        return Sample(wall, cpu)

    def cleanup(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        super().cleanup()
