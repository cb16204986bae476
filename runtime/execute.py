"""``isoinspect exec``: run another process inside a running container.

The command gets the container's own ProcessPlan (Runtime.process_plan: its capabilities,
seccomp program, rlimits, environment) with exec's overrides, and enters the container the one
way every process does (runtime/enter.py), so `exec` returns what the command returned.
"""

from __future__ import annotations

import os

from isoinspect.runtime import child, enter
from isoinspect.runtime.container_state import Status
from isoinspect.runtime.errors import Conflict, IsoinspectError, UsageError
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.units import parse_env, parse_user

EXEC_START_FAILED = child.EXIT_NOT_EXECUTABLE  # Docker's code for an exec that did not start


def exec_in_container(runtime: Runtime, ref: str, argv: list[str], env: list[str] | None = None,
                      workdir: str | None = None, user: str | None = None,
                      detach: bool = False, tty: bool = False, interactive: bool = False) -> int:
    """Run ``argv`` in the container; return its exit code (0 at once with ``detach``).
    ``tty``: on a new terminal relayed to the caller's (runtime/terminal.py)."""
    if tty:
        if detach:
            raise UsageError("-t with --detach is not supported")
        from isoinspect.runtime import terminal
        terminal.check_input(tty, interactive)
    record = runtime.get(ref)
    if record.status != Status.RUNNING:
        raise Conflict(f"container {record.name} is not running")
    from isoinspect.runtime.pausing import is_paused
    if is_paused(runtime, record):
        raise Conflict(f"Container {record.id} is paused, unpause the container before exec")
    if user:
        parse_user(user)
    merged = dict(item.partition("=")[::2] for item in record.env + parse_env(env or []))
    plan = runtime.process_plan(record, argv=argv, env=[f"{k}={v}" for k, v in merged.items()],
                                workdir=workdir, user=user)
    stdio = (None, None, None)
    devnull = -1
    if detach:
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        stdio = (devnull, devnull, devnull)
    elif not interactive and not tty:  # Docker attaches stdin only with -i
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        stdio = (devnull, None, None)
    console = ours = None
    if tty:
        ours, theirs = terminal.console_pair()
        console = enter.Console(theirs, terminal.window_size(terminal.caller_terminal()))
    try:
        pid = enter.start_in(record.pid, runtime.cgroup(record).procs_files(), plan,
                             detach=detach, stdio=stdio, new_session=detach, console=console)
    except enter.NotRunning:
        raise Conflict(f"container {record.name} is not running") from None
    except enter.EnterFailed as exc:
        # dockerd 20.10 ends every exec that could not start with 126, not found included
        # (`docker exec c nosuchcmd` -> 126; only `docker run` says 127)
        code = EXEC_START_FAILED if exc.exit_code == child.EXIT_NOT_FOUND else exc.exit_code
        raise IsoinspectError(str(exc), exit_code=code) from None
    finally:
        if devnull >= 0:
            os.close(devnull)
        if console is not None:
            console.sock.close()
    if detach:
        return 0
    if ours is not None:
        try:
            master = terminal.receive_master(ours)
        finally:
            ours.close()
        try:
            terminal.attach(master, interactive)
        finally:
            os.close(master)
    return enter.wait(pid, forward_signals=True)
