"""``exec``: run another process in a running container (runc exec --process JSON).

The process section becomes a ProcessPlan through the same builder as the init's
(translate.process_plan), with the container's seccomp program; runtime/enter.py joins the
container and execs it, as for `isoinspect exec`.
"""

from __future__ import annotations

import json

from isoinspect.runtime.container_state import Status
from isoinspect.runtime.frozen import Frozen
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


class ExecFlags(Frozen):
    """`exec`'s flags that change the process (runc's getProcess): --cwd and --user replace,
    --env and --additional-gids add, --cap adds a capability (spelt CAP_X; another name is
    warned about and left out) to every set but inheritable (runc's choice), --no-new-privs sets noNewPrivileges, --tty the terminal."""

    cwd: object = None  # str or None
    env: list = []
    user: object = None  # "uid[:gid]" (numbers only, as runc) or None
    tty: bool = False
    caps: list = []
    additional_gids: list = []
    no_new_privs: bool = False


def apply_flags(spec: dict, flags: ExecFlags) -> dict:
    """A copy of the process section ``spec`` with ``flags`` applied, then validated."""
    spec = dict(spec)
    spec["env"] = list(spec.get("env") or []) + list(flags.env)
    spec.setdefault("cwd", "/")
    if flags.tty:
        spec["terminal"] = True
    if flags.cwd:
        spec["cwd"] = flags.cwd
    user = dict(spec.get("user") or {})
    if flags.user:
        uid, sep, gid = flags.user.partition(":")
        user["uid"] = _number(uid, "uid")
        if sep:
            user["gid"] = _number(gid, "gid")
    if flags.additional_gids:
        user["additionalGids"] = list(user.get("additionalGids") or []) + \
            [_number(str(gid), "additional gid") for gid in flags.additional_gids]
    spec["user"] = user
    if flags.caps:
        caps = {kind: list(names or ()) for kind, names in
                (spec.get("capabilities") or {}).items()}
        for kind in ("bounding", "effective", "permitted", "ambient"):
            caps[kind] = caps.get(kind, []) + list(flags.caps)
        spec["capabilities"] = caps
    if flags.no_new_privs:
        spec["noNewPrivileges"] = True
    cfg.check_process_section(spec)
    return spec


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise cfg.ConfigError(f"parsing {text!r} as int for {what} failed")
    return int(text)


def process_from_bundle(store: Store, cid: str, argv: list[str],
                        flags: ExecFlags = ExecFlags()) -> dict:
    """`exec ID ARGS` without --process: the bundle's own process section with the flags
    applied, as runc does (so the command keeps the container's capabilities, user, rlimits
    and environment)."""
    state = store.load(cid)
    config = cfg.load_config(state.bundle)
    spec = dict(config.get("process") or {})
    spec["args"] = list(argv)
    spec["terminal"] = False
    return apply_flags(spec, flags)


def execute(store: Store, cid: str, spec: dict, detach: bool = False,
            pid_file: str | None = None, console_socket: str | None = None,
            ignore_paused: bool = False) -> int:
    """Start ``spec`` in the container; a paused one is refused unless ``ignore_paused``
    (the process then waits frozen in its cgroup until `resume`, as with runc)."""
    from isoinspect.runtime import enter

    state = store.load(cid)
    status = status_of(store, state)
    if status == Status.PAUSED and not ignore_paused:
        raise OciError("cannot exec in a paused container (use --ignore-paused to override)")
    if status not in (Status.RUNNING, Status.CREATED, Status.PAUSED):
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
