"""``exec``: run another process in a running container (runc exec --process JSON).

The CLI forks A; A joins the container's cgroup, then its namespaces (opened from
/proc/<init>/ns before any is joined; mount last), and forks B, which is inside the PID
namespace. B drops privileges like the init (rlimits, user, capabilities, no_new_privs, the
container's seccomp program) and execs. A reports B's pid and exits; B is re-parented to the
CLI (a child subreaper) which waits for it, or, with --detach, to the caller's subreaper.
With a terminal, B opens the pty from the container's /dev/ptmx and sends the master on the
console socket the CLI connected before any namespace was joined.
"""

from __future__ import annotations

import json
import os

from isoinspect.runtime.container_state import Status
from isoinspect.runtime.oci import config as cfg
from isoinspect.runtime.oci import translate
from isoinspect.runtime.oci.container import (OciError, Store, _manager, _read_all,
                                              _write_pid_file, status_of)

NS_ORDER = ("cgroup", "ipc", "uts", "net", "pid", "mnt")
NS_CLONE = {"cgroup": 0x02000000, "ipc": 0x08000000, "uts": 0x04000000, "net": 0x40000000,
            "pid": 0x20000000, "mnt": 0x00020000}


def load_process(path: str) -> dict:
    try:
        with open(path) as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as exc:
        raise cfg.ConfigError(f"--process {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise cfg.ConfigError(f"--process {path}: not a JSON object")
    spec.setdefault("cwd", "/")
    cfg.check_process_section(spec)
    return spec


def execute(store: Store, cid: str, spec: dict, detach: bool = False,
            pid_file: str | None = None, console_socket: str | None = None) -> int:
    # Everything the forked processes run is imported now: after setns(mnt) the package's
    # files are out of reach.
    import array  # noqa: F401
    import fcntl  # noqa: F401
    import socket  # noqa: F401
    import struct  # noqa: F401
    import termios  # noqa: F401

    from isoinspect.runtime import child  # noqa: F401
    from isoinspect.runtime.linux import capabilities, rlimits  # noqa: F401
    from isoinspect.runtime.linux import syscalls as sc
    from isoinspect.runtime.users import resolve_user  # noqa: F401
    from isoinspect.runtime.oci.setup import close_extra_fds  # noqa: F401
    from isoinspect.runtime.oci import console  # noqa: F401

    state = store.load(cid)
    if status_of(store, state) not in (Status.RUNNING, Status.CREATED):
        raise OciError("cannot exec in a stopped container")
    init = state.pid
    terminal = bool(spec.get("terminal"))
    if terminal and not console_socket:
        raise cfg.ConfigError("process.terminal is true: --console-socket is required")
    seccomp = None
    if state.seccomp_path:
        with open(state.seccomp_path, "rb") as handle:
            seccomp = handle.read()
    plan = {"rlimits": translate.rlimits(spec), "user": translate.user_spec(spec),
            "caps": translate.capability_mask(spec), "seccomp": seccomp,
            "argv": list(spec["args"]), "env": translate.environment(spec),
            "workdir": spec.get("cwd") or "/",
            # an exec'd process: its own flag, or the container's (runc does the same)
            "no_new_privileges": bool(spec.get("noNewPrivileges",
                                               state.no_new_privileges))}
    procs = _manager(state.cgroup).procs_files()
    ns_fds = []
    for kind in NS_ORDER:
        theirs = f"/proc/{init}/ns/{kind}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino:
                continue
            ns_fds.append((kind, os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)))
        except FileNotFoundError:
            continue
    # The pty is opened by the process itself once inside the container (its devpts, so
    # `tty` names it), and its master sent on this socket, connected while the path is
    # reachable.
    sock = console.connect(console_socket) if terminal else None
    # socket/array are imported by connect(); send_on needs nothing more after setns.
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    if not detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    first = os.fork()
    if first == 0:
        _intermediate(plan, procs, ns_fds, sock, spec.get("consoleSize"), err_w, pid_w)
    for fd in (err_w, pid_w):
        os.close(fd)
    if sock is not None:
        sock.close()
    for _, fd in ns_fds:
        os.close(fd)
    os.waitpid(first, 0)
    raw = _read_all(pid_r)
    os.close(pid_r)
    message = _read_all(err_r).decode(errors="replace")
    os.close(err_r)
    if not raw:
        raise OciError(message or "exec failed: could not enter the container")
    pid = int(raw)
    if message:
        code = _wait(pid) if not detach else 1
        raise OciError(message, exit_code=code if code in (126, 127) else 1)
    _write_pid_file(pid_file, pid)
    if detach:
        return 0
    return _wait(pid, forward=True)


def _intermediate(plan, procs, ns_fds, sock, size, err_w, pid_w) -> None:
    from isoinspect.runtime.linux import syscalls as sc
    code = 125
    try:
        sc.make_non_dumpable()  # before joining; _final inherits it
        for path in procs:
            with open(path, "w") as handle:
                handle.write(str(os.getpid()))
        for kind, fd in ns_fds:
            sc.setns(fd, NS_CLONE[kind])
        pid = os.fork()
        if pid == 0:
            _final(plan, sock, size, err_w)
        os.write(pid_w, str(pid).encode())
        code = 0
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(err_w, f"exec set-up failed: {exc}".encode()[:4000])
        except OSError:
            pass
    os._exit(code)


def _final(plan, sock, size, err_w) -> None:
    from isoinspect.runtime import child
    from isoinspect.runtime.oci import console
    code = 125
    try:
        try:
            if sock is not None:
                master, slave = console.open_pty(size)  # the container's /dev/ptmx
                console.send_on(sock, master)
                sock.close()
                os.close(master)
                for target in (0, 1, 2):
                    os.dup2(slave, target)
                if slave > 2:
                    os.close(slave)
                import fcntl
                import termios
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            os.chdir("/")
            plan["err_fd"] = err_w  # where the exec stub reports a failed exec
            from isoinspect.runtime.oci.setup import (close_extra_fds, drop_privileges,
                                                      reset_python_signals)
            close_extra_fds(3 + plan.get("preserve_fds", 0))
            reset_python_signals()
            drop_privileges(plan)
            child.exec_command(plan)
        except child.ExecFailure as failure:
            message, code = str(failure), failure.code
        except BaseException as exc:  # noqa: BLE001
            message = f"exec failed: {exc}"
        os.write(err_w, message.encode(errors="replace")[:4000])
    finally:
        os._exit(code)


def _wait(pid: int, forward: bool = False) -> int:
    from isoinspect.runtime import process
    previous = {}
    if forward:
        import signal

        def relay(signum, _frame):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            previous[signum] = signal.signal(signum, relay)
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return process.exit_code_from_status(status)
            except InterruptedError:
                continue
            except ChildProcessError:
                return 255
    finally:
        if previous:
            import signal
            for signum, handler in previous.items():
                signal.signal(signum, handler)
