"""The OCI operations (runtime-spec runtime.md) in runc's dialect: create, start, state, kill,
delete, exec, ps, run.

One directory per container under the state root: ``state.json`` (what `state` and the other
commands need: pid + start ticks, bundle, cgroup path, hooks, exec settings) and ``exec.fifo``.
``create`` clones the container's init from the CLI process itself; init sets everything up,
writes "r" on a pipe and blocks reading the FIFO, which it holds open read-write. The CLI then
exits, so init is re-parented (to containerd's shim, a child subreaper). ``start`` opens the
FIFO for writing, writes "g" and removes it: status is "created" while the FIFO exists and init
lives, "running" once it is gone, "stopped" when init has exited (or is a zombie).
"""

from __future__ import annotations

import json
import os
import shutil
import time

from isoinspect.runtime import process
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import write_atomic
from isoinspect.runtime.oci import config as cfg
from isoinspect.runtime.oci import translate

OCI_VERSION = "1.0.2"
DEFAULT_ROOT = "/run/isoinspect-runc"
SECCOMP_CACHE = os.environ.get("ISOINSPECT_OCI_SECCOMP_CACHE", "/var/lib/isoinspect/oci-seccomp")
CGROUP_ROOT = "/sys/fs/cgroup"
SIGKILL = 9


class OciError(IsoinspectError):
    pass


def _now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Store:
    """The state root (runc's --root): one directory per container id."""

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or DEFAULT_ROOT)

    def dir(self, cid: str) -> str:
        cfg.check_id(cid)
        return os.path.join(self.root, cid)

    def load(self, cid: str) -> dict:
        try:
            with open(os.path.join(self.dir(cid), "state.json")) as handle:
                return json.load(handle)
        except (FileNotFoundError, NotADirectoryError):
            raise OciError(f"container {cid} does not exist") from None
        except ValueError:
            raise OciError(f"container {cid}: state.json is corrupt") from None

    def save(self, state: dict) -> None:
        write_atomic(os.path.join(self.dir(state["id"]), "state.json"), json.dumps(state).encode())

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root)
                          if os.path.isfile(os.path.join(self.root, n, "state.json")))
        except FileNotFoundError:
            return []


def status_of(store: Store, state: dict) -> str:
    if not process.is_alive(state.get("pid"), state.get("pid_ticks")):
        return "stopped"
    if os.path.exists(os.path.join(store.dir(state["id"]), "exec.fifo")):
        return "created"
    return "paused" if state.get("paused") else "running"


def public_state(store: Store, state: dict) -> dict:
    status = status_of(store, state)
    return {"ociVersion": OCI_VERSION, "id": state["id"],
            "pid": state["pid"] if status != "stopped" else 0, "status": status,
            "bundle": state["bundle"], "rootfs": state["rootfs"], "created": state["created"],
            "owner": "", "annotations": state.get("annotations") or {}}


def _hook_state(state: dict, status: str) -> dict:
    return {"ociVersion": OCI_VERSION, "id": state["id"], "status": status,
            "pid": state.get("pid", 0), "bundle": state["bundle"],
            "annotations": state.get("annotations") or {}}


def _manager(path: str):
    from isoinspect.runtime.cgroups import make_manager
    return make_manager(path, CGROUP_ROOT)


def _cgroup_mode() -> str:
    from isoinspect.runtime.cgroups import read_layout
    return read_layout(CGROUP_ROOT).mode


def _write_pid_file(path: str | None, pid: int) -> None:
    if path:
        write_atomic(os.path.abspath(path), str(pid).encode())


# ---- create ------------------------------------------------------------------------------------

def create(store: Store, cid: str, bundle: str, pid_file: str | None = None,
           console_socket: str | None = None, preserve_fds: int = 0) -> dict:
    from isoinspect.runtime.runtime import require_root
    require_root()
    cfg.check_id(cid)
    bundle = os.path.abspath(bundle)
    config = cfg.load_config(bundle)
    cfg.validate(config, bundle)
    process_spec = config["process"]
    if process_spec.get("terminal") and not console_socket:
        raise cfg.ConfigError("process.terminal is true: --console-socket is required")
    os.makedirs(store.root, 0o711, exist_ok=True)
    directory = store.dir(cid)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise OciError(f"container with id exists: {cid}") from None
    state = {"id": cid, "bundle": bundle, "rootfs": cfg.root_path(config, bundle),
             "created": _now_iso(), "pid": 0, "pid_ticks": None,
             "annotations": config.get("annotations") or {},
             "cgroup": translate.cgroup_path(config, cid), "cgroup_created": False,
             "hooks": {k: translate.hooks(config, k) for k in ("poststart", "poststop")},
             "exec": {"no_new_privileges": bool(process_spec.get("noNewPrivileges")),
                      "seccomp": None}}
    pid = 0
    try:
        store.save(state)
        pid = _create_init(store, state, config, pid_file, console_socket, preserve_fds)
    except BaseException:
        if pid:
            _kill_and_wait(pid, state.get("pid_ticks"))
        _cleanup(state, directory)
        raise
    return state


