"""The runtime: create, start, wait for, stop and remove containers.

``Runtime(...).run(spec)`` is the library API benchmarks call from a long-lived process; the CLI
calls the same methods. The caller that starts a container is its monitor: it waits for the
container's PID 1 and records the exit code (a detached run forks a small monitor for that).

Start sequence (no round trips between parent and child):
  parent: validate -> resolve image -> reserve name -> dirs -> cgroup (limits applied)
  clone(NEWNS|NEWUTS|NEWIPC|NEWPID[|NEWNET]) -> child joins its cgroup itself, unshares the
  cgroup ns, mounts, pivot_root, drops privileges, execs. The parent learns the exec happened
  when the close-on-exec error pipe reaches EOF with nothing written.
"""

from __future__ import annotations

import os
import time

from isoinspect.runtime import process
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import (Conflict, IsoinspectError, NotFound, out_of_space,
                                       require_root)
from isoinspect.runtime.events import container_event
from isoinspect.runtime.linux.signals import SIGKILL, SIGTERM
from isoinspect.runtime.network import NetworkHook, wants_network
from isoinspect.runtime.records import ContainerStore, MonitorLock
from isoinspect.runtime.roots import Roots

TYPE_CHECKING = False  # typing itself is not imported on the hot commands' path
if TYPE_CHECKING:  # names for annotations only: imported where they are used
    from isoinspect.runtime.images import ImageStore
    from isoinspect.runtime.init_plan import InitPlan, ProcessPlan
    from isoinspect.runtime.signal_forwarding import SignalForwarder
    from isoinspect.runtime.spec import ContainerSpec


# The set-up modules (rootfs, launch and the child, capabilities, rlimits, seccomp, ctypes'
# syscalls: ~4 ms of imports) are imported where a container is made or started, so ps, rm,
# stop and kill, which only read records and signal processes, never load them.


class Started:
    """A container whose command is running: its host pid and when it got there."""

    __slots__ = ("record", "pid", "ready_ns", "begin_ns")

    def __init__(self, record: ContainerState, pid: int, begin_ns: int, ready_ns: int) -> None:
        self.record, self.pid, self.begin_ns, self.ready_ns = record, pid, begin_ns, ready_ns

    @property
    def startup_seconds(self) -> float:
        """From the start() call to the exec of the container's command."""
        return (self.ready_ns - self.begin_ns) / 1e9


