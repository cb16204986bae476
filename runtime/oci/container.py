"""The OCI operations (runtime-spec runtime.md) in runc's dialect: create, start, state, kill,
delete, exec, ps, run.

One directory per container under the state root: ``state.json`` (an ``OciState``, what
`state` and the other commands need: pid + start ticks, bundle, cgroup path, hooks, exec
settings, with a schema version) and ``exec.fifo``.
``create`` clones the container's init from the CLI process itself; init sets everything up,
writes "r" on a pipe and blocks reading the FIFO, which it holds open read-write. The CLI then
exits, so init is re-parented (to containerd's shim, a child subreaper). ``start`` opens the
FIFO for writing, writes "g" and removes it: status is "created" while the FIFO exists and init
lives, "running" once it is gone, "stopped" when init has exited (or is a zombie).
"""

from __future__ import annotations

import os
import time

from isoinspect.runtime import process
from isoinspect.runtime.container_state import OciState, Status, decode, encode, upgrade_oci
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import remove_tree, write_atomic
from isoinspect.runtime.json_lite import dumps, loads
from isoinspect.runtime.linux import namespaces
from isoinspect.runtime.oci import config as cfg
from isoinspect.runtime.oci import shared_ns

OCI_VERSION = "1.0.2"
DEFAULT_ROOT = "/run/isoinspect-runc"
SECCOMP_CACHE = os.environ.get("ISOINSPECT_OCI_SECCOMP_CACHE", "/var/lib/isoinspect/oci-seccomp")
CGROUP_ROOT = "/sys/fs/cgroup"


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

    def load(self, cid: str) -> OciState:
        """The state of ``cid``; a state.json of an older isoinspect-runc is converted."""
        try:
            with open(os.path.join(self.dir(cid), "state.json")) as handle:
                values = loads(handle.read())
        except (FileNotFoundError, NotADirectoryError):
            raise OciError(f"container {cid} does not exist") from None
        except ValueError:
            raise OciError(f"container {cid}: state.json is corrupt") from None
        if not isinstance(values, dict):
            raise OciError(f"container {cid}: state.json is corrupt")
        try:
            return decode(OciState, values, f"container {cid}", upgrade_oci)
        except IsoinspectError as exc:
            raise OciError(str(exc)) from None

    def save(self, state: OciState) -> None:
        write_atomic(os.path.join(self.dir(state.id), "state.json"),
                     dumps(encode(state)).encode())

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root)
                          if os.path.isfile(os.path.join(self.root, n, "state.json")))
        except FileNotFoundError:
            return []


def status_of(store: Store, state: OciState) -> Status:
    """Derived, as runc does: init gone -> stopped; frozen -> paused; exec FIFO still there
    -> created."""
    if not process.is_alive(state.pid, state.pid_ticks):
        return Status.STOPPED
    if _frozen(state):  # runc pauses a created container too, and says "paused" then
        return Status.PAUSED
    if os.path.exists(os.path.join(store.dir(state.id), "exec.fifo")):
        return Status.CREATED
    return Status.RUNNING


FROZEN_LINES = ("FROZEN", "frozen 1")  # v1 freezer.state, v2 cgroup.events


def _frozen(state: OciState) -> bool:
    """What the freezer says, as runc reads it: a container frozen by someone else (the
    cgroup file written directly) is paused too, one thawed behind our back is not. The file
    named at create is read directly: a cgroup manager costs ~1.5 ms of a `state`."""
    try:
        if not state.freezer_file:  # a state.json of an older isoinspect-runc
            return _manager(state.cgroup).frozen()
        with open(state.freezer_file) as handle:
            return any(line.strip() in FROZEN_LINES for line in handle)
    except (OSError, ValueError):
        return False


def public_state(store: Store, state: OciState) -> dict:
    """What `state` prints (runtime-spec's state object)."""
    status = status_of(store, state)
    return {"ociVersion": OCI_VERSION, "id": state.id,
            "pid": state.pid if status != Status.STOPPED else 0, "status": str(status),
            "bundle": state.bundle, "rootfs": state.rootfs, "created": state.created,
            "owner": "", "annotations": state.annotations or {}}


