"""What the container's first process does between clone() and exec() of the user's command.

Runs as PID 1 of the new PID namespace, in fresh mnt/uts/ipc/net namespaces. The parent
prepared an ``InitPlan`` (runtime/init_plan.py) so this side only makes system calls; how
the root file system is made is the plan's ``root`` object (an image's overlay or an OCI
bundle), the rest is the same for every caller. Nothing here may return into the
caller's Python stack: any failure is written to the error pipe and the process _exits with
Docker's codes (125 set-up failed, 126 not executable, 127 command not found). On success the
error pipe (close-on-exec) simply closes, which tells the parent the command is running.
"""

from __future__ import annotations

import os
import stat

from isoinspect.runtime import rootfs
from isoinspect.runtime.init_plan import InitPlan, ProcessPlan
from isoinspect.runtime.linux import capabilities, rlimits, sealed_exec
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.linux.loopback import bring_up_loopback
from isoinspect.runtime.users import resolve_user

EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class ExecFailure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_child(plan: InitPlan) -> None:
    """Set the container up and exec its command; never returns."""
    code = EXIT_SETUP_FAILED
    try:
        _setup(plan)
        process = plan.process
        # Privileges are dropped before a create/start split waits (as runc does): `start`
        # and a warm-pool hand-off then only release the exec.
        home, stub = prepare(process, plan.err_fd, plan.exec_stub_fd)
        if plan.sync_fd >= 0 and plan.late_sync:
            # Bridge networking was set up meanwhile. Waited for after the privileges are
            # dropped (~0.6 ms: signals, user, capabilities, seccomp), which overlap the
            # parent's veth instead of following it; the create/start split below waits there
            # too (seccomp profiles allow read/close: the command needs them anyway).
            _wait_for_parent(plan.sync_fd)
        if plan.ready_fd >= 0:
            # create/start split (OCI, warm pool): say "set up", block until `start`.
            os.write(plan.ready_fd, b"r")
            os.close(plan.ready_fd)
            _wait_for_parent(plan.start_fd)
            if plan.before_exec is not None:  # OCI startContainer hooks, a zygote's command
                process = plan.before_exec(plan) or process
        exec_command(process, home, plan.err_fd, stub)
    except ExecFailure as failure:
        message, code = str(failure), failure.code
    except BaseException as exc:  # report everything: this is a forked copy of the caller
        message = f"container set-up failed: {_describe(exc)}"
    try:
        os.write(plan.err_fd, message.encode(errors="replace")[:4000])
    finally:
        os._exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc} ({exc.filename})"
    return str(exc) or type(exc).__name__


def _setup(plan: InitPlan) -> None:
    sc.make_non_dumpable()  # before joining anything (the OCI init may share a pid namespace)
    if plan.pdeathsig:
        sc.prctl(sc.PR_SET_PDEATHSIG, plan.pdeathsig)
    wire_stdio(plan.stdio)
    close_extra_fds(3 + plan.process.preserve_fds)  # before any hook or mount helper runs
    if plan.userns_sync_fd >= 0:
        # New user namespace: the parent writes our uid/gid maps and puts us in our cgroup
        # (its files belong to the host's root, whom we are not any more); then become root
        # of the namespace, which gives back the full capability set inside it.
        _wait_for_parent(plan.userns_sync_fd)
    if plan.userns_sync_fd >= 0 or plan.joined_userns:
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    join_cgroups(plan.cgroup_procs)
    if plan.mount_ns_fd >= 0:  # joined here, not by the runtime: its own view stays its own
        sc.setns(plan.mount_ns_fd, sc.CLONE_NEWNS)
        os.close(plan.mount_ns_fd)
    if plan.new_cgroupns:
        sc.unshare(sc.CLONE_NEWCGROUP)
    os.umask(0o022)
    root = plan.root
    root.before_pivot(plan)
    if plan.sync_fd >= 0 and not plan.late_sync:  # the parent's pre-start hooks (OCI
        _wait_for_parent(plan.sync_fd)              # prestart, tracing) run now
    root.pivot(plan)
    root.after_pivot(plan)
    os.umask(plan.umask)
    if plan.console_fd >= 0:  # run -t: the container's own devpts names the terminal
        from isoinspect.runtime.oci.console import become_terminal
        become_terminal(plan.console_fd, plan.console_size)
    if plan.read_only:
        rootfs.remount_root_readonly()
    if plan.hostname:
        sc.sethostname(plan.hostname)
    if plan.own_net:
        bring_up_loopback()


def _wait_for_parent(fd: int) -> None:
    """Block until the parent's pre-start hooks (e.g. network set-up) are done, or until
    `start` opens the container's start FIFO (create/start split); anything but "g" aborts."""
    while True:
        try:
            answer = os.read(fd, 1)
            break
        except InterruptedError:
            continue
    os.close(fd)
    if answer != b"g":
        os._exit(EXIT_SETUP_FAILED)  # the parent failed and reports why


def wire_stdio(stdio: tuple) -> None:
    for target, source in enumerate(stdio):
        if source is not None and source != target:
            os.dup2(source, target)


def enter(process: ProcessPlan, err_fd: int, stub_fd: int = -1) -> None:
    """The last steps of every process entering a container (first process or exec):
    signal dispositions reset, privileges dropped, exec. (Inherited descriptors were marked
    close-on-exec by the caller, before running anything else: ``close_extra_fds``.)"""
    home, stub_fd = prepare(process, err_fd, stub_fd)
    exec_command(process, home, err_fd, stub_fd)


