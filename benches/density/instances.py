"""Idle instances, one launcher per target: start ``sleep`` and leave it running.

A launcher wraps the target adapter ``bench startup`` and ``verify`` use
(benches/targets/*: ``start(argv, Limits())`` -> a running Box) where there is one, so a
container here is configured as everywhere else in the suite (busybox, Docker's defaults,
``--network none``). What each leaves running (measured by accounting.py):

* ``host``: ``busybox sleep`` spawned by the bench: the baseline cost of a process;
* ``isoinspect``: the library's ``Runtime.create/start`` in this process; the container's
  init (``sleep``) is a child of the bench process; no monitor;
* ``isoinspect-cli``: ``isoinspect run -d``, what a user runs: the CLI exits and leaves a
  monitor per container (runtime/detach.py: it waits for the init and records its exit, the
  role of containerd-shim or conmon); the init is the monitor's child;
* ``runc`` (and ``crun``): ``runc run --detach``: the container's init is reparented to pid 1;
  no monitor process;
* ``runsc``: ``runsc run --detach``: a sandbox (the Sentry, ``runsc-sandbox``, and its stub
  processes) and a Gofer (``runsc-gofer``) per container, all in the container's cgroup; the
  container's ``sleep`` is a Sentry task, not a host process;
* ``docker``: ``docker run -d``: a ``containerd-shim-runc-v2`` per container (parent of the
  container's init) plus the shared dockerd and containerd;
* ``qemu``: a detached guest (benches/vm/instance.py) per instance: one QEMU process, guest
  RAM the smallest that boots (probed once, cached per kernel, initramfs and QEMU build).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Callable

from isoinspect.benches.targets.base import Target, find_busybox, first_line, which

IDLE_SECONDS = "3600"
IDLE_COMMAND = ["sleep", IDLE_SECONDS]
TARGET_NAMES = ("host", "isoinspect", "isoinspect-cli", "runc", "crun", "runsc", "docker",
                "qemu")


@dataclass
class Instance:
    """One running idle instance, as the accounting sees it."""

    index: int                      # 1-based, in start order
    name: str
    start_seconds: float            # the launcher's start call, until the instance runs
    stop: Callable[[], None]
    cgroup: object | None = None    # its own CgroupView (None: the host's sleep, QEMU)
    roots: tuple[int, ...] = ()     # processes that are the instance besides its cgroup's
    workload_pid: int | None = None  # the command as a host process (None: runsc, qemu)


class Launcher:
    """Starts idle instances of one target; ``cleanup`` removes what ``prepare`` made."""

    name = "launcher"
    notes = ""
    #: shared daemons whose memory growth is reported separately (dockerd, containerd)
    daemons: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self.setup: dict = {}           # what prepare found (e.g. the guest's RAM), for the record

    def available(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> str:
        return ""

    def prepare(self, workdir: str) -> None:
        pass

    def start(self, index: int) -> Instance:
        raise NotImplementedError

    def cleanup(self) -> None:
        pass


class BoxLauncher(Launcher):
    """A target adapter's ``start(IDLE_COMMAND, Limits())``: the Box is the instance."""

    def __init__(self, name: str, target: Target, notes: str, host_workload: bool = True,
                 daemons: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.name, self.target, self.notes = name, target, notes
        self.host_workload, self.daemons = host_workload, daemons

    def available(self) -> tuple[bool, str]:
        return self.target.available()

    def version(self) -> str:
        from isoinspect.benches.targets import safe_version

        return safe_version(self.target)

    def prepare(self, workdir: str) -> None:
        self.target.prepare(workdir)

    def start(self, index: int) -> Instance:
        from isoinspect.benches.bundle import Limits

        begin = time.perf_counter()
        box = self.target.start(list(IDLE_COMMAND), Limits())
        seconds = time.perf_counter() - begin
        return Instance(index, box.name, seconds, box.stop, cgroup=box.view,
                        workload_pid=box.pid if self.host_workload else None)

    def cleanup(self) -> None:
        """The target's own cleanup, then the cgroups of starts cut short (a ``runc run``
        killed by Ctrl-C before it saved its state leaves its cgroup to nobody)."""
        import glob

        from isoinspect.benches.targets.base import VERIFY_PREFIX
        from isoinspect.benches.targets.isoinspect import remove_cgroup_parents
        from isoinspect.benches.targets.runc import CGROUP_PARENT, CGROUP_ROOT

        self.target.cleanup()
        prefix = f"{VERIFY_PREFIX}-{os.getpid()}-{self.target.name}-"
        names = {os.path.basename(path) for path in
                 glob.glob(os.path.join(CGROUP_ROOT, "*", CGROUP_PARENT, prefix + "*"))}
        for name in sorted(names):
            remove_cgroup_parents(CGROUP_ROOT, f"{CGROUP_PARENT}/{name}")


class HostLauncher(Launcher):
    """``busybox sleep`` spawned by the bench (posix_spawn returns once it has exec'd)."""

    name = "host"
    notes = "busybox sleep spawned by the bench: a plain process, no isolation"

    def __init__(self) -> None:
        super().__init__()
        self.busybox = find_busybox()
        self._null = -1

    def available(self) -> tuple[bool, str]:
        return (True, "") if self.busybox else (False, "busybox not found (busybox-static)")

    def version(self) -> str:
        return first_line([self.busybox, "--help"]) if self.busybox else ""

    def prepare(self, workdir: str) -> None:
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)

    def start(self, index: int) -> Instance:
        from isoinspect.runtime import process

        actions = [(os.POSIX_SPAWN_DUP2, self._null, fd) for fd in (0, 1, 2)]
        begin = time.perf_counter()
        pid = os.posix_spawn(self.busybox, [self.busybox, *IDLE_COMMAND], dict(os.environ),
                             file_actions=actions)
        seconds = time.perf_counter() - begin
        return Instance(index, f"sleep-{pid}", seconds,
                        lambda: process.kill_and_wait(pid, reap=True), roots=(pid,),
                        workload_pid=pid)

    def cleanup(self) -> None:
        """Close /dev/null and kill any ``sleep`` child of ours that no Instance holds (a
        Ctrl-C between posix_spawn's return and the Instance)."""
        from isoinspect.benches.density import procmem
        from isoinspect.runtime import process

        if self._null >= 0:
            os.close(self._null)
            self._null = -1
        argv = "\0".join([self.busybox or "", *IDLE_COMMAND]).encode()
        for info in procmem.process_table().values():
            if info.ppid == os.getpid() and _cmdline(info.pid) == argv:
                process.kill_and_wait(info.pid, reap=True)