def _hook_state(state: OciState, status: Status) -> dict:
    return {"ociVersion": OCI_VERSION, "id": state.id, "status": str(status),
            "pid": state.pid, "bundle": state.bundle, "annotations": state.annotations or {}}


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
           console_socket: str | None = None, preserve_fds: int = 0) -> OciState:
    from isoinspect.runtime.oci import translate  # not for state/kill/delete
    from isoinspect.runtime.errors import require_root
    require_root()
    cfg.check_id(cid)
    bundle = os.path.abspath(bundle)
    config = cfg.load_config(bundle)
    cfg.validate(config, bundle)
    process_spec = config["process"]
    unknown = translate.unknown_capabilities(process_spec)
    if unknown:  # the spec: a warning, not a failure (runc 1.1 does the same)
        _warn(f"ignoring unknown or unavailable capabilities: {', '.join(unknown)}")
    for message in translate.ignored_labels(process_spec):
        _warn(message)
    if process_spec.get("terminal") and not console_socket:
        raise cfg.ConfigError("process.terminal is true: --console-socket is required")
    os.makedirs(store.root, 0o711, exist_ok=True)
    directory = store.dir(cid)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise OciError(f"container with id exists: {cid}") from None
    state = OciState(id=cid, bundle=bundle, rootfs=cfg.root_path(config, bundle),
                     created=_now_iso(), annotations=config.get("annotations") or {},
                     cgroup=translate.cgroup_path(config, cid),
                     poststart_hooks=translate.hooks(config, "poststart"),
                     poststop_hooks=translate.hooks(config, "poststop"),
                     no_new_privileges=bool(process_spec.get("noNewPrivileges")))
    try:
        store.save(state)
        state = _create_init(store, state, config, pid_file, console_socket, preserve_fds)
    except BaseException:
        try:  # what _create_init got to (it saves each step: e.g. that it made the cgroup)
            state = store.load(cid)
        except OciError:
            pass
        _cleanup(state, directory)
        raise
    return state


def _cleanup(state: OciState, directory: str) -> None:
    shared_ns.undo_mounts(state.host_mounts, _warn)
    if state.cgroup_created:
        try:
            _manager(state.cgroup).destroy()
        except (OSError, ValueError):
            pass
    _remove_dir(directory)


def _remove_dir(directory: str) -> None:
    """The container's state directory, gone as far as it can be (shutil's ignore_errors,
    without importing shutil on `delete`)."""
    try:
        remove_tree(directory)
    except OSError:
        pass


def _seccomp_bytes(config: dict) -> bytes | None:
    from isoinspect.runtime.oci import translate  # not for state/kill/delete
    section = translate.linux(config).get("seccomp")
    if section is None:
        return None
    from isoinspect.runtime.linux import seccomp_profile
    return seccomp_profile.load_filter_bytes(section, SECCOMP_CACHE)


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
    from isoinspect.runtime.oci import translate  # not for state/kill/delete
    from isoinspect.runtime.oci.setup import PROPAGATION_OPTIONS
    value = translate.linux(config).get("rootfsPropagation") or ""
    default = PROPAGATION_OPTIONS["rslave"]
    if value in ("private", "rprivate", "slave", "rslave"):
        return PROPAGATION_OPTIONS[value], 0
    if value:
        return default, PROPAGATION_OPTIONS[value]
    return default, 0


