"""Run a suite (benches/overhead/suite.py) inside each target: one runner per kind of target.

Every runner puts the suite's layer into its target's image, then runs the suite's command
there and hands back its figures; how differs per target, the content does not:

* ``host``: the baseline; the program straight from the layer directory, a subprocess;
* ``isoinspect``: the runtime library (``IsoinspectLibrary.start``) on a derived image built in
  the target's private store (``FROM busybox`` + ``COPY usr /usr``, isoinspect's own builder);
* ``runc``, ``crun``, ``runsc``: the layer copied into the bundle's root file system;
* ``docker``: a derived image from ``docker build`` (``FROM isoinspect-busybox`` + the layer);
* ``qemu``: the layer shared read-only into the guest and copied into its tmpfs root; one boot
  runs every round (a TCG boot costs seconds), so it is a ``batch`` runner.

Container targets start through ``Target.start(argv, Limits())`` (no limits: the same
configuration bench startup and verify give them) and are waited for by their exit, then the
output is read once: polling a log while the workload runs would load the machine being
measured. Docker runs its target's own ``docker run -d`` argv, then ``docker wait`` and
``docker logs`` (``DockerTarget.start`` looks the pid up after the start, when a short run has
already exited). A run without a test's line or the end marker raises RunError.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Callable, Sequence

from isoinspect.benches.overhead.suite import RunError, Suite
from isoinspect.benches.targets.base import Target, TargetError, safe_version, wait_exit

NAMES = ("host", "isoinspect", "runc", "crun", "runsc", "docker", "qemu")
VM_LAYER = "/run/isoinspect-layer"      # the layer's read-only share in the guest
VM_ROOT = "/isoinspect-workload"         # where the guest's job copies it (tmpfs root)
ROUND_MARK = "@@OVERHEAD-ROUND"
#: the guest's install step: the shared layer copied into its tmpfs root (exit 97 if it fails)
VM_INSTALL = f"mkdir -p {VM_ROOT} && cp -a {VM_LAYER}/. {VM_ROOT}/ || exit 97"


def vm_layer_share(layer: str) -> tuple[str, str, str]:
    """The layer's read-only share for ``GuestVM(extra_shares=...)``; VM_INSTALL copies it."""
    return (layer, VM_LAYER, "ro")


class Runner:
    """One target as ``bench overhead`` drives it (see the module notes)."""

    name = "runner"
    #: all rounds in one call to ``run_rounds`` (a VM boot), not interleaved with the others
    batch = False
    #: a container target: its cpu control must be ~1.0x the host's
    container = True
    #: how much slower than the host a run may be before it times out
    slowdown = 1.0

    def __init__(self) -> None:
        self.suite: Suite | None = None
        self.workdir: str | None = None
        self.labels: dict[str, str] = {}

    def available(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> str:
        return ""

    def prepare(self, workdir: str, suite: Suite) -> None:
        """Put the suite's layer into this target's image (untimed)."""
        self.workdir, self.suite = workdir, suite

    def run(self, tests: Sequence[str], duration_ms: int) -> dict:
        """One round: test -> figure; RunError when the workload gave no usable output."""
        raise NotImplementedError

    def run_rounds(self, rounds: int, tests: Sequence[str], duration_ms: int,
                   on_round: Callable[[int, dict | RunError], None]) -> None:
        """Every round at once (batch runners); ``on_round(index, figures or RunError)``."""
        for index in range(rounds):
            try:
                outcome: dict | RunError = self.run(tests, duration_ms)
            except RunError as exc:
                outcome = exc
            on_round(index, outcome)

    def cleanup(self) -> None:
        """Remove everything ``prepare`` and the runs made (also after Ctrl-C)."""


class HostRunner(Runner):
    """The program from the layer directory, on the host: the baseline every ratio divides by."""

    name = "host"
    container = False

    def version(self) -> str:
        return os.uname().release

    def run(self, tests: Sequence[str], duration_ms: int) -> dict:
        suite = self.suite
        binary = os.path.join(suite.layer(), suite.binary.lstrip("/"))
        argv = suite.argv(tests, duration_ms, binary)
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=suite.timeout(tests, duration_ms))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RunError(f"{argv[0]}: {exc}") from None
        if result.returncode != 0:
            raise RunError(f"{argv[0]} exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-300:]}")
        return suite.figures(result.stdout, tests)


