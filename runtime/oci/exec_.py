"""``exec``: run another process in a running container (runc exec --process JSON).

The process section becomes a ProcessPlan through the same builder as the init's
(translate.process_plan), with the container's seccomp program; runtime/enter.py joins the
container and execs it, as for `isoinspect exec`.
"""

from __future__ import annotations

import json

from isoinspect.runtime.container_state import Status
from isoinspect.runtime.oci import config as cfg
from isoinspect.runtime.oci import translate
from isoinspect.runtime.oci.container import OciError, Store, _manager, _write_pid_file, status_of


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


def process_from_bundle(store: Store, cid: str, argv: list[str], cwd: str | None = None,
                        env: list[str] = (), user: str | None = None,
                        tty: bool = False) -> dict:
    """`exec ID ARGS` without --process: the bundle's own process section with these
    overrides, as runc does (so the command keeps the container's capabilities, user,
    rlimits and environment; --env adds to it, --cwd and --user replace)."""
    state = store.load(cid)
    config = cfg.load_config(state.bundle)
    spec = dict(config.get("process") or {})
    spec["args"] = list(argv)
    spec["env"] = list(spec.get("env") or []) + list(env)
    spec["terminal"] = bool(tty)
    spec.setdefault("cwd", "/")
    if cwd:
        spec["cwd"] = cwd
    if user:
        uid, sep, gid = user.partition(":")
        spec["user"] = dict(spec.get("user") or {}, uid=int(uid))
        if sep:
            spec["user"]["gid"] = int(gid)
    cfg.check_process_section(spec)
    return spec


def execute(store: Store, cid: str, spec: dict, detach: bool = False,
            pid_file: str | None = None, console_socket: str | None = None) -> int:
    from isoinspect.runtime import enter

    state = store.load(cid)
    if status_of(store, state) not in (Status.RUNNING, Status.CREATED):
        raise OciError("cannot exec in a stopped container")
    terminal = bool(spec.get("terminal"))
    if terminal and not console_socket:
        raise cfg.ConfigError("process.terminal is true: --console-socket is required")
    seccomp = None
    if state.seccomp_path:
        with open(state.seccomp_path, "rb") as handle:
            seccomp = handle.read()
    plan = translate.process_plan(spec, seccomp, state.no_new_privileges)
    console = None
    if terminal:
        # The pty is opened by the process itself once inside the container (its devpts,
        # so `tty` names it); the socket is connected while the path is reachable.
        from isoinspect.runtime.oci import console as console_mod
        console = enter.Console(console_mod.connect(console_socket), spec.get("consoleSize"))
    procs = _manager(state.cgroup).procs_files()
    try:
        pid = enter.start_in(state.pid, procs, plan, detach=detach, console=console)
    except enter.EnterFailed as exc:
        code = exc.exit_code
        raise OciError(str(exc), exit_code=code if code in (126, 127) else 1) from None
    _write_pid_file(pid_file, pid)
    if detach:
        return 0
    return enter.wait(pid, forward_signals=True)