def _create_init(store: Store, state: OciState, config: dict, pid_file: str | None,
                 console_socket: str | None, preserve_fds: int = 0) -> OciState:
    from isoinspect.runtime.oci import translate  # not for state/kill/delete
    # Everything init runs after pivot_root must be imported now (the package's files are
    # out of its reach then).
    import fcntl  # noqa: F401
    import termios  # noqa: F401

    from isoinspect.runtime import child  # noqa: F401 - used after pivot_root
    from isoinspect.runtime.linux import loopback, paths_policy  # noqa: F401
    from isoinspect.runtime.linux import syscalls as sc
    from isoinspect.runtime.oci import hooks as hooks_mod
    from isoinspect.runtime.init_plan import InitPlan
    from isoinspect.runtime.oci.setup import BundleRoot
    from isoinspect.runtime.launch import clone_init

    directory = store.dir(state.id)
    process_spec = config["process"]
    linux = translate.linux(config)
    flags, joins, new = translate.namespaces(config)
    kinds = translate.namespace_kinds(config)
    resources = translate.resources(config)
    seccomp = _seccomp_bytes(config)
    if seccomp is not None:
        path = os.path.join(directory, "seccomp.bpf")
        with open(path, "wb") as handle:
            handle.write(seccomp)
        state = state.replace(seccomp_path=path)

    manager = _manager(state.cgroup)
    manager.create()
    state = state.replace(cgroup_created=True, freezer_file=manager.freezer_file())
    store.save(state)
    manager.apply(resources)

    mounts = list(config.get("mounts") or ())
    hook_state = _hook_state(state, Status.CREATING)
    propagation, propagation_after = _rootfs_propagation(config)
    terminal = bool(process_spec.get("terminal"))
    console_sock = None
    console_fd = -1
    if terminal:
        # init opens the pty itself in the container's devpts (so `tty` names /dev/pts/0, as
        # with runc) and sends the master on this socket, connected while the path is ours.
        from isoinspect.runtime.oci import console
        import array  # noqa: F401
        import socket  # noqa: F401
        import struct  # noqa: F401
        console_sock = console.connect(console_socket)
        console_fd = console_sock.fileno()
    root = BundleRoot(
        bundle=state.bundle, mounts=mounts, propagation=propagation,
        propagation_after=propagation_after,
        has_dev=any(m.get("destination", "").rstrip("/") == "/dev" for m in mounts),
        devices=list(linux.get("devices") or ()), masked=list(linux.get("maskedPaths") or ()),
        readonly=list(linux.get("readonlyPaths") or ()),
        sysctl=dict(linux.get("sysctl") or {}), cgroup_mode=_cgroup_mode(),
        cgroup_dirs=_cgroup_dirs(manager),
        create_container_hooks=translate.hooks(config, "createContainer"),
        hook_state=hook_state, terminal=terminal, console_fd=console_fd,
        console_size=process_spec.get("consoleSize"), own_mounts="mount" in kinds,
        userns="user" in kinds)
    if "mount" not in kinds:  # mounts made in the runtime's namespace: `delete` undoes them
        state = state.replace(host_mounts=shared_ns.mount_targets(state.rootfs, mounts))
        store.save(state)
    fifo = os.path.join(directory, "exec.fifo")
    os.mkfifo(fifo, 0o600)
    start_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
    pre_hooks = translate.hooks(config, "prestart") + translate.hooks(config, "createRuntime")
    start_hooks = translate.hooks(config, "startContainer")
    process_plan = translate.process_plan(process_spec, seccomp)
    plan = InitPlan(
        process=process_plan.replace(preserve_fds=max(0, int(preserve_fds))), root=root,
        rootfs=state.rootfs, start_fd=start_fd, pdeathsig=0,
        cgroup_procs=[] if "user" in new else manager.self_join_files(),
        new_cgroupns="cgroup" in new,
        read_only=bool((config.get("root") or {}).get("readonly")) and "mount" in kinds,
        umask=translate.umask(process_spec),
        hostname=config.get("hostname") if "uts" in kinds else None,
        own_net="network" in new,
        before_exec=_start_container_hooks(start_hooks, hook_state) if start_hooks else None)
    userns_fd = -1
    try:
        # Namespaces given by path are joined by this process before the clone: the
        # clone's child is then created in them (pid: its children only; others at once).
        if joins:
            sc.make_non_dumpable()  # before joining another container's namespaces
        for kind, path in joins:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, namespaces.FLAG_BY_OCI[kind])
            except OSError as exc:
                raise OciError(f"cannot join {kind} namespace {path}: "
                               f"{exc.strerror}") from None
            finally:
                os.close(fd)
        plan = shared_ns.join_mount_namespace(plan, translate.mount_namespace_path(config))
        userns_fd = shared_ns.open_user_namespace(translate.user_namespace_path(config))
        if userns_fd >= 0:  # the helper joins the cgroup while it is still the host's root
            plan = plan.replace(cgroup_procs=[])
        launch = clone_init(plan, flags, pre_start_hooks=bool(pre_hooks), create_start=True,
                            user_namespace="user" in new, join_user_ns_fd=userns_fd,
                            cgroup_procs=manager.self_join_files() if userns_fd >= 0 else [])
    except BaseException:
        os.close(start_fd)
        raise
    finally:
        if console_sock is not None:
            console_sock.close()
        if plan.mount_ns_fd >= 0:
            os.close(plan.mount_ns_fd)
        if userns_fd >= 0:
            os.close(userns_fd)
    pid = launch.pid
    if "user" in new:
        shared_ns.map_user_namespace(launch, config, manager.procs_files())
    state = state.replace(pid=pid, pid_ticks=process.start_ticks(pid))
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
                raise OciError(launch.abort() or str(exc)) from None
            launch.release()
        message = launch.outcome()
        if message is not None:
            code = launch.reap()
            raise OciError(message or "container init failed",
                           exit_code=code if code in (126, 127) else 1)
    finally:
        launch.close()
    _write_pid_file(pid_file, pid)
    return state


