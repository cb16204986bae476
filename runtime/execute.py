"""``isoinspect exec``: run another process inside a running container.

The command gets the container's own ProcessPlan (Runtime.process_plan: its capabilities,
seccomp program, rlimits, environment) with exec's overrides, and enters the container the one
way every process does (runtime/enter.py), so `exec` returns what the command returned.
"""

from __future__ import annotations

import os

from isoinspect.runtime import child, enter
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import Conflict, IsoinspectError, UsageError
from isoinspect.runtime.events import container_event
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
    if not detach and not interactive and not tty:  # Docker attaches stdin only with -i
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        stdio = (devnull, None, None)
    exec_id = os.urandom(32).hex()
    _event(runtime, "exec_create", argv, record, exec_id)
    _event(runtime, "exec_start", argv, record, exec_id)
    if detach:
        return _start_detached(runtime, record, plan, exec_id)
    console = ours = None
    if tty:
        ours, theirs = terminal.console_pair()
        console = enter.Console(theirs, terminal.window_size(terminal.caller_terminal()))
    try:
        pid = _start(runtime, record, plan, stdio=stdio, console=console)
    finally:
        if devnull >= 0:
            os.close(devnull)
        if console is not None:
            console.sock.close()
    if ours is not None:
        try:
            master = terminal.receive_master(ours)
        finally:
            ours.close()
        try:
            terminal.attach(master, interactive)
        finally:
            os.close(master)
    code = enter.wait(pid, forward_signals=True)
    container_event(runtime.roots, "exec_die", record, execID=exec_id, exitCode=code)
    return code


def _event(runtime: Runtime, action: str, argv: list[str], record: ContainerState,
           exec_id: str) -> None:
    """Docker's exec_create/exec_start events: the action names the command as dockerd
    writes it (entrypoint, a space, the arguments: ``exec_start: true `` for one word)."""
    container_event(runtime.roots, f"{action}: {argv[0]} {' '.join(argv[1:])}", record,
                    execID=exec_id)


def _start(runtime: Runtime, record: ContainerState, plan, **how) -> int:
    """enter.start_in with exec's errors: not running (Conflict), or the start's failure
    with dockerd 20.10's code (126 for not found as well: only `docker run` says 127)."""
    try:
        return enter.start_in(record.pid, runtime.cgroup(record).procs_files(), plan, **how)
    except enter.NotRunning:
        raise Conflict(f"container {record.name} is not running") from None
    except enter.EnterFailed as exc:
        code = EXEC_START_FAILED if exc.exit_code == child.EXIT_NOT_FOUND else exc.exit_code
        raise IsoinspectError(str(exc), exit_code=code) from None


def _start_detached(runtime: Runtime, record: ContainerState, plan, exec_id: str) -> int:
    """``exec -d``: a small monitor (our child until we exit, in a session of its own) starts
    the command, tells us it runs, waits for it and records exec_die with its code, as dockerd
    does for a detached exec. Returns 0 once the command runs."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    monitor = os.fork()
    if monitor == 0:
        code = 0
        try:
            os.close(read_fd)
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            try:
                pid = _start(runtime, record, plan, stdio=(devnull, devnull, devnull))
            except IsoinspectError as exc:
                os.write(write_fd, f"{exc.exit_code} {exc}".encode())
                os._exit(0)
            os.write(write_fd, b"ok")
            os.close(write_fd)
            container_event(runtime.roots, "exec_die", record, execID=exec_id,
                            exitCode=enter.wait(pid))
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        reply = pipe.read()
    if reply == b"ok":
        return 0
    code_text, _, message = reply.partition(b" ")
    if not code_text.isdigit():
        raise IsoinspectError("exec -d: the monitor died before the command started")
    raise IsoinspectError(message.decode(errors="replace"), exit_code=int(code_text))