class CliLauncher(Launcher):
    """``isoinspect --root R run -d --network none busybox sleep``: the CLI returns once the
    container runs; its monitor stays (counted as the runtime's, an ancestor of the init)."""

    name = "isoinspect-cli"
    notes = ("isoinspect run -d --network none (start: until the CLI returns): a monitor "
             "process per container (runtime/detach.py), the init its child")

    def __init__(self) -> None:
        super().__init__()
        from isoinspect.benches.targets.isoinspect import cli_path

        self.cli = cli_path()
        self.root: str | None = None

    def available(self) -> tuple[bool, str]:
        from isoinspect.benches.targets.isoinspect import IsoinspectCLI

        return IsoinspectCLI(self.cli).available()

    def version(self) -> str:
        from isoinspect.benches.targets.isoinspect import package_version

        return package_version()

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.targets.isoinspect import private_root

        self.root = private_root(workdir, self.name)

    def _cli(self, *args: str) -> list[str]:
        return [self.cli, "--root", self.root, *args]

    def start(self, index: int) -> Instance:
        import subprocess

        from isoinspect.benches.targets.isoinspect import IMAGE
        from isoinspect.inspector.cgroupfs import CgroupView
        from isoinspect.runtime.runtime import Runtime

        name = f"isoinspect-density-{os.getpid()}-{index}"
        env = {k: v for k, v in os.environ.items() if k != "ISOINSPECT_ROOT"}
        begin = time.perf_counter()
        result = subprocess.run(self._cli("run", "-d", "--name", name, "--network", "none",
                                          IMAGE, *IDLE_COMMAND), env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=120)
        seconds = time.perf_counter() - begin

        def stop() -> None:
            subprocess.run(self._cli("rm", "-f", name), env=env, capture_output=True,
                           timeout=60)

        if result.returncode != 0:
            stop()
            raise RuntimeError(f"isoinspect run -d exited {result.returncode}: "
                               f"{result.stderr.strip()[-300:]}")
        pid = Runtime(self.root).get(name).pid
        return Instance(index, name, seconds, stop, cgroup=CgroupView.for_pid(pid),
                        workload_pid=pid)

    def cleanup(self) -> None:
        from isoinspect.benches.targets.isoinspect import clean_root

        if self.root:
            clean_root(self.root)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().rstrip(b"\0")
    except OSError:
        return b""


