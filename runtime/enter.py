"""Enter a running container: join its cgroup and namespaces, then exec a ``ProcessPlan``.

The one way into a running container, for `isoinspect exec` and `isoinspect-runc exec` (runc
and youki do the same for their exec and init). The caller forks A; A joins the container's
cgroup, then its namespaces (opened from /proc/<init>/ns before any is joined: user first, mount
last; one the caller already shares is skipped) and forks B, which is inside the PID namespace.
A reports B's pid and exits; B closes inherited descriptors, opens a terminal if asked, and
enters the container exactly like its first process (runtime/child.enter). The caller is a
child subreaper, so B is re-parented to it and the caller waits for it and gets its exit code;
detached, B is re-parented to the container's init.
"""

from __future__ import annotations

import os

from isoinspect.runtime import child, process
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.init_plan import ProcessPlan
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.pipes import close_all, read_all

# Joining order: the user namespace grants the capabilities needed to join the others; the
# mount namespace last, since the others are opened through /proc paths.
NAMESPACE_ORDER = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt")


class EnterFailed(IsoinspectError):
    """The process could not be started in the container (``exit_code``: 125, 126 or 127)."""


class NotRunning(EnterFailed):
    """The container's first process is gone."""


class Console:
    """A terminal for the process: its master is sent on ``sock`` (OCI --console-socket)."""

    __slots__ = ("sock", "size")

    def __init__(self, sock, size: object = None) -> None:
        self.sock, self.size = sock, size


def open_namespaces(init_pid: int) -> list[tuple[str, int]]:
    """Descriptors of the namespaces of ``init_pid`` that this process is not in already."""
    fds = []
    try:
        for kind in NAMESPACE_ORDER:
            theirs = f"/proc/{init_pid}/ns/{kind}"
            try:
                if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino:
                    continue
            except FileNotFoundError:
                if kind == "mnt":  # the init is gone
                    raise
                continue
            fds.append((kind, os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)))
    except BaseException:
        for _, fd in fds:
            os.close(fd)
        raise
    return fds


def start_in(init_pid: int, cgroup_procs: list[str], plan: ProcessPlan, *,
             detach: bool = False, stdio: tuple = (None, None, None),
             console: Console | None = None, new_session: bool = False) -> int:
    """Start ``plan`` in the container whose first process is ``init_pid``; return its pid
    once it has been exec'd. Raises EnterFailed (after reaping it, unless detached).
    ``new_session``: the process leaves the caller's session (`exec -d`: a Ctrl-C in the
    caller's terminal must not reach it)."""
    if console is not None:  # what the terminal set-up needs, loaded before the mnt ns changes
        import array  # noqa: F401
        import fcntl  # noqa: F401
        import termios  # noqa: F401

        from isoinspect.runtime.oci import console as _console  # noqa: F401
    try:
        ns_fds = open_namespaces(init_pid)
    except FileNotFoundError:
        raise NotRunning("the container is not running") from None
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    stub = child.new_exec_stub(err_w)
    if not detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    try:
        first = os.fork()
    except BaseException:
        close_all(err_r, err_w, pid_r, pid_w, stub, *(fd for _, fd in ns_fds))
        raise
    if first == 0:
        _join(plan, cgroup_procs, ns_fds, stdio, console, new_session, err_w, pid_w, stub)
    close_all(err_w, pid_w, stub, *(fd for _, fd in ns_fds))
    if console is not None:
        console.sock.close()
    process.wait_status(first)
    raw = read_all(pid_r)
    message = read_all(err_r).decode(errors="replace")
    if not raw:
        raise EnterFailed(message or "exec failed: could not enter the container",
                          exit_code=125)
    pid = int(raw)
    if message:
        code = 125 if detach else wait(pid)
        raise EnterFailed(message, exit_code=code)
    return pid


def wait(pid: int, forward_signals: bool = False) -> int:
    """Wait for an entered process (our child: we are its subreaper); its exit code.
    ``forward_signals``: SIGHUP/INT/QUIT/TERM go to it meanwhile, as with `docker exec`."""
    from isoinspect.runtime.signal_forwarding import SignalForwarder

    forwarder = SignalForwarder() if forward_signals else None
    if forwarder is not None:
        forwarder.attach(pid)
    try:
        status = process.wait_status(pid)
    finally:
        if forwarder is not None:
            forwarder.restore()
    return 255 if status is None else process.exit_code_from_status(status)


def _join(plan: ProcessPlan, cgroup_procs: list[str], ns_fds: list, stdio: tuple,
          console: Console | None, new_session: bool, err_w: int, pid_w: int,
          stub: int) -> None:
    """Process A: join the cgroup and the namespaces, fork B, report its pid. Never returns."""
    code = child.EXIT_SETUP_FAILED
    try:
        sc.make_non_dumpable()  # before joining (B inherits it)
        for path in cgroup_procs:
            with open(path, "w") as handle:
                handle.write(str(os.getpid()))
        for _kind, fd in ns_fds:
            sc.setns(fd, 0)
        pid = os.fork()
        if pid == 0:
            _become(plan, stdio, console, new_session, err_w, stub)
        os.write(pid_w, str(pid).encode())
        code = 0
    except BaseException as exc:  # noqa: BLE001 - a forked copy must never return
        try:
            os.write(err_w, f"exec set-up failed: {exc}".encode(errors="replace")[:4000])
        except OSError:
            pass
    os._exit(code)


def _become(plan: ProcessPlan, stdio: tuple, console: Console | None, new_session: bool,
            err_w: int, stub: int) -> None:
    """Process B, inside the PID namespace: terminal, descriptors, then child.enter."""
    code = child.EXIT_SETUP_FAILED
    try:
        try:
            child.wire_stdio(stdio)
            if new_session:
                os.setsid()
            if console is not None:
                from isoinspect.runtime.oci.console import become_terminal
                become_terminal(console.sock.detach(), console.size)
            os.chdir("/")
            child.close_extra_fds(3 + plan.preserve_fds)
            child.enter(plan, err_w, stub)
        except child.ExecFailure as failure:
            message, code = str(failure), failure.code
        except BaseException as exc:  # noqa: BLE001
            message = f"exec failed: {exc}"
        os.write(err_w, message.encode(errors="replace")[:4000])
    finally:
        os._exit(code)
