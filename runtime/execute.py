"""``exec``: run another process inside a running container's namespaces and cgroup.

A forked helper joins the container's cgroup, then its namespaces (setns on
/proc/<pid>/ns/*; the pid namespace applies to children, so it forks once more), drops
privileges exactly like the container's first process and execs. The helper relays the exit
code, so ``exec`` returns what the command returned.
"""

from __future__ import annotations

import os

from isoinspect.runtime import child, process
from isoinspect.runtime.container_state import Status
from isoinspect.runtime.errors import Conflict, IsoinspectError
from isoinspect.runtime.linux import capabilities
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.units import parse_env, parse_user

_NAMESPACE_ORDER = ("ipc", "uts", "net", "pid", "cgroup", "mnt")


def exec_in_container(runtime: Runtime, ref: str, argv: list[str], env: list[str] | None = None,
                      workdir: str | None = None, user: str | None = None,
                      detach: bool = False) -> int:
    """Run ``argv`` in the container; return its exit code (0 at once with ``detach``)."""
    record = runtime.get(ref)
    if record.status != Status.RUNNING:
        raise Conflict(f"container {record.name} is not running")
    if user:
        parse_user(user)
    spec = record.spec
    merged = dict(item.partition("=")[::2] for item in record.env + parse_env(env or []))
    fds = {}
    # A user-namespaced container: join its user namespace first (that grants the
    # capabilities needed to join the namespaces it owns), then become its root.
    kinds = (("user",) if record.userns else ()) + _NAMESPACE_ORDER
    try:
        for kind in kinds:
            fds[kind] = os.open(f"/proc/{record.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        for fd in fds.values():
            os.close(fd)
        raise Conflict(f"container {record.name} is not running") from None
    plan = {
        "rlimits": runtime.default_rlimits(), "user": user or record.user,
        "caps": capabilities.parse_capabilities(spec["cap_add"], spec["cap_drop"]),
        "seccomp": runtime._seccomp_program() if spec["seccomp"] else None,
        "argv": argv, "env": [f"{k}={v}" for k, v in merged.items()],
        "workdir": workdir or record.workdir,
        "cgroup_procs": runtime.cgroup(record).procs_files(),
    }
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    plan["exec_stub_fd"] = stub = child.new_exec_stub(write_fd)
    helper = os.fork()
    if helper == 0:
        _helper(plan, fds, write_fd, detach)
    os.close(write_fd)
    if stub >= 0:
        os.close(stub)
    for fd in fds.values():
        os.close(fd)
    with os.fdopen(read_fd, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(helper, 0)
    code = process.exit_code_from_status(status)
    if message:
        raise IsoinspectError(message.decode(errors="replace"), exit_code=code)
    return code


def _helper(plan: dict, fds: dict, write_fd: int, detach: bool) -> None:
    """In the forked helper: join, fork the command, relay its exit status. Never returns."""
    try:
        sc.make_non_dumpable()  # before joining: see syscalls.make_non_dumpable
        for procs in plan["cgroup_procs"]:
            with open(procs, "w") as handle:
                handle.write("0")
        for kind in fds:
            sc.setns(fds[kind], 0)
        pid = os.fork()
    except BaseException as exc:
        os.write(write_fd, f"exec failed: {exc}".encode())
        os._exit(126)
    if pid == 0:
        plan["err_fd"] = write_fd
        plan["stdio"] = (None, None, None)
        if detach:
            os.setsid()
            devnull = os.open("/dev/null", os.O_RDWR)
            plan["stdio"] = (devnull, devnull, devnull)
        _exec_command(plan)
    os.close(write_fd)
    if detach:
        os._exit(0)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(process.exit_code_from_status(status))


def _exec_command(plan: dict) -> None:
    code = child.EXIT_SETUP_FAILED
    try:
        os.chdir("/")
        for target, source in enumerate(plan["stdio"]):
            if source is not None:
                os.dup2(source, target)
        child.drop_privileges(plan)
        child.exec_command(plan)
    except child.ExecFailure as failure:
        message, code = str(failure), failure.code
    except BaseException as exc:
        message = f"exec set-up failed: {exc}"
    os.write(plan["err_fd"], message.encode(errors="replace"))
    os._exit(code)