class Runtime:
    """One isoinspect installation (state root + cgroup root)."""

    def __init__(self, root: str | None = None, cgroup_root: str = "/sys/fs/cgroup",
                 roots: Roots | None = None) -> None:
        self.roots = roots or Roots(root, cgroup_root=cgroup_root)
        self._images: ImageStore | None = None
        self.containers = ContainerStore(self.roots)
        self._seccomp: bytes | None = None
        self._cgroup_setup: str | None = None
        self._rlimits: list | None = None
        self._managers: dict = {}
        self._monitors: dict = {}  # container id -> held monitor lock, until the exit is saved
        # Objects with wants(state), prestart(runtime, state, pid) and
        # poststop(runtime, state): run after clone, before the container's exec (networking,
        # the inspector registering the container's cgroup), and after it exits. prestart may
        # return an updated ContainerState (e.g. with its network), None otherwise.
        self.prestart_hooks: list = [NetworkHook()]

    @property
    def images(self) -> ImageStore:
        """The image store, opened on first use (ps, rm, stop and kill never need it)."""
        if self._images is None:
            from isoinspect.runtime.images import ImageStore

            self._images = ImageStore(self.roots)
        return self._images

    # -- creating --------------------------------------------------------------------------

    def create(self, spec: ContainerSpec) -> ContainerState:
        """Prepare a container (record, dirs, cgroup with limits); nothing runs yet."""
        require_root()
        image_id = self.images.resolve(spec.image)
        info = self.images.start_info(image_id)
        argv = self._command(spec, info)
        try:
            cid, name = self.containers.allocate(spec.name)
        except OSError as exc:
            raise out_of_space(exc, self.roots.data_dir) or exc from None
        hostname = spec.hostname or cid[:12]
        record = ContainerState(
            id=cid, name=name, image=spec.image, image_id=image_id, created=time.time(),
            status=Status.CREATED, argv=argv, spec=spec.to_dict(),
            cgroup=f"{self.roots.cgroup_parent}/{cid}", lower=info["layers"],
            workdir=spec.workdir or info["workdir"], user=spec.user or info["user"],
            hostname=hostname, env=self._environment(spec, info, hostname))
        try:
            self.containers.mark_creator(cid)
            for sub in ("upper", "work", "rootfs"):
                os.makedirs(self.containers.dir(cid, sub))
            if spec.userns:
                from isoinspect.runtime import userns

                record = record.replace(userns=userns.mapping())
                uid, gid = record.userns["uid"][0], record.userns["gid"][0]
                for path in record.lower + [self.containers.dir(cid)]:
                    blocked = userns.blocking_directory(path, uid, gid)
                    if blocked:
                        raise IsoinspectError(
                            f"--userns remap: {blocked} is not searchable by the container's "
                            f"root (host uid {uid}); make it world-searchable (chmod o+x) or "
                            "use a state root under a directory that is")
                userns.prepare_dirs([self.containers.dir(cid, sub)
                                     for sub in ("upper", "work", "rootfs")], record.userns)
            owner = None
            if record.userns:
                owner = (record.userns["uid"][0], record.userns["gid"][0])
            from isoinspect.runtime import rootfs

            rootfs.write_identity_files(self.containers.dir(cid, "upper"), record.lower,
                                        record.hostname, owner)
            manager = self.cgroup(record)
            manager.create()
            manager.apply(spec.resources())
            self.containers.save(record)
        except BaseException as exc:
            self._discard(record)
            full = out_of_space(exc, self.roots.data_dir)
            if full is not None:
                raise full from None
            raise
        container_event(self.roots, "create", record)
        return record

    @staticmethod
    def _command(spec: ContainerSpec, info: dict) -> list[str]:
        entrypoint = spec.entrypoint if spec.entrypoint is not None else info["entrypoint"]
        argv = list(entrypoint) + (spec.command or ([] if spec.entrypoint else info["cmd"]))
        if not argv:
            raise IsoinspectError("no command specified")
        return argv

    @staticmethod
    def _environment(spec: ContainerSpec, info: dict, hostname: str) -> list[str]:
        """Image env, then -e values; PATH and HOSTNAME always set, as Docker does."""
        merged = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  "HOSTNAME": hostname}
        for item in info["env"] + spec.env:
            key, _, value = item.partition("=")
            merged[key] = value
        return [f"{k}={v}" for k, v in merged.items()]

    # -- starting --------------------------------------------------------------------------

    def start(self, record: ContainerState, stdio: tuple = (None, None, None),
              die_with_parent: bool = True, console_fd: int = -1,
              console_size: object = None) -> Started:
        """Clone the container's PID 1 and return once its command has been exec'd.

        ``stdio`` gives file descriptors for the container's 0/1/2 (None: inherit).
        With ``die_with_parent`` the container is SIGKILLed if this process dies (foreground
        runs), so a killed CLI never leaves an orphan container behind.
        """
        if record.status != Status.CREATED:
            raise Conflict(f"container {record.name} is {record.status.docker}, not created")
        begin = time.monotonic_ns()
        hooks = [hook for hook in self.prestart_hooks if hook.wants(record)]
        plan = self.init_plan(record, stdio, die_with_parent, console_fd, console_size)
        if hooks and all(getattr(hook, "late", False) for hook in hooks):
            plan = plan.replace(late_sync=True)
        from isoinspect.runtime.launch import clone_init

        from isoinspect.runtime.linux import namespaces

        flags = namespaces.CLONE_NEWNS | namespaces.CLONE_NEWUTS | namespaces.CLONE_NEWIPC | \
            namespaces.CLONE_NEWPID
        if record.spec["network"] != "host":
            flags |= namespaces.CLONE_NEWNET
        user_namespace = bool(record.userns)
        cgroup_procs: list[str] = []
        if user_namespace:
            # Joined by us: the cgroup files belong to the host's root, whom the child is not.
            cgroup_procs = self.cgroup(record).procs_files()
            plan = plan.replace(cgroup_procs=[])
        monitor = self.containers.monitor_lock(record.id)
        monitor.__enter__()
        try:
            launch = clone_init(plan, flags, pre_start_hooks=bool(hooks),
                                user_namespace=user_namespace)
        except BaseException:
            monitor.__exit__(None, None, None)
            raise
        pid = launch.pid
        self._monitors[record.id] = monitor
        if user_namespace:
            self._map_user_namespace(record, launch, cgroup_procs)
        ticks = process.start_ticks(pid)
        record = record.replace(status=Status.RUNNING, pid=pid, pid_ticks=ticks,
                                started_at=time.time())
        if hooks:
            record = self._run_prestart_hooks(hooks, record, launch)
        message = launch.outcome()
        ready = time.monotonic_ns()
        if message is not None:
            record = record.replace(status=Status.STOPPED, exit_code=launch.reap(),
                                    finished_at=time.time(), error=message)
            self._finish(record)
            raise IsoinspectError(record.error, exit_code=record.exit_code)
        self.containers.save(record)
        container_event(self.roots, "start", record)
        return Started(record, pid, begin, ready)

    def _map_user_namespace(self, record: ContainerState, launch: object,
                            cgroup_procs: list[str]) -> None:
        """Write the child's id maps and cgroup membership, then let it continue (``launch``:
        a runtime.launch.Launch, not imported at module level: see above)."""
        from isoinspect.runtime import userns

        ranges = record.userns
        userns.map_child(launch, [(0, *ranges["uid"])], [(0, *ranges["gid"])], cgroup_procs)

    def _run_prestart_hooks(self, hooks: list, record: ContainerState,
                            launch: object) -> ContainerState:
        """Run hooks while the container waits (``launch``: a runtime.launch.Launch); on
        failure kill it, re-raise. Returns the state as the hooks left it."""
        try:
            for hook in hooks:
                record = hook.prestart(self, record, launch.pid) or record
        except BaseException as exc:
            # The child may have failed first (e.g. its overlay mount), taking with it what the
            # hook needed (/proc/<pid>/ns/net): its own error is the one that explains it.
            message = launch.abort()
            record = record.replace(status=Status.STOPPED, exit_code=125,
                                    finished_at=time.time(), error=message)
            self._finish(record)
            if message and isinstance(exc, Exception):
                raise IsoinspectError(message) from None
            raise
        launch.release()
        return record

    def _run_poststop_hooks(self, record: ContainerState) -> bool:
        """Undo what pre-start hooks made (e.g. a veth); errors must not hide the exit.
        True when every hook succeeded."""
        done = True
        for hook in self.prestart_hooks:
            if hook.wants(record):
                try:
                    hook.poststop(self, record)
                except Exception:  # noqa: BLE001 - best effort; `rm` and `gc` retry
                    done = False
        return done

    def init_plan(self, record: ContainerState, stdio: tuple = (None, None, None),
                  die_with_parent: bool = True, console_fd: int = -1,
                  console_size: object = None) -> InitPlan:
        """The typed plan the container's first process follows (runtime/init_plan.py)."""
        manager = self.cgroup(record)
        cid = record.id
        from isoinspect.runtime.overlay_root import OverlayRoot

        from isoinspect.runtime.init_plan import InitPlan

        root = OverlayRoot(lower=record.lower, upper=self.containers.dir(cid, "upper"),
                           work=self.containers.dir(cid, "work"),
                           cgroup2=self._cgroup_mode() == "unified",
                           bind_devices=bool(record.userns))
        return InitPlan(
            process=self.process_plan(record), root=root,
            rootfs=self.containers.dir(cid, "rootfs"), stdio=stdio,
            pdeathsig=SIGKILL if die_with_parent else 0,
            cgroup_procs=manager.self_join_files(), new_cgroupns=True,
            hostname=record.hostname, own_net=record.spec["network"] != "host",
            read_only=record.spec["read_only"], mounts=self._bind_mounts(record),
            console_fd=console_fd, console_size=console_size)

    @staticmethod
    def _bind_mounts(record: ContainerState) -> list:
        if not record.spec.get("mounts"):
            return []
        from isoinspect.runtime.bind_mounts import (BindMount, check_propagation,
                                                    make_missing_sources)
        mounts = [BindMount.from_tuple(item) for item in record.spec["mounts"]]
        make_missing_sources(mounts)
        check_propagation(mounts)
        return mounts

    def process_plan(self, record: ContainerState, argv: list[str] | None = None,
                     env: list[str] | None = None, workdir: str | None = None,
                     user: str | None = None) -> ProcessPlan:
        """The container's command and privileges; `exec` overrides the command's parts."""
        from isoinspect.runtime.linux import capabilities

        from isoinspect.runtime.init_plan import ProcessPlan

        spec = record.spec
        return ProcessPlan(
            argv=argv or record.argv, env=env or record.env,
            workdir=workdir or record.workdir, user=user or record.user,
            caps=capabilities.CapSets.docker(
                capabilities.parse_capabilities(spec["cap_add"], spec["cap_drop"])),
            rlimits=self.default_rlimits(bool(record.userns)),
            seccomp=self._seccomp_program() if spec["seccomp"] else None)

    def default_rlimits(self, user_namespace: bool = False) -> list:
        """Docker's default rlimits, capped to what this host allows (computed once).

        A user-namespaced child sets them from inside its namespace, where raising a hard
        limit is never allowed: there they are capped to this process's current limits.
        """
        from isoinspect.runtime.linux import rlimits

        if self._rlimits is None:
            self._rlimits = rlimits.default_rlimits()
        if not user_namespace:
            return self._rlimits
        import resource

        capped = []
        for name, soft, hard in self._rlimits:
            current = resource.getrlimit(rlimits.RLIMIT_NUMBERS[name])[1]
            if current != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY
                                                      or hard > current):
                hard = current
            if soft == resource.RLIM_INFINITY or soft > hard:
                soft = hard
            capped.append((name, soft, hard))
        return capped

    def _seccomp_program(self) -> bytes:
        if self._seccomp is None:
            cache = self.roots.data("seccomp")
            from isoinspect.runtime.linux import seccomp_profile

            self._seccomp = seccomp_profile.load_default_filter_bytes(cache)
        return self._seccomp

    def _cgroup_mode(self) -> str:
        if self._cgroup_setup is None:
            from isoinspect.runtime.cgroups import read_layout
            self._cgroup_setup = read_layout(self.roots.cgroup_root).mode
        return self._cgroup_setup

    # -- waiting and finishing -------------------------------------------------------------

    def wait_child(self, started: Started, forwarder: SignalForwarder | None = None) -> int:
        """Wait for a container this process started; record and return its exit code."""
        if forwarder is not None:
            forwarder.attach(started.pid)
        try:
            while True:
                try:
                    _, status = os.waitpid(started.pid, 0)
                    break
                except ChildProcessError:
                    status = 255 << 8
                    break
                except InterruptedError:
                    continue
        finally:
            if forwarder is not None:
                forwarder.restore()
        record = started.record = self.record_exit(started.record, status)
        return record.exit_code

    def record_exit(self, record: ContainerState, status: int,
                    finished_at: float | None = None,
                    lock: MonitorLock | None = None) -> ContainerState:
        """Record the wait status of the container's PID 1 and finish it (cgroup, hooks, then
        the monitor lock). ``lock``: the one a monitor process inherited (runtime/monitor_exit)."""
        if lock is not None:
            self._monitors[record.id] = lock
        try:  # `isoinspect update` may have changed the limits since: keep what it saved
            record = record.replace(spec=self.containers.load(record.id).spec)
        except IsoinspectError:
            pass
        record = record.replace(status=Status.STOPPED,
                                exit_code=process.exit_code_from_status(status),
                                finished_at=time.time() if finished_at is None else finished_at)
        self._finish(record)
        return record

    def monitor_lock_fd(self, cid: str) -> int:
        """The descriptor of the monitor lock this process holds for ``cid`` (handed down to
        the C monitor, runtime/detach.py)."""
        return self._monitors[cid].fd

    def _finish(self, record: ContainerState) -> None:
        """Record the exit, release the cgroup, undo hooks, then let readers of the record go."""
        try:
            self.containers.save(record)
            container_event(self.roots, "die", record, exitCode=record.exit_code)
            self._release_cgroup(record)
            if self._run_poststop_hooks(record):  # so `rm` need not do either again
                try:
                    self.containers.save(record.replace(released=True))
                except OSError:  # removed meanwhile by an `rm` (which then did both)
                    pass
        finally:
            monitor = self._monitors.pop(record.id, None)
            if monitor is not None:
                monitor.__exit__(None, None, None)

    def run(self, spec: ContainerSpec, stdio: tuple = (None, None, None)) -> int:
        """Create, start and wait for a container in the foreground; return its exit code."""
        from isoinspect.runtime.signal_forwarding import SignalForwarder

        record = self.create(spec)
        forwarder = SignalForwarder()
        null = -1
        try:
            if spec.tty:  # -t: a pseudo-terminal, relayed to the caller's (runtime/terminal.py)
                from isoinspect.runtime.terminal import run_on_terminal
                return run_on_terminal(self, record, spec.interactive, forwarder)
            if stdio[0] is None and not spec.interactive:
                # Docker attaches stdin only with -i: without it the command reads EOF
                null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                stdio = (null, *stdio[1:])
            started = self.start(record, stdio)
            if null >= 0:
                os.close(null)
                null = -1
            return self.wait_child(started, forwarder)
        finally:
            if null >= 0:
                os.close(null)
            forwarder.restore()
            if spec.remove and os.path.isdir(self.containers.dir(record.id)):
                self.remove(record.id, force=True)

    def cgroup(self, record: ContainerState):
        """The cgroup manager of a container (built once per container and process)."""
        manager = self._managers.get(record.id)
        if manager is None:
            from isoinspect.runtime.cgroups import make_manager

            manager = self._managers[record.id] = make_manager(record.cgroup,
                                                               self.roots.cgroup_root)
        return manager

    def _release_cgroup(self, record: ContainerState) -> None:
        self.cgroup(record).remove()

    # -- managing --------------------------------------------------------------------------

    def get(self, ref: str) -> ContainerState:
        """The current record of a container, with a dead monitor's container marked stopped."""
        return self.refresh(self.containers.load(self.containers.lookup(ref)))

    def refresh(self, record: ContainerState) -> ContainerState:
        """Mark a 'running' container whose process is gone as stopped (its monitor died)."""
        if record.status == Status.RUNNING and not process.is_alive(record.pid,
                                                                     record.pid_ticks):
            # A live monitor holds the lock until the exit code is recorded: wait for it.
            try:
                with self.containers.monitor_lock(record.id, blocking=True):
                    record = self.containers.load(record.id)
            except FileNotFoundError:
                raise NotFound(f"no such container: {record.id[:12]}") from None
            if record.status == Status.RUNNING:
                record = record.replace(status=Status.STOPPED, exit_code=255,
                                        finished_at=time.time(),
                                        error="the container's monitor died; exit code unknown")
                self.containers.save(record)
                container_event(self.roots, "die", record, exitCode=255)
        return record

    def list(self, all_containers: bool = False) -> list[ContainerState]:
        records = []
        for cid in self.containers.ids():
            try:
                record = self.refresh(self.containers.load(cid))
            except IsoinspectError:
                continue
            if all_containers or record.status == Status.RUNNING:
                records.append(record)
        return sorted(records, key=lambda r: r.created, reverse=True)

    def kill(self, ref: str, signal_number: int = SIGKILL) -> ContainerState:
        record = self.get(ref)
        if record.status != Status.RUNNING:
            raise Conflict(f"container {record.name} is not running")
        try:
            os.kill(record.pid, signal_number)
        except ProcessLookupError:
            pass
        container_event(self.roots, "kill", record, signal=signal_number)
        from isoinspect.runtime.pausing import thaw_if_paused
        thaw_if_paused(self, record)  # Docker: the signal is delivered, the container unpaused
        return record

    def stop(self, ref: str, timeout: float = 10.0) -> ContainerState:
        """SIGTERM, then SIGKILL after ``timeout`` seconds, like ``docker stop``."""
        record = self.get(ref)
        if record.status != Status.RUNNING:
            return record
        container_event(self.roots, "kill", record, signal=SIGTERM)
        from isoinspect.runtime.pausing import thaw_if_paused
        thaw_if_paused(self, record)
        process.kill_and_wait(record.pid, record.pid_ticks,
                              ((SIGTERM, timeout), (SIGKILL, 10.0)))
        record = self.wait(record.id, timeout=10.0)
        container_event(self.roots, "stop", record)
        return record

    def wait(self, ref: str, timeout: float | None = None) -> ContainerState:
        """Block until the container has exited and its exit code is recorded."""
        cid = self.containers.lookup(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.containers.load(cid)
            if record.status == Status.STOPPED:
                return record
            if record.status == Status.CREATED:
                # `create` left it for `start`, or a start runs: wait, as docker wait does
                if not (self.containers.kept_created(cid) or self.containers.creator_alive(cid)):
                    raise Conflict(f"container {record.name} was never started")
            elif not process.is_alive(record.pid, record.pid_ticks):
                return self.refresh(record)
            if deadline is not None and time.monotonic() >= deadline:
                raise IsoinspectError(f"timed out waiting for container {record.name}")
            time.sleep(0.01)

    def remove(self, ref: str, force: bool = False) -> ContainerState:
        """Delete a container; a running one only with ``force`` (it is killed first)."""
        record = self.get(ref)
        if record.status == Status.RUNNING:
            if not force:
                raise Conflict(f"you cannot remove a running container {record.id[:12]}. "
                               "Stop the container before attempting removal or use -f")
            from isoinspect.runtime.pausing import thaw_if_paused
            thaw_if_paused(self, record)
            container_event(self.roots, "kill", record, signal=SIGKILL)
            process.kill_and_wait(record.pid, record.pid_ticks)
            try:
                if self._await_monitor(record.id):  # its exit and Docker's die: recorded
                    record = self.refresh(record)  # (or marked here if its monitor died)
                elif not os.path.isdir(self.containers.dir(record.id)):
                    raise NotFound(record.id)
            except NotFound:  # its --rm monitor removes it (and says destroy): let it finish
                self.containers.wait_removed(record.id)
                return record
        if not (record.released and record.status == Status.STOPPED):
            # its monitor died (or failed) before releasing them: done here
            if wants_network(record.spec):
                NetworkHook().poststop(self, record)
            self.cgroup(record).destroy()
            self._managers.pop(record.id, None)
        self.containers.delete(record, lambda: container_event(self.roots, "destroy", record))
        return record

    def _await_monitor(self, cid: str, timeout: float = 30.0) -> bool:
        """Wait (bounded) until another process's monitor has recorded the exit: it writes in
        the container's directory, which a removal must not delete under it (ENOTEMPTY).
        True once its lock was free (exit recorded, or the monitor is gone); False if we are
        its monitor, it kept the lock past ``timeout`` or the directory went meanwhile."""
        if cid in self._monitors:   # we are its monitor: a second flock here would deadlock
            return False
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.containers.monitor_lock(cid):
                    return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
            except FileNotFoundError:
                return False

    def _discard(self, record: ContainerState) -> None:
        """Undo a half-made container (used when create fails)."""
        try:
            self.cgroup(record).remove()
        finally:
            self._managers.pop(record.id, None)
            self.containers.delete(record)
