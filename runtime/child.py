"""What the container's first process does between clone() and exec() of the user's command.

Runs as PID 1 of the new PID namespace, in fresh mnt/uts/ipc/net namespaces. The parent
prepared a ``plan`` dict so this side only makes system calls. Nothing here may return into the
caller's Python stack: any failure is written to the error pipe and the process _exits with
Docker's codes (125 set-up failed, 126 not executable, 127 command not found). On success the
error pipe (close-on-exec) simply closes, which tells the parent the command is running.
"""

from __future__ import annotations

import os
import stat

from isoinspect.runtime import rootfs
from isoinspect.runtime.linux import capabilities, paths_policy, rlimits, sealed_exec
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


def run_child(plan: dict) -> None:
    """Set the container up and exec its command; never returns."""
    err_fd = plan["err_fd"]
    code = EXIT_SETUP_FAILED
    try:
        _setup(plan)
        if plan.get("ready_fd", -1) >= 0:
            # create/start split (OCI): say "set up" and block until `start` releases us.
            os.write(plan["ready_fd"], b"r")
            os.close(plan["ready_fd"])
            _wait_for_parent(plan["start_fd"])
            if plan.get("before_exec") is not None:  # OCI startContainer hooks
                plan["before_exec"](plan)
        exec_command(plan)
    except ExecFailure as failure:
        message, code = str(failure), failure.code
    except BaseException as exc:  # report everything: this is a forked copy of the caller
        message = f"container set-up failed: {_describe(exc)}"
    try:
        os.write(err_fd, message.encode(errors="replace")[:4000])
    finally:
        os._exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc} ({exc.filename})"
    return str(exc) or type(exc).__name__


def _setup(plan: dict) -> None:
    sc.make_non_dumpable()  # before joining anything (the OCI init may share a pid namespace)
    if plan["pdeathsig"]:
        sc.prctl(sc.PR_SET_PDEATHSIG, plan["pdeathsig"])
    _wire_stdio(plan)
    if plan.get("userns_sync_fd", -1) >= 0:
        # New user namespace: the parent writes our uid/gid maps and puts us in our cgroup
        # (its files belong to the host's root, whom we are not any more); then become root
        # of the namespace, which gives back the full capability set inside it.
        _wait_for_parent(plan["userns_sync_fd"])
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for procs in plan["cgroup_procs"]:
        with open(procs, "w") as handle:
            handle.write("0")
    if plan["new_cgroupns"]:
        sc.unshare(sc.CLONE_NEWCGROUP)
    os.umask(0o022)
    if plan.get("oci_setup") is not None:  # an OCI bundle: its root and mounts (runtime/oci)
        plan["oci_setup"].setup(plan)
        return
    root = plan["rootfs"]
    rootfs.make_mounts_private()
    rootfs.mount_overlay(root, plan["lower"], plan["upper"], plan["work"])
    rootfs.mount_proc_sys(root)
    if plan["cgroup2"]:
        rootfs.mount_cgroup2(root)
    rootfs.populate_dev(root, bind_devices=plan.get("userns_sync_fd", -1) >= 0)
    paths_policy.mask_paths(root, plan["masked_paths"])
    paths_policy.readonly_paths(root, plan["readonly_paths"])
    rootfs.pivot_into(root)
    if plan.get("sync_fd", -1) >= 0:
        _wait_for_parent(plan["sync_fd"])
    if plan["read_only"]:
        rootfs.remount_root_readonly()
    sc.sethostname(plan["hostname"])
    if plan["own_net"]:
        bring_up_loopback()
    drop_privileges(plan)


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


def _wire_stdio(plan: dict) -> None:
    for target, source in enumerate(plan["stdio"]):
        if source is not None and source != target:
            os.dup2(source, target)


def drop_privileges(plan: dict) -> None:
    """rlimits, user, capabilities, no_new_privs and seccomp, in the order the kernel needs.

    Shared with ``exec`` into a running container. Seccomp comes last so the filter does not
    have to allow the set-up calls themselves; the exec stub is made before it for the same
    reason.
    """
    prepare_exec(plan)
    rlimits.apply_rlimits(plan["rlimits"])
    uid, gid, groups, home = resolve_user(plan["user"])
    plan["home"] = home
    capabilities.switch_user(uid, gid, groups, plan["caps"])
    sc.make_non_dumpable()  # a uid change resets it to fs.suid_dumpable, which may be 1
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    if plan["seccomp"]:
        sc.load_seccomp_filter(plan["seccomp"])


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


def prepare_exec(plan: dict) -> None:
    """Make the sealed stub the command will be exec'd through (runtime/linux/sealed_exec.py).

    Called before seccomp and before the user changes: memfd_create needs neither, but a
    custom filter might not allow it.
    """
    if plan.get("exec_stub_fd", -1) < 0 and sealed_exec.supported():
        plan["exec_stub_fd"] = sealed_exec.sealed_stub(plan["err_fd"])


def exec_command(plan: dict) -> None:
    """exec the command, through the sealed stub: never from the host's python file itself."""
    argv = plan["argv"]
    env = plan["env"]
    if not any(item.startswith("HOME=") for item in env):
        env = env + [f"HOME={plan.get('home', '/')}"]
    try:
        os.chdir(plan["workdir"])
    except OSError as exc:
        raise ExecFailure(f"cannot chdir to working directory {plan['workdir']!r}: "
                           f"{exc.strerror}", EXIT_SETUP_FAILED) from None
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    program = argv[0]
    path = _look_up(program, environ)
    try:
        if sealed_exec.supported():
            prepare_exec(plan)
            sealed_exec.exec_via_stub(plan["exec_stub_fd"], plan["err_fd"], path, argv, environ)
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
