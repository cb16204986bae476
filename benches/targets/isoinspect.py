"""isoinspect itself: the CLI as a user runs it, and the library from a long-lived process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from isoinspect.benches.targets.base import (LIFECYCLE_COMMAND, MARKER, READY_COMMAND, Sample,
                                             Spawner, Target, TargetError, cpu_now, read_marker,
                                             wait_exit)
from isoinspect.runtime.container_state import ContainerState, Status

IMAGE = "busybox"
COMMAND = LIFECYCLE_COMMAND


def cli_path() -> str | None:
    """The ``isoinspect`` script next to this interpreter (the venv's), else on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    if os.access(candidate, os.X_OK):
        return candidate
    import shutil

    return shutil.which("isoinspect")


def package_version() -> str:
    try:
        from importlib.metadata import version

        return f"isoinspect {version('isoinspect')}"
    except Exception:
        return "isoinspect (not installed)"


def runtime_import_problem() -> str:
    """Why the runtime library cannot be imported, or '' when it can."""
    try:
        from isoinspect.runtime.runtime import Runtime  # noqa: F401
        from isoinspect.runtime.spec import ContainerSpec  # noqa: F401
    except Exception as exc:
        return f"isoinspect.runtime does not import: {type(exc).__name__}: {exc}"
    return ""


def ensure_base_root(workdir: str) -> str:
    """A root under ``workdir`` holding busybox:latest, made once per workdir; its path.

    Targets copy it (``cp -a``; layers stay shared: image records point at the base root's
    layer directories), so the base root lives until the whole workdir is removed.
    """
    root = os.path.join(workdir, "isoroot-base")
    marker = os.path.join(root, ".ready")
    if not os.path.exists(marker):
        from isoinspect.runtime.base_image import ensure_base_image
        from isoinspect.runtime.runtime import Runtime

        ensure_base_image(Runtime(root).images)
        with open(marker, "w"):
            pass
    return root


def base_layer_dir(workdir: str) -> str:
    """The unpacked root file system of busybox:latest (one layer), for peers' bundles."""
    from isoinspect.runtime.runtime import Runtime

    runtime = Runtime(ensure_base_root(workdir))
    info = runtime.images.start_info(runtime.images.resolve(IMAGE))
    return info["layers"][0]


def private_root(workdir: str, name: str) -> str:
    root = os.path.join(workdir, f"isoroot-{name}")
    if not os.path.isdir(root):
        subprocess.run(["cp", "-a", ensure_base_root(workdir), root], check=True)
    return root


def clean_root(root: str) -> list[str]:
    """Remove every container of ``root`` and its (empty) cgroup parents; the ids removed."""
    from isoinspect.runtime.runtime import Runtime

    leftovers = []
    runtime = Runtime(root)
    try:
        records = runtime.list(all_containers=True)
    except Exception:
        records = []
    for record in records:
        leftovers.append(record.id)
        try:
            runtime.remove(record.id, force=True)
        except Exception:
            pass
    remove_cgroup_parents(runtime.roots.cgroup_root, runtime.roots.cgroup_parent)
    return leftovers


def remove_cgroup_parents(cgroup_root: str, parent: str) -> None:
    """rmdir ``parent`` in every hierarchy (v1 controllers, the unified one, or pure v2)."""
    try:
        hierarchies = os.listdir(cgroup_root)
    except OSError:
        return
    candidates = [os.path.join(cgroup_root, h, parent) for h in hierarchies]
    candidates.append(os.path.join(cgroup_root, parent))  # pure cgroup v2
    for path in candidates:
        if os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                pass


def spec_limits(limits) -> dict:
    """A bundle.Limits as ContainerSpec keywords (devices by major:minor)."""
    from isoinspect.benches.bundle import device_numbers
    from isoinspect.runtime.cgroups.resources import cpus_to_quota

    return dict(memory=limits.memory, memory_swap=limits.memory_swap,
                cpu_quota_us=None if limits.cpus is None else cpus_to_quota(limits.cpus),
                cpu_shares=limits.cpu_shares, cpuset_cpus=limits.cpuset_cpus,
                pids_limit=limits.pids_limit,
                blkio_read_bps=[(*device_numbers(d), r) for d, r in limits.device_read_bps]
                or None,
                blkio_write_bps=[(*device_numbers(d), r) for d, r in limits.device_write_bps]
                or None)


def container_spec(argv: list[str], limits=None, name: str | None = None,
                   remove: bool = False, image: str = IMAGE):
    """What every isoinspect target runs (library, pool, verify): busybox, ``--network none``;
    only the command, the name and verify's limits differ (and the image, for a bench that
    adds its workload layer on top of busybox)."""
    from isoinspect.benches.bundle import Limits
    from isoinspect.runtime.spec import ContainerSpec

    return ContainerSpec(image, list(argv), name=name, remove=remove, network="none",
                         **spec_limits(limits or Limits()))


def load_user_image(target: Target, workdir: str) -> None:
    """The user's image (``use_image``) into the target's private store, if it has one."""
    if target.user is not None:
        from isoinspect.benches.user_image import load_into

        load_into(target.user, target.root, workdir)


def _needs_root() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "isoinspect needs root"
    return True, ""


class IsoinspectCLI(Target):
    """``isoinspect --root R run --rm --network none busybox CMD`` as a subprocess."""

    name = "isoinspect-cli"
    notes = "interpreter start + fast launcher + create/start/wait/remove (overlay, seccomp)"

    def __init__(self, cli: str | None = None) -> None:
        super().__init__()
        self.cli = cli or cli_path()
        self.root: str | None = None
        self.spawner: Spawner | None = None
        self._names = 0

    def version(self) -> str:
        return package_version()

    def available(self) -> tuple[bool, str]:
        if not self.cli:
            return False, "the isoinspect CLI is not installed (make setup)"
        problem = runtime_import_problem()
        if problem:
            return False, problem
        return _needs_root()

    takes_images = True

    def argv(self, *command: str, remove: bool = True, name: str | None = None) -> list[str]:
        options = ["--rm"] if remove else []
        if name:
            options += ["--name", name]
        image, default = ((self.user.image_id, self.user.command) if self.user
                          else (IMAGE, COMMAND))
        return [self.cli, "--root", self.root, "run", *options, "--network", "none", image,
                *(command or default)]

    def prepare(self, workdir: str) -> None:
        super().prepare(workdir)
        self.root = private_root(workdir, self.name)
        load_user_image(self, workdir)
        scratch = os.path.join(workdir, self.name)
        os.makedirs(scratch, exist_ok=True)
        env = dict(os.environ)
        env.pop("ISOINSPECT_ROOT", None)
        self.spawner = Spawner(env=env, scratch_dir=scratch)
        self.spawner.judge = self

    def ready_once(self) -> Sample:
        return self.spawner.until_marker(self.argv(*READY_COMMAND))

    def lifecycle_once(self) -> Sample:
        return self.spawner.run_sample(self.argv())

    def teardown_once(self) -> Sample:
        self._names += 1
        name = f"isoinspect-bench-{os.getpid()}-{self._names}"
        self.spawner.run(self.argv(remove=False, name=name))
        return self.spawner.run_sample([self.cli, "--root", self.root, "rm", name])

    def cleanup(self) -> None:
        if self.spawner:
            self.spawner.close()
            self.spawner = None
        if self.root:
            clean_root(self.root)


class IsoinspectCLIBridge(IsoinspectCLI):
    """``isoinspect --root R run --rm busybox CMD``: the default bridge network (a veth pair,
    an address and a route per start); issue 20 judges it against the no-network CLI start."""

    name = "isoinspect-cli-bridge"
    notes = "as isoinspect-cli, on the default bridge network (veth, address, route, netns name)"

    def argv(self, *command: str, remove: bool = True, name: str | None = None) -> list[str]:
        argv = super().argv(*command, remove=remove, name=name)
        at = argv.index("--network")
        return argv[:at] + argv[at + 2:]


class InProcessTarget(Target):
    """A target driving the runtime library in this process, on a private root."""

    concurrent = False  # one runtime in one process: it clones from the calling thread
    takes_images = True

    def __init__(self, name: str | None = None, control: bool = False) -> None:
        super().__init__(name, control)
        self.root: str | None = None
        self._null = -1

    def version(self) -> str:
        return package_version()

    def available(self) -> tuple[bool, str]:
        problem = runtime_import_problem()
        if problem:
            return False, problem
        return _needs_root()

    def prepare(self, workdir: str) -> None:
        super().prepare(workdir)
        self.root = private_root(workdir, self.name)
        load_user_image(self, workdir)
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)

    def user_spec(self, default: list[str]):
        """The spec every lifecycle runs: busybox ``default``, or the user's image and
        command (the image's entrypoint applied by the runtime, as `run` does)."""
        if self.user is None:
            return container_spec(default, remove=True)
        return container_spec(list(self.user.command), remove=True, image=self.user.image_id)

    def cleanup(self) -> None:
        if self._null >= 0:
            os.close(self._null)
            self._null = -1
        if self.root:
            clean_root(self.root)