class GuestLauncher(Launcher):
    """A detached QEMU guest per instance, guest RAM the smallest that boots (see module)."""

    name = "qemu"

    def __init__(self, cpus: int = 1) -> None:
        super().__init__()
        self.cpus = cpus
        self.vm = None
        self.memory_mb: int | None = None
        self.notes = "detached QEMU guest running sleep (Debian kernel + busybox initramfs)"

    def available(self) -> tuple[bool, str]:
        from isoinspect.benches.vm.target import QemuTarget

        return QemuTarget().available()

    def version(self) -> str:
        return first_line([which("qemu-system-x86_64") or "qemu-system-x86_64", "--version"])

    def prepare(self, workdir: str) -> None:
        self.vm, probe, cached = smallest_guest(self.cpus)
        accel = self.vm.accel
        self.memory_mb = probe.memory_mb
        self.labels = {"accelerator": accel, "guest_memory_mb": str(probe.memory_mb)}
        self.setup = {"accelerator": accel, "accelerator_reason": self.vm.accel_reason,
                      "guest_memory_mb": probe.memory_mb, "guest_cpus": self.cpus,
                      "memory_probe": probe.to_dict(), "memory_probe_cached": cached,
                      "kernel": self.vm.kernel.release}
        self.notes = (f"detached QEMU guest running sleep, {probe.memory_mb} MiB guest RAM "
                      f"(smallest that booted), {self.cpus} vCPU, accelerator {accel}")

    def start(self, index: int) -> Instance:
        from isoinspect.benches.vm.instance import DetachedGuest

        guest = DetachedGuest(self.vm, " ".join(IDLE_COMMAND), self.memory_mb)
        seconds = guest.start()
        return Instance(index, f"qemu-{guest.pid}", seconds, guest.stop, roots=(guest.pid,))


def smallest_guest(cpus: int) -> tuple[object, object, bool]:
    """(GuestVM with its accelerator chosen, its smallest-RAM probe, probe cached?);
    TargetError when QEMU cannot boot the guest at any size."""
    from isoinspect.benches.targets import TargetError
    from isoinspect.benches.vm import GuestVM, VMError

    try:
        vm = GuestVM(cpus=cpus)
        vm.choose_accel()
        probe, cached = guest_memory(vm)
    except VMError as exc:
        raise TargetError(str(exc).split("\n")[0]) from None
    if probe.memory_mb is None:
        raise TargetError("no guest RAM size booted: " + "; ".join(
            f"{t['memory_mb']} MiB: {t['error']}" for t in probe.tried))
    return vm, probe, cached


def guest_memory(vm) -> tuple[object, bool]:
    """The smallest guest RAM that boots (benches/vm/instance.smallest_memory), probed once
    and cached beside the accelerator verdict, keyed by kernel, initramfs and QEMU build."""
    from isoinspect.benches.vm.instance import MemoryProbe, smallest_memory
    from isoinspect.runtime.fsutil import write_atomic

    path = os.path.join(vm.cache, "memory.json")
    key = (f"{vm.kernel.key}/{os.path.basename(vm.initramfs)}/{vm.accel}/{vm.cpus}/"
           f"{os.stat(vm.qemu).st_mtime_ns}")
    try:
        with open(path) as handle:
            cached = json.load(handle)
    except (OSError, ValueError):
        cached = {}
    if key in cached and cached[key].get("memory_mb"):
        return MemoryProbe(cached[key]["memory_mb"], cached[key].get("tried", [])), True
    probe = smallest_memory(vm)
    if probe.memory_mb:
        write_atomic(path, json.dumps({key: probe.to_dict() | {"at": time.time()}}).encode())
    return probe, False


def make_launcher(name: str) -> Launcher:
    """The launcher of one of TARGET_NAMES."""
    from isoinspect.benches.targets import (CrunTarget, DockerTarget, IsoinspectLibrary,
                                            RuncTarget, RunscTarget)

    if name == "host":
        return HostLauncher()
    if name == "qemu":
        return GuestLauncher()
    if name == "isoinspect":
        return BoxLauncher(name, IsoinspectLibrary(), "library Runtime.create/start in the "
                           "bench process (start: until exec); the container's init is its "
                           "child, no monitor")
    if name == "isoinspect-cli":
        return CliLauncher()
    if name == "runc":
        return BoxLauncher(name, RuncTarget(), "runc run --detach (start: until it returns); "
                           "init reparented to pid 1, no monitor")
    if name == "crun":
        return BoxLauncher(name, CrunTarget(), "crun run --detach; no monitor")
    if name == "runsc":
        return BoxLauncher(name, RunscTarget(), "runsc run --detach --network=none: Sentry "
                           "(runsc-sandbox + stubs) and Gofer per container, in its cgroup",
                           host_workload=False)
    if name == "docker":
        from isoinspect.benches.targets.docker import DAEMONS

        return BoxLauncher(name, DockerTarget(), "docker run -d --network none (start: run "
                           "-d + inspect for the pid): a containerd-shim per container; "
                           "dockerd + containerd shared",
                           daemons=DAEMONS)
    raise ValueError(f"unknown density target {name!r}")


__all__ = ["IDLE_COMMAND", "TARGET_NAMES", "BoxLauncher", "GuestLauncher", "HostLauncher",
           "Instance", "Launcher", "guest_memory", "make_launcher", "smallest_guest"]