def _cleanup(state: dict, directory: str) -> None:
    if state.get("cgroup_created"):
        try:
            manager = _manager(state["cgroup"])
            if manager.exists():
                manager.kill_all(SIGKILL)
                manager.remove()
        except (OSError, ValueError):
            pass
    shutil.rmtree(directory, ignore_errors=True)


def _kill_and_wait(pid: int, ticks: int | None) -> None:
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)  # our child while `create` runs
    except ChildProcessError:
        deadline = time.monotonic() + 5
        while process.is_alive(pid, ticks) and time.monotonic() < deadline:
            time.sleep(0.01)


def _seccomp_bytes(config: dict) -> bytes | None:
    section = translate.linux(config).get("seccomp")
    if section is None:
        return None
    from isoinspect.runtime.oci import seccomp_oci
    return seccomp_oci.load_bpf(section, SECCOMP_CACHE)


def _cgroup_dirs(manager) -> list[tuple[str, str]]:
    out = []
    root = os.path.realpath(CGROUP_ROOT)
    for directory in manager.dirs():
        real = os.path.realpath(directory)
        name = os.path.relpath(real, root).split("/")[0]
        if name not in (".", "..") and name not in [n for n, _ in out]:
            out.append((name, real))
    return out


def _rootfs_propagation(config: dict) -> tuple[int, int]:
    from isoinspect.runtime.oci.setup import PROPAGATION_OPTIONS
    value = translate.linux(config).get("rootfsPropagation") or ""
    default = PROPAGATION_OPTIONS["rslave"]
    if value in ("private", "rprivate", "slave", "rslave"):
        return PROPAGATION_OPTIONS[value], 0
    if value:
        return default, PROPAGATION_OPTIONS[value]
    return default, 0


