"""A peer's running container as verify sees it: its host pid, its output, its cgroup.

Every peer adapter's ``start`` (benches/targets/*) hands one back; ``stop`` always cleans up,
``left_behind`` finds processes that outlived it. The cgroup is looked up by pid with the
inspector's :class:`CgroupView` (the same reader for every runtime, v1 and v2).
"""

from __future__ import annotations

import time
from typing import Callable


class CheckError(RuntimeError):
    """A workload did not behave (no marker in time, a start failed): the check ERRORs,
    unless the peer explains it (``Target.explain``). ``evidence``: what was seen."""

    def __init__(self, message: str, evidence: dict | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence or {}


class Box:
    """A running container: its host pid, its output, its cgroup; ``stop`` always cleans up."""

    def __init__(self, name: str, pid: int, read_output: Callable[[], str],
                 stop: Callable[[], None], scratch: str = "/data") -> None:
        from isoinspect.inspector.cgroupfs import CgroupView

        self.name, self.pid, self.scratch = name, pid, scratch
        self._read_output, self._stop = read_output, stop
        self.view = CgroupView.for_pid(pid)
        self.seen_pids: set[tuple[int, str]] = set()  # (pid, start time): pids get reused
        self.stopped = False

    def output(self) -> str:
        return self._read_output()

    def alive(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/stat") as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def wait_for(self, marker: str, timeout: float,
                 sample: Callable[[], None] | None = None, interval: float = 0.05) -> str:
        """Poll the output until ``marker`` shows up (calling ``sample`` each round); the
        output. CheckError if it does not within ``timeout`` or the container died first."""
        deadline = time.monotonic() + timeout
        while True:
            if sample is not None:
                sample()
            self.note_pids()
            text = self.output()
            if marker in text:
                return text
            if not self.alive():
                raise CheckError(f"{self.name} exited before printing {marker!r}: "
                                 f"{text.strip()[-200:]!r}",
                                 {"stats": self.view.figures().to_dict()})
            if time.monotonic() >= deadline:
                raise CheckError(f"no {marker!r} from {self.name} within {timeout:.0f}s: "
                                 f"{text.strip()[-200:]!r}")
            time.sleep(interval)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.note_pids()
            self._stop()

    def note_pids(self) -> None:
        """Remember the container's processes (for ``left_behind``)."""
        for pid in self.view.pids():
            started = _start_time(pid)
            if started:
                self.seen_pids.add((pid, started))

    def left_behind(self, grace: float = 5.0) -> list[int]:
        """Processes seen in the container that still exist after ``stop`` (should be none);
        waits ``grace`` seconds for the kernel to finish killing them."""
        deadline = time.monotonic() + grace
        while True:
            left = sorted(pid for pid, started in self.seen_pids if _start_time(pid) == started)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in ticks); '' once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def log_reader(path: str) -> Callable[[], str]:
    def read() -> str:
        with open(path, errors="replace") as handle:
            return handle.read()
    return read