class ContainerRunner(Runner):
    """A ``Target`` that can ``start`` a container: the layer goes in by ``install``."""

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self.name = target.name
        self.prepared = False

    def available(self) -> tuple[bool, str]:
        try:
            return self.target.available()
        except Exception as exc:  # an availability probe must never stop a benchmark
            return False, f"availability check failed: {exc}"

    def version(self) -> str:
        return safe_version(self.target)

    def prepare(self, workdir: str, suite: Suite) -> None:
        super().prepare(workdir, suite)
        self.prepared = True  # cleanup() must run even if prepare() fails half-way
        self.target.prepare(workdir)
        self.install(suite.layer())

    def install(self, layer: str) -> None:
        raise NotImplementedError

    def run(self, tests: Sequence[str], duration_ms: int) -> dict:
        from isoinspect.benches.bundle import Limits
        from isoinspect.benches.targets.box import CheckError

        timeout = self.suite.timeout(tests, duration_ms, self.slowdown)
        try:
            box = self.target.start(self.suite.argv(tests, duration_ms), Limits())
        except Exception as exc:  # the runtime's own error (e.g. exec format error)
            raise RunError(f"start failed: {_first_line(exc)}") from None
        try:
            try:
                wait_exit(box.pid, timeout)
            except TargetError:
                pass  # wait_for says what was seen so far
            text = box.wait_for(self.suite.end, timeout=5.0, interval=0.2)
        except CheckError as exc:
            raise RunError(_first_line(exc)) from None
        finally:
            box.stop()
        return self.suite.figures(text, tests)

    def cleanup(self) -> None:
        if self.prepared:
            self.target.cleanup()


class IsoinspectRunner(ContainerRunner):
    """The library's ``start`` on ``FROM busybox`` + ``COPY usr /usr``, built by our builder."""

    def __init__(self) -> None:
        from isoinspect.benches.targets.isoinspect import IsoinspectLibrary

        super().__init__(IsoinspectLibrary(name="isoinspect"))

    def install(self, layer: str) -> None:
        import io

        from isoinspect.runtime.image_build import Builder

        tag = "isoinspect-overhead-workload:latest"
        base = "busybox"
        if self.suite.base is not None:  # e.g. debian:bookworm-tools, into the private store
            self.suite.base.ensure(self.target.runtime.images)
            base = self.suite.base.ref
        with tempfile.TemporaryDirectory(prefix="isoinspect-overhead-", dir=self.workdir) as tmp:
            dockerfile = _dockerfile(tmp, base, layer)
            Builder(self.target.runtime, out=io.StringIO(), network="none").build(
                layer, dockerfile, tags=[tag])
        self.target.image = tag


class OciRunner(ContainerRunner):
    """runc, crun, runsc: the layer copied into the bundles' root file system."""

    def install(self, layer: str) -> None:
        if self.suite.base is not None:  # the base's tar replaces the busybox root
            from isoinspect.benches.overhead.base_image import into_rootfs

            into_rootfs(self.suite.base, self.target.rootfs)
        subprocess.run(["cp", "-a", layer + "/.", self.target.rootfs], check=True,
                       capture_output=True)


class RunscRunner(OciRunner):
    """gVisor: syscalls are served by the Sentry, so runs may take longer."""

    slowdown = 4.0


class DockerRunner(ContainerRunner):
    """``docker run`` of ``FROM isoinspect-busybox`` + the layer (``docker build``, no Hub)."""

    def install(self, layer: str) -> None:
        base = self.target.image
        if self.suite.base is not None:  # the base's tar, docker import'ed (removed at cleanup)
            from isoinspect.benches.overhead.base_image import into_docker

            self.base_image = f"isoinspect-overhead-base:{os.getpid()}"  # cleanup: even half
            base = into_docker(self.suite.base, self.target.docker, self.base_image)
        tag = f"isoinspect-overhead-workload:{os.getpid()}"
        context = tempfile.mkdtemp(prefix="isoinspect-overhead-docker-", dir=self.workdir)
        try:
            subprocess.run(["cp", "-a", layer + "/.", context], check=True, capture_output=True)
            _dockerfile(context, base, layer)
            result = subprocess.run([self.target.docker, "build", "-q", "-t", tag, context],
                                    capture_output=True, text=True, timeout=300,
                                    env=dict(os.environ, DOCKER_BUILDKIT="0"))
        finally:
            shutil.rmtree(context, ignore_errors=True)
        if result.returncode != 0:
            raise TargetError(f"docker build failed: {result.stderr.strip()[-300:]}")
        self.target.image = self.image = tag

    def run(self, tests: Sequence[str], duration_ms: int) -> dict:
        """``docker run -d`` (the target's own argv), ``docker wait``, ``docker logs``, ``rm``.

        Not ``DockerTarget.start``: it looks the container's pid up after ``run -d`` returns,
        and a short run has exited (pid 0) by then; ``docker wait`` also blocks without polling.
        """
        from isoinspect.benches.bundle import Limits

        docker, name = self.target.docker, self.target.verify_name()
        timeout = self.suite.timeout(tests, duration_ms, self.slowdown)
        argv = self.target.run_argv(self.suite.argv(tests, duration_ms), name, Limits(),
                                    detach=True)
        try:
            started = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if started.returncode != 0:
                raise RunError(f"start failed: docker run exited {started.returncode}: "
                               f"{started.stderr.strip()[-300:]}")
            waited = subprocess.run([docker, "wait", name], capture_output=True, text=True,
                                    timeout=timeout)
            logs = subprocess.run([docker, "logs", name], capture_output=True, text=True,
                                  timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise RunError(f"{name}: {exc}") from None
        finally:
            subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=60)
        code = waited.stdout.strip()
        if code != "0":
            raise RunError(f"{name} exited {code or '?'}: {(logs.stdout + logs.stderr)[-300:]!r}")
        return self.suite.figures(logs.stdout, tests)

    def cleanup(self) -> None:
        super().cleanup()
        for attribute in ("image", "base_image"):
            image = getattr(self, attribute, None)
            if image:
                subprocess.run([self.target.docker, "rmi", "-f", image], capture_output=True,
                               timeout=120)
                setattr(self, attribute, None)


