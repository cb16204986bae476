"""Facts about host processes: liveness that survives pid reuse, and exit status decoding."""

from __future__ import annotations

import os


def start_ticks(pid: int, proc: str = "/proc") -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat).

    Stored with a pid, it tells a live container from an unrelated process that got the pid.
    """
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def is_alive(pid: int | None, ticks: int | None, proc: str = "/proc") -> bool:
    """True if ``pid`` still runs and is the same process that had ``ticks`` as start time."""
    if not pid:
        return False
    current = start_ticks(pid, proc)
    return current is not None and (ticks is None or current == ticks)


def exit_code_from_status(status: int) -> int:
    """waitpid status -> shell-style code: the exit code, or 128+n for death by signal n."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_status(pid: int) -> int | None:
    """waitpid(pid) retried on EINTR: the raw status, or None if it is not our child."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return None
