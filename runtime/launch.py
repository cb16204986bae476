"""Clone a container's first process from an InitPlan and follow it to its exec.

The one start sequence of `isoinspect run` (Runtime.start, also build steps and `--trace`) and
`isoinspect-runc create` (no round trips: the child sets itself up from the plan). The parent
learns the outcome from pipes only:
  err   close-on-exec: EOF with nothing written = the command was exec'd; text = why not
  sync  optional: the child waits on it before pivot_root (with plan.late_sync: just before
        exec, its privileges dropped) while the parent runs pre-start hooks (OCI
        prestart/createRuntime, tracing; bridge networking late), then "g" lets it go on
  ready optional (create/start split): the child writes "r" once set up and then blocks on
        the plan's start_fd (the OCI exec FIFO) until `start`
  userns optional: a new user namespace waits for the parent to write its id maps
An existing user namespace (OCI path) is joined by a short-lived helper that clones the init as
the caller's child (CLONE_PARENT), runc's nsexec stage 1: setns(CLONE_NEWUSER) cannot be undone,
and the init's new namespaces must be owned by the joined one.
"""

from __future__ import annotations

import errno
import os

from isoinspect.runtime import child, process
from isoinspect.runtime.init_plan import InitPlan
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.linux.signals import SIGKILL
from isoinspect.runtime.pipes import close_all, read_all, read_byte


class Launch:
    """The parent's side of a cloned first process: its pid and the pipes that follow it."""

    __slots__ = ("pid", "err_r", "sync_w", "ready_r", "userns_w")

    def __init__(self, pid: int, err_r: int, sync_w: int, ready_r: int, userns_w: int) -> None:
        self.pid, self.err_r, self.sync_w = pid, err_r, sync_w
        self.ready_r, self.userns_w = ready_r, userns_w

    def release(self) -> None:
        """Let the child go on after the pre-start hooks."""
        fd, self.sync_w = self.sync_w, -1
        _go(fd)

    def release_user_namespace(self) -> None:
        """Let a user-namespaced child go on once its id maps are written."""
        fd, self.userns_w = self.userns_w, -1
        _go(fd)

    def outcome(self) -> str | None:
        """Block until the command was exec'd or, with the create/start split, until the
        child is set up: None. Otherwise the child's reason for failing (maybe empty)."""
        if self.ready_r >= 0:
            answer = read_byte(self.ready_r)
            os.close(self.ready_r)
            self.ready_r = -1
            if answer == b"r":
                return None
            message = read_all(self.err_r)
            self.err_r = -1
            return message.decode(errors="replace")
        message = read_all(self.err_r)
        self.err_r = -1
        return message.decode(errors="replace") or None

    def reap(self) -> int:
        """The exit code of a child that failed (it is ours until `create` returns)."""
        status = process.wait_status(self.pid)
        return 125 if status is None else process.exit_code_from_status(status)

    def abort(self) -> str:
        """Kill and reap the child; return what it had written on the error pipe."""
        process.send_signal(self.pid, SIGKILL)
        self.reap()
        close_all(self.sync_w, self.ready_r, self.userns_w)
        self.sync_w = self.ready_r = self.userns_w = -1
        if self.err_r < 0:
            return ""
        message = read_all(self.err_r)
        self.err_r = -1
        return message.decode(errors="replace")

    def close(self) -> None:
        close_all(self.err_r, self.sync_w, self.ready_r, self.userns_w)
        self.err_r = self.sync_w = self.ready_r = self.userns_w = -1


def _go(fd: int) -> None:
    if fd < 0:
        return
    try:
        os.write(fd, b"g")
    except BrokenPipeError:
        pass  # the child died: the error pipe says why
    finally:
        os.close(fd)


# Whether clone3(CLONE_INTO_CGROUP) works here: None until the first try, False once the
# kernel (< 5.7) or a seccomp filter refused it, so later starts go straight to clone.
_into_cgroup_works: bool | None = None
_REFUSED = (errno.ENOSYS, errno.EPERM, errno.E2BIG)


def clone_target(cgroup_procs: list[str]) -> str | None:
    """The cgroup v2 directory among the files a first process joins (their only
    cgroup.procs: pure v2's cgroup, or a hybrid host's unified one; v1's are ``tasks``), which
    clone3 can create it in, or None."""
    v2 = [path for path in cgroup_procs if path.endswith("/cgroup.procs")]
    return os.path.dirname(v2[0]) if len(v2) == 1 else None