class QemuRunner(Runner):
    """One guest boot runs every round; the layer is copied into the guest's tmpfs root first.

    The guest sees the layer as a read-only 9p share (``GuestVM``'s ``extra_shares``), its job
    copies it to ``VM_ROOT`` on the root tmpfs and runs the rounds one after the other, each
    after a ``ROUND_MARK`` line; the output comes back in one piece when the guest powers off.
    """

    name = "qemu"
    batch = True
    container = False
    slowdown = 30.0  # TCG emulates every instruction

    def __init__(self, cpus: int = 2, memory_mb: int = 512) -> None:
        super().__init__()
        from isoinspect.benches.vm.target import QemuTarget

        self.probe = QemuTarget(cpus=cpus, memory_mb=memory_mb)
        self.cpus, self.memory_mb = cpus, memory_mb
        self.vm = None

    def available(self) -> tuple[bool, str]:
        return self.probe.available()

    def version(self) -> str:
        self.probe.vm = self.vm
        return safe_version(self.probe)

    def prepare(self, workdir: str, suite: Suite) -> None:
        from isoinspect.benches.vm import GuestVM, VMError

        super().prepare(workdir, suite)
        try:
            self.vm = GuestVM(cpus=self.cpus, memory_mb=self.memory_mb,
                              extra_shares=[vm_layer_share(suite.layer())])
            accel = self.vm.choose_accel()
        except VMError as exc:
            raise TargetError(_first_line(exc)) from None
        reason = (self.vm.accel_reason or "").strip()
        self.labels = {"accelerator": accel,
                       "accelerator_reason": reason.splitlines()[0][:160] if reason else ""}
        if accel == "kvm":
            self.slowdown = 2.0

    def job(self, rounds: int, tests: Sequence[str], duration_ms: int) -> str:
        """The guest's shell script: copy the layer into the tmpfs root, run every round."""
        import shlex

        argv = self.suite.argv(tests, duration_ms, VM_ROOT + self.suite.binary)
        return (f"{VM_INSTALL}\n"
                f"for round in $(seq {rounds}); do echo {ROUND_MARK} $round; "
                f"{shlex.join(argv)}; done\n")

    def run_rounds(self, rounds: int, tests: Sequence[str], duration_ms: int,
                   on_round: Callable[[int, dict | RunError], None]) -> None:
        from isoinspect.benches.vm import VMError

        timeout = 60 + rounds * self.suite.timeout(tests, duration_ms, self.slowdown)
        try:
            result = self.vm.run(self.job(rounds, tests, duration_ms), timeout=timeout)
        except VMError as exc:
            raise RunError(f"the guest failed: {_first_line(exc)}") from None
        if result.returncode == 97:
            raise RunError(f"the guest could not copy the layer: {result.stderr.strip()[-300:]}")
        for index, text in enumerate(split_rounds(result.stdout, rounds)):
            try:
                outcome: dict | RunError = self.suite.figures(text, tests)
            except RunError as exc:
                outcome = exc
            on_round(index, outcome)

    def run(self, tests: Sequence[str], duration_ms: int) -> dict:
        outcomes: list = []
        self.run_rounds(1, tests, duration_ms, lambda _i, outcome: outcomes.append(outcome))
        if isinstance(outcomes[0], RunError):
            raise outcomes[0]
        return outcomes[0]


def split_rounds(stdout: str, rounds: int) -> list[str]:
    """The guest's output cut at the round marks: one text per round ('' when it is missing)."""
    texts = [""] * rounds
    current = None
    for line in stdout.splitlines(keepends=True):
        if line.startswith(ROUND_MARK):
            word = line.split()[1] if len(line.split()) > 1 else ""
            current = int(word) - 1 if word.isdigit() and 0 < int(word) <= rounds else None
            continue
        if current is not None:
            texts[current] += line
    return texts


def _dockerfile(folder: str, base: str, layer: str) -> str:
    """``FROM base`` + one COPY per top-level entry of the layer; the Dockerfile's path."""
    lines = [f"FROM {base}"] + [f"COPY {entry} /{entry}" for entry in sorted(os.listdir(layer))]
    path = os.path.join(folder, "Dockerfile")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def make(name: str) -> Runner:
    """The runner of one target name (see NAMES)."""
    from isoinspect.benches.targets import CrunTarget, DockerTarget, RuncTarget, RunscTarget

    factories: dict[str, Callable[[], Runner]] = {
        "host": HostRunner, "isoinspect": IsoinspectRunner,
        "runc": lambda: OciRunner(RuncTarget()), "crun": lambda: OciRunner(CrunTarget()),
        "runsc": lambda: RunscRunner(RunscTarget()),
        "docker": lambda: DockerRunner(DockerTarget()), "qemu": QemuRunner}
    return factories[name]()