def _create_init(store: Store, state: dict, config: dict, pid_file: str | None,
                 console_socket: str | None, preserve_fds: int = 0) -> int:
    # Everything init runs after pivot_root must be imported now (the package's files are
    # out of its reach then).
    import fcntl  # noqa: F401
    import termios  # noqa: F401

    from isoinspect.runtime import child
    from isoinspect.runtime.linux import loopback, paths_policy  # noqa: F401
    from isoinspect.runtime.linux import syscalls as sc
    from isoinspect.runtime.oci import hooks as hooks_mod
    from isoinspect.runtime.oci.setup import OciSetup

    directory = store.dir(state["id"])
    process_spec = config["process"]
    linux = translate.linux(config)
    flags, joins, new = translate.namespaces(config)
    resources = translate.resources(config)
    seccomp = _seccomp_bytes(config)
    if seccomp is not None:
        path = os.path.join(directory, "seccomp.bpf")
        with open(path, "wb") as handle:
            handle.write(seccomp)
        state["exec"]["seccomp"] = path

    manager = _manager(state["cgroup"])
    manager.create()
    state["cgroup_created"] = True
    store.save(state)
    manager.apply(resources)

    mounts = list(config.get("mounts") or ())
    hook_state = _hook_state(state, "creating")
    propagation, propagation_after = _rootfs_propagation(config)
    terminal = bool(process_spec.get("terminal"))
    oci = {
        "bundle": state["bundle"], "mounts": mounts, "terminal": terminal,
        "propagation": propagation, "propagation_after": propagation_after,
        "has_dev": any(m.get("destination", "").rstrip("/") == "/dev" for m in mounts),
        "devices": list(linux.get("devices") or ()),
        "masked": list(linux.get("maskedPaths") or ()),
        "readonly": list(linux.get("readonlyPaths") or ()),
        "sysctl": dict(linux.get("sysctl") or {}),
        "own_net": "network" in new, "cgroup_mode": _cgroup_mode(),
        "cgroup_dirs": _cgroup_dirs(manager),
        "create_container_hooks": translate.hooks(config, "createContainer"),
        "state": hook_state, "preserve_fds": max(0, int(preserve_fds)),
    }
    console_sock = None
    if terminal:
        # init opens the pty itself in the container's devpts (so `tty` names /dev/pts/0, as
        # with runc) and sends the master on this socket, connected while the path is ours.
        from isoinspect.runtime.oci import console
        import array  # noqa: F401
        import socket  # noqa: F401
        import struct  # noqa: F401
        console_sock = console.connect(console_socket)
        oci["console_fd"] = console_sock.fileno()
        oci["console_size"] = process_spec.get("consoleSize")
    fifo = os.path.join(directory, "exec.fifo")
    os.mkfifo(fifo, 0o600)
    start_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pre_hooks = translate.hooks(config, "prestart") + translate.hooks(config, "createRuntime")
    sync_r = sync_w = -1
    if pre_hooks:
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    start_hooks = translate.hooks(config, "startContainer")
    plan = {
        "err_fd": err_w, "ready_fd": ready_w, "start_fd": start_fd, "sync_fd": sync_r,
        "stdio": (None, None, None), "pdeathsig": 0,
        "cgroup_procs": manager.procs_files(), "new_cgroupns": "cgroup" in new,
        "rootfs": state["rootfs"], "read_only": bool((config.get("root") or {}).get("readonly")),
        "hostname": config.get("hostname") if "uts" in new else None,
        "own_net": "network" in new,
        "rlimits": translate.rlimits(process_spec), "user": translate.user_spec(process_spec),
        "caps": translate.capability_mask(process_spec), "seccomp": seccomp,
        "argv": list(process_spec["args"]), "env": translate.environment(process_spec),
        "workdir": process_spec.get("cwd") or "/",
        "no_new_privileges": bool(process_spec.get("noNewPrivileges")),
        "oci_setup": OciSetup(), "oci": oci,
        "before_exec": _start_container_hooks(start_hooks) if start_hooks else None,
    }
    # Namespaces given by path are joined by this process before the clone: the clone's child
    # is then created in them (pid: its children only; net/ipc/uts/cgroup: at once).
    if joins:
        sc.make_non_dumpable()  # before joining another container's namespaces
    for kind, path in joins:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, translate.NS_FLAGS[kind])
        except OSError as exc:
            raise OciError(f"cannot join {kind} namespace {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
    try:
        pid = sc.clone_process(flags)
    except BaseException:
        for fd in (start_fd, ready_r, ready_w, err_r, err_w, sync_r, sync_w):
            if fd >= 0:
                os.close(fd)
        if console_sock is not None:
            console_sock.close()
        raise
    if pid == 0:
        child.run_child(plan)  # never returns
    for fd in (start_fd, ready_w, err_w, sync_r):
        if fd >= 0:
            os.close(fd)
    if console_sock is not None:
        console_sock.close()
    state["pid"] = pid
    state["pid_ticks"] = process.start_ticks(pid)
    store.save(state)
    try:
        adj = process_spec.get("oomScoreAdj")
        if adj is not None:
            with open(f"/proc/{pid}/oom_score_adj", "w") as handle:
                handle.write(str(int(adj)))
        if pre_hooks:
            hook_state["pid"] = pid
            try:
                hooks_mod.run_hooks(pre_hooks, hook_state, "prestart")
            except hooks_mod.HookError as exc:
                # If init itself failed meanwhile, its error is the cause: report that.
                _kill_and_wait(pid, state["pid_ticks"])
                os.close(ready_r)
                ready_r = -1
                message = _read_all(err_r).decode(errors="replace")
                raise OciError(message or str(exc)) from None
            try:
                os.write(sync_w, b"g")
            except BrokenPipeError:
                pass
        answer = _read_some(ready_r)
        if answer != b"r":
            message = _read_all(err_r).decode(errors="replace") or "container init failed"
            try:
                _, status = os.waitpid(pid, 0)
                code = process.exit_code_from_status(status)
            except ChildProcessError:
                code = 125
            raise OciError(message, exit_code=code if code in (126, 127) else 1)
    finally:
        for fd in (sync_w, ready_r, err_r):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
    _write_pid_file(pid_file, pid)
    return pid


def _start_container_hooks(start_hooks: list[dict]):
    def run(plan: dict) -> None:
        from isoinspect.runtime.oci.hooks import run_hooks_in_child
        run_hooks_in_child(start_hooks, plan["oci"]["state"])
    return run


def _read_some(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, 1)
        except InterruptedError:
            continue


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# ---- start, state, kill, delete ----------------------------------------------------------------

def start(store: Store, cid: str) -> None:
    state = store.load(cid)
    status = status_of(store, state)
    if status != "created":
        raise OciError(f"cannot start a container that is {status} (only a created one)")
    fifo = os.path.join(store.dir(cid), "exec.fifo")
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise OciError(f"cannot start container {cid}: its init is gone "
                       f"({exc.strerror})") from None
    try:
        os.write(fd, b"g")
    finally:
        os.close(fd)
    os.unlink(fifo)
    hooks = (state.get("hooks") or {}).get("poststart") or []
    if hooks:
        from isoinspect.runtime.oci import hooks as hooks_mod
        try:
            hooks_mod.run_hooks(hooks, _hook_state(state, "running"), "poststart")
        except hooks_mod.HookError as exc:
            _warn(str(exc))


_WARNINGS: list[str] = []


def _warn(message: str) -> None:
    _WARNINGS.append(message)


def warnings() -> list[str]:
    return list(_WARNINGS)


def state_of(store: Store, cid: str) -> dict:
    return public_state(store, store.load(cid))


def parse_signal(text: str) -> int:
    import signal
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal, name))
    except AttributeError:
        raise OciError(f"unknown signal {text!r}") from None