class IsoinspectLibrary(InProcessTarget):
    """The library in this process: ``Runtime.create/start/wait_child/remove``.

    start_to_ready: create + start() until the marker arrives on a pipe; lifecycle: create +
    start + wait + remove of ``true`` (the span ``runc run`` covers); teardown: once ``true``
    has exited, wait_child (cgroup released) + remove. ``last_phases`` holds the phases of
    the last lifecycle (create, start_to_exec, start_call, wait, remove).
    verify: create + start with the limits in the spec, output to a log; with ``scratch`` the
    container's state root (and so its writable layer) lives under it, on the I/O check's
    loop device: isoinspect has no bind mounts.
    """

    name = "isoinspect-lib"
    notes = "Runtime create/start/wait/remove in a warm process"
    scratch = ""
    #: what ``start`` runs (bench overhead: a derived image with its workload layer)
    image = IMAGE

    def __init__(self, name: str | None = None, control: bool = False) -> None:
        super().__init__(name, control)
        self.runtime = None
        self.spec = None
        self.ready_spec = None
        self._scratch_runtimes: dict[str, tuple[str, object]] = {}  # scratch -> (root, Runtime)

    def prepare(self, workdir: str) -> None:
        super().prepare(workdir)
        from isoinspect.runtime.runtime import Runtime

        self.runtime = Runtime(self.root)
        self.spec = self.user_spec(COMMAND)
        self.ready_spec = container_spec(READY_COMMAND, remove=True)

    # -- one start, in phases ----------------------------------------------------------------

    def _create(self, spec=None) -> ContainerState:
        return self.runtime.create(spec or self.spec)

    def _start(self, record: ContainerState, stdout: int | None = None):
        out = self._null if stdout is None else stdout
        return self.runtime.start(record, stdio=(self._null, out, self._null))

    def _finish(self, record: ContainerState, started, runtime=None) -> int | None:
        """Wait (if started) and remove; safe after an interruption at any point."""
        runtime = runtime or self.runtime
        code = None
        try:
            if started is not None:
                if started.record.status == Status.RUNNING:
                    code = runtime.wait_child(started)
                else:
                    code = started.record.exit_code
        finally:
            try:
                runtime.remove(record.id, force=True)
            except Exception:
                pass
        return code

    def _guarded(self, record: ContainerState, body):
        """Run ``body(holder)``; on any error kill what it started and remove the container."""
        holder: list = []
        try:
            return body(holder)
        except BaseException:
            started = holder[0] if holder else None
            if started is not None:
                _kill(started.pid)
            self._finish(record, started)
            raise

    def ready_once(self) -> Sample:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        fds = [read_fd, write_fd]
        try:
            begin = time.perf_counter_ns()
            record = self._create(self.ready_spec)

            def body(holder):
                holder.append(self._start(record, write_fd))
                os.close(write_fd)
                fds.remove(write_fd)
                end = read_marker(read_fd, MARKER.encode())
                code = self.runtime.wait_child(holder[0])  # untimed from here
                self.runtime.remove(record.id, force=True)
                return end, code

            end, code = self._guarded(record, body)
        finally:
            for fd in fds:
                os.close(fd)
        if end is None or code != 0:
            raise TargetError(f"no marker from the container (exit {code})")
        return Sample((end - begin) / 1e9, None)

    def lifecycle_once(self) -> Sample:
        cpu0 = cpu_now()
        t0 = time.perf_counter_ns()
        record = self._create()
        t1 = time.perf_counter_ns()

        def body(holder):
            started = self._start(record)
            holder.append(started)
            t2 = time.perf_counter_ns()
            code = self.runtime.wait_child(started)
            t3 = time.perf_counter_ns()
            self.runtime.remove(record.id, force=True)
            return started, code, t2, t3, time.perf_counter_ns()

        started, code, t2, t3, t4 = self._guarded(record, body)
        cpu = cpu_now() - cpu0
        self.check_exit(code)
        self.last_phases = {"create": (t1 - t0) / 1e9, "start_to_exec": started.startup_seconds,
                            "start_call": (t2 - t1) / 1e9, "wait": (t3 - t2) / 1e9,
                            "remove": (t4 - t3) / 1e9}
        return Sample((t4 - t0) / 1e9, cpu)

    def teardown_once(self) -> Sample:
        record = self._create()

        def body(holder):
            started = self._start(record)
            holder.append(started)
            wait_exit(started.pid)
            cpu0 = cpu_now()
            t0 = time.perf_counter_ns()
            code = self.runtime.wait_child(started)
            self.runtime.remove(record.id, force=True)
            return Sample((time.perf_counter_ns() - t0) / 1e9, cpu_now() - cpu0), code

        sample, code = self._guarded(record, body)
        self.check_exit(code)
        return sample

    # -- verify ------------------------------------------------------------------------------

    def _runtime_for(self, scratch: str | None):
        if not scratch:
            return self.runtime
        if scratch not in self._scratch_runtimes:
            from isoinspect.runtime.runtime import Runtime

            root = os.path.join(scratch, "isoroot")
            if not os.path.isdir(root):
                subprocess.run(["cp", "-a", ensure_base_root(self.workdir), root], check=True)
            self._scratch_runtimes[scratch] = (root, Runtime(root))
        return self._scratch_runtimes[scratch][1]

    def start(self, argv: list[str], limits, scratch: str | None = None):
        from isoinspect.benches.bundle import Limits
        from isoinspect.benches.targets.box import Box, log_reader

        runtime = self._runtime_for(scratch)
        name = self.verify_name()
        record = runtime.create(container_spec(argv, Limits() if self.control else limits,
                                               name=name, image=self.image))
        log = self.log_path(name)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            started = runtime.start(record, stdio=(null, out, out))
        except BaseException:
            runtime.remove(record.id, force=True)
            raise
        finally:
            os.close(out)
            os.close(null)

        def stop() -> None:
            _kill(started.pid)
            self._finish(record, started, runtime)

        try:
            return Box(name, started.pid, log_reader(log), stop, self.scratch)
        except BaseException:
            stop()
            raise

    def cleanup(self) -> None:
        for root, _ in self._scratch_runtimes.values():
            clean_root(root)
        self._scratch_runtimes.clear()
        super().cleanup()

    # pytest-benchmark: time only start(); create and wait+remove are untimed.
    def bench_setup(self) -> object:
        return self._create()

    def bench_operation(self, state: object) -> object:
        return self._start(state)

    def bench_teardown(self, state: object, result: object = None) -> None:
        if state is not None:
            self._finish(state, result)


def _kill(pid: int) -> None:
    """SIGKILL a container's PID 1 after an interruption (wait_child reaps it afterwards)."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