def _clone(plan: InitPlan, flags: int) -> tuple[int, InitPlan]:
    """Clone the first process; the kernel puts it in the plan's cgroup v2 directory at birth
    (clone_target) and the child writes only the rest (v1's ``tasks``). The plan the child
    must follow comes back with the pid."""
    global _into_cgroup_works
    into_cgroup = clone_target(plan.cgroup_procs)
    if into_cgroup is not None and _into_cgroup_works is not False:
        try:
            fd = os.open(into_cgroup, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                pid = sc.clone_into_cgroup(flags, fd)
            finally:
                os.close(fd)  # in the child too: it has no use for it
            _into_cgroup_works = True
            return pid, plan.replace(cgroup_procs=[path for path in plan.cgroup_procs
                                                    if os.path.dirname(path) != into_cgroup])
        except OSError as exc:  # no child exists: the write below gives its usual error
            if exc.errno in _REFUSED:
                _into_cgroup_works = False
    return sc.clone_process(flags), plan


def clone_init(plan: InitPlan, flags: int, *, pre_start_hooks: bool = False,
               create_start: bool = False, user_namespace: bool = False,
               join_user_ns_fd: int = -1, cgroup_procs: list[str] = ()) -> Launch:
    """Clone with ``flags`` (CLONE_NEW*); the child runs ``plan`` (runtime/child.py).
    ``join_user_ns_fd``: an existing user namespace the init is cloned in (``cgroup_procs``
    are joined before it, while the helper is still the host's root).

    The pipes are made here and put in the plan; the sealed exec stub too (made by the
    parent: cheaper than in a forked child, see child.new_exec_stub). ``plan.cgroup_procs``
    come from CgroupManager.self_join_files; its v2 directory is given to clone3 (_clone).
    """
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    sync_r = sync_w = ready_r = ready_w = userns_r = userns_w = stub = -1
    try:
        if pre_start_hooks:
            sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        if create_start:
            ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        if user_namespace:
            userns_r, userns_w = os.pipe2(os.O_CLOEXEC)
            flags |= sc.CLONE_NEWUSER
        stub = child.new_exec_stub(err_w)
        plan = plan.replace(err_fd=err_w, sync_fd=sync_r, ready_fd=ready_w,
                            userns_sync_fd=userns_r, exec_stub_fd=stub,
                            joined_userns=join_user_ns_fd >= 0)
        if join_user_ns_fd >= 0:
            pid = _clone_in_user_namespace(plan, flags, join_user_ns_fd, cgroup_procs)
        else:
            pid, plan = _clone(plan, flags)
    except BaseException:
        close_all(err_r, err_w, sync_r, sync_w, ready_r, ready_w, userns_r, userns_w, stub)
        raise
    if pid == 0:
        child.run_child(plan)  # never returns
    close_all(err_w, sync_r, ready_w, userns_r, stub, plan.start_fd)
    return Launch(pid, err_r, sync_w, ready_r, userns_w)


def _clone_in_user_namespace(plan: InitPlan, flags: int, userns_fd: int,
                             cgroup_procs: list[str]) -> int:
    """The init's pid, cloned (as our child) by a helper that joined the user namespace."""
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    helper = sc.clone_process(0)
    if helper == 0:  # only system calls from here: this is a raw copy of the caller
        code = 1
        try:
            os.close(pid_r)
            child.join_cgroups(cgroup_procs)
            sc.setns(userns_fd, sc.CLONE_NEWUSER)
            pid = sc.clone_process(flags | sc.CLONE_PARENT)
            if pid == 0:
                os.close(pid_w)
                child.run_child(plan)  # never returns
            os.write(pid_w, str(pid).encode())
            code = 0
        except BaseException as exc:
            os.write(pid_w, f"!cannot join user namespace: {exc}".encode(errors="replace"))
        finally:
            os._exit(code)
    os.close(pid_w)
    answer = read_all(pid_r).decode(errors="replace")
    process.wait_status(helper)
    if not answer.isdigit():
        raise OSError(answer.lstrip("!") or "user namespace helper failed")
    return int(answer)