def prepare(process: ProcessPlan, err_fd: int, stub_fd: int = -1) -> tuple[str, int]:
    """Everything before the exec itself: signals reset, the exec stub, privileges dropped;
    returns (home directory, stub descriptor)."""
    sc.reset_signals()
    if stub_fd < 0 and sealed_exec.supported():
        # Made before seccomp and the user change: memfd_create needs neither, but a custom
        # filter might not allow it.
        stub_fd = sealed_exec.sealed_stub(err_fd)
    return drop_privileges(process), stub_fd


def close_extra_fds(first: int) -> None:
    """Mark every inherited descriptor from ``first`` up close-on-exec (runc does the same):
    whatever the caller (a shim, a shell, a benchmark) leaked must not reach the command."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def drop_privileges(process: ProcessPlan) -> str:
    """rlimits, user, capabilities, no_new_privs and seccomp, in the order the kernel needs;
    returns the user's home directory (for $HOME).

    With no_new_privs (the run default) the filter is loaded last, after the capabilities are
    gone, so it need not allow the set-up calls themselves. Without it (an OCI config's
    default, so set-uid programs keep working) loading a filter needs CAP_SYS_ADMIN, so it is
    loaded before the user changes and must allow the few calls that follow (setgroups,
    setres[ug]id, prctl, capset, chdir, execve), which Docker's profile does (runc's order).
    """
    rlimits.apply_rlimits(process.rlimits)
    uid, gid, groups, home = resolve_user(process.user)
    groups = groups + list(process.additional_gids)  # runc: the user's groups, then these
    caps = process.caps if process.caps is not None else capabilities.CapSets(bounding=0)
    if process.no_new_privileges:
        capabilities.switch_user(uid, gid, groups, caps)
        sc.make_non_dumpable()  # a uid change resets it to fs.suid_dumpable, which may be 1
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if process.seccomp:
            sc.load_seccomp_filter(process.seccomp)
    else:
        if process.seccomp:
            sc.load_seccomp_filter(process.seccomp)
        capabilities.switch_user(uid, gid, groups, caps)
        sc.make_non_dumpable()
    return home


def join_cgroups(files: list[str]) -> None:
    """Move this (single-threaded) process into its cgroup: "0" is the writer itself, and
    the files are CgroupManager.self_join_files (v1's ``tasks``: no global lock)."""
    for path in files:
        with open(path, "w") as handle:
            handle.write("0")


def new_exec_stub(err_fd: int) -> int:
    """The sealed exec stub for a child about to be forked or cloned (-1 where unsupported).

    Made by the parent: a forked child that built it would copy-on-write its share of the
    parent's heap first (measured: +0.4-0.6 ms per start, against ~25 us here). The parent
    closes it once the child exists; it is close-on-exec, so the command never holds it.
    """
    if not sealed_exec.supported():
        return -1
    try:
        return sealed_exec.sealed_stub(err_fd)
    except OSError as exc:  # e.g. vm.memfd_noexec=2 refuses executable memfds
        from isoinspect.runtime.errors import IsoinspectError
        raise IsoinspectError(f"cannot make the sealed exec stub (memfd): {exc.strerror}; "
                              "check the vm.memfd_noexec sysctl", exit_code=125) from None


def exec_command(process: ProcessPlan, home: str, err_fd: int, stub_fd: int) -> None:
    """exec the command, through the sealed stub: never from the host's python file itself."""
    argv = process.argv
    env = process.env
    if not any(item.startswith("HOME=") for item in env):
        env = env + [f"HOME={home or '/'}"]
    try:
        os.chdir(process.workdir)
    except OSError as exc:
        raise ExecFailure(f"cannot chdir to working directory {process.workdir!r}: "
                           f"{exc.strerror}", EXIT_SETUP_FAILED) from None
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    program = argv[0]
    path = _look_up(program, environ)
    try:
        if stub_fd >= 0:
            sealed_exec.exec_via_stub(stub_fd, err_fd, path, argv, environ)
        else:
            os.execve(path, argv, environ)
    except FileNotFoundError:
        raise ExecFailure(f'exec: "{program}": no such file or directory', EXIT_NOT_FOUND) \
            from None
    except OSError as exc:
        raise ExecFailure(f'exec: "{program}": {exc.strerror}', EXIT_NOT_EXECUTABLE) from None


def _look_up(program: str, environ: dict[str, str]) -> str:
    """The file execvp would run: a path as given, else the first regular, executable file
    on $PATH (Docker's messages and codes when there is none). The stub reports any failure
    of the exec itself (exec format error, a missing interpreter...)."""
    if "/" in program:
        return program
    path = environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    denied = False
    for directory in path.split(":"):
        candidate = f"{directory or '.'}/{program}"
        try:
            info = os.stat(candidate)
        except PermissionError:  # a directory on $PATH we may not search
            denied = True
            continue
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = True
    if denied:
        raise ExecFailure(f'exec: "{program}": permission denied', EXIT_NOT_EXECUTABLE)
    raise ExecFailure(f'exec: "{program}": executable file not found in $PATH', EXIT_NOT_FOUND)