def _start_container_hooks(start_hooks: list[dict], hook_state: dict):
    def run(plan) -> None:
        from isoinspect.runtime.oci.hooks import run_hooks_in_child
        run_hooks_in_child(start_hooks, hook_state)
    return run


# ---- start, state, kill, delete ----------------------------------------------------------------

def start(store: Store, cid: str) -> None:
    state = store.load(cid)
    status = status_of(store, state)
    if status != Status.CREATED:
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
    hooks = state.poststart_hooks
    if hooks:
        from isoinspect.runtime.oci import hooks as hooks_mod
        try:
            hooks_mod.run_hooks(hooks, _hook_state(state, Status.RUNNING), "poststart")
        except hooks_mod.HookError as exc:
            _warn(str(exc))


_WARNINGS: list[str] = []


def _warn(message: str) -> None:
    _WARNINGS.append(message)


def warnings() -> list[str]:
    return list(_WARNINGS)


def state_of(store: Store, cid: str) -> dict:
    return public_state(store, store.load(cid))


def kill(store: Store, cid: str, sig: int = 15, all_processes: bool = False) -> None:
    state = store.load(cid)
    status = status_of(store, state)
    if status == Status.STOPPED and not all_processes:
        raise OciError("container not running")
    if all_processes:
        manager = _manager(state.cgroup)
        pids = set(manager.pids()) if manager.exists() else set()
        if status != Status.STOPPED:
            pids.add(state.pid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if status == Status.PAUSED and sig == SIGKILL:
            _thaw_for_kill(state)
        return
    try:
        os.kill(state.pid, sig)
    except ProcessLookupError:
        raise OciError("container not running") from None
    if status == Status.PAUSED and sig == SIGKILL:
        _thaw_for_kill(state)


SIGKILL = 9


def _thaw_for_kill(state: OciState) -> None:
    """A frozen task takes no signal, not even SIGKILL (cgroup v1), until thawed: runc thaws a
    paused container it SIGKILLs. Other signals stay pending while it is paused, as with runc."""
    try:
        _manager(state.cgroup).thaw()
    except (OSError, ValueError, TimeoutError):
        pass


def delete(store: Store, cid: str, force: bool = False) -> None:
    directory = store.dir(cid)
    if not os.path.isdir(directory):
        raise OciError(f"container {cid} does not exist")
    state = store.load(cid)
    status = status_of(store, state)
    if status in (Status.RUNNING, Status.PAUSED) and not force:
        raise OciError(f"cannot delete container {cid} that is not stopped: {status}")
    if status == Status.PAUSED:
        _thaw_for_kill(state)  # or kill_and_wait's SIGKILL would wait for a frozen init
    if status != Status.STOPPED:
        process.kill_and_wait(state.pid, state.pid_ticks)
    try:
        _manager(state.cgroup).destroy()
    except (OSError, ValueError) as exc:
        _warn(f"cgroup {state.cgroup}: {exc}")
    shared_ns.undo_mounts(state.host_mounts, _warn)
    hooks = state.poststop_hooks
    if hooks:
        from isoinspect.runtime.oci import hooks as hooks_mod
        try:
            hooks_mod.run_hooks(hooks, _hook_state(state, Status.STOPPED), "poststop")
        except hooks_mod.HookError as exc:
            _warn(str(exc))
    _remove_dir(directory)


def pause(store: Store, cid: str) -> None:
    """Freeze every process of the container (cgroup freezer), like `runc pause`."""
    state = store.load(cid)
    if status_of(store, state) not in (Status.RUNNING, Status.CREATED):
        raise OciError(f"container {cid} is not running")
    _manager(state.cgroup).freeze()
    store.save(state.replace(paused=True))


def resume(store: Store, cid: str) -> None:
    state = store.load(cid)
    if status_of(store, state) != Status.PAUSED:
        raise OciError(f"container {cid} is not paused")
    _manager(state.cgroup).thaw()
    store.save(state.replace(paused=False))


def ps(store: Store, cid: str) -> list[int]:
    state = store.load(cid)
    manager = _manager(state.cgroup)
    return manager.pids() if manager.exists() else []


def list_states(store: Store) -> list[dict]:
    out = []
    for cid in store.ids():
        try:
            out.append(public_state(store, store.load(cid)))
        except OciError:
            continue
    return out