def kill(store: Store, cid: str, sig: int = 15, all_processes: bool = False) -> None:
    state = store.load(cid)
    status = status_of(store, state)
    if status == "stopped" and not all_processes:
        raise OciError("container not running")
    if all_processes:
        manager = _manager(state["cgroup"])
        pids = set(manager.pids()) if manager.exists() else set()
        if status != "stopped":
            pids.add(state["pid"])
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return
    try:
        os.kill(state["pid"], sig)
    except ProcessLookupError:
        raise OciError("container not running") from None


def delete(store: Store, cid: str, force: bool = False) -> None:
    directory = store.dir(cid)
    if not os.path.isdir(directory):
        raise OciError(f"container {cid} does not exist")
    state = store.load(cid)
    status = status_of(store, state)
    if status == "paused":
        try:
            _manager(state["cgroup"]).thaw()
        except (OSError, ValueError):
            pass
        status = "running"
    if status == "running" and not force:
        raise OciError(f"cannot delete container {cid} that is not stopped: running")
    if status != "stopped":
        try:
            os.kill(state["pid"], SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while process.is_alive(state["pid"], state["pid_ticks"]) and \
                time.monotonic() < deadline:
            time.sleep(0.005)
    try:
        manager = _manager(state["cgroup"])
        if manager.exists():
            manager.kill_all(SIGKILL)
            manager.remove()
    except (OSError, ValueError) as exc:
        _warn(f"cgroup {state['cgroup']}: {exc}")
    hooks = (state.get("hooks") or {}).get("poststop") or []
    if hooks:
        from isoinspect.runtime.oci import hooks as hooks_mod
        try:
            hooks_mod.run_hooks(hooks, _hook_state(state, "stopped"), "poststop")
        except hooks_mod.HookError as exc:
            _warn(str(exc))
    shutil.rmtree(directory, ignore_errors=True)


def pause(store: Store, cid: str) -> None:
    """Freeze every process of the container (cgroup freezer), like `runc pause`."""
    state = store.load(cid)
    if status_of(store, state) != "running":
        raise OciError(f"container {cid} is not running")
    _manager(state["cgroup"]).freeze()
    state["paused"] = True
    store.save(state)


def resume(store: Store, cid: str) -> None:
    state = store.load(cid)
    if status_of(store, state) != "paused":
        raise OciError(f"container {cid} is not paused")
    _manager(state["cgroup"]).thaw()
    state["paused"] = False
    store.save(state)


def ps(store: Store, cid: str) -> list[int]:
    state = store.load(cid)
    manager = _manager(state["cgroup"])
    return manager.pids() if manager.exists() else []


def list_states(store: Store) -> list[dict]:
    out = []
    for cid in store.ids():
        try:
            out.append(public_state(store, store.load(cid)))
        except OciError:
            continue
    return out
