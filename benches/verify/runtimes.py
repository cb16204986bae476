"""Verification targets: start a busybox container with limits, hand back a :class:`Box`.

* ``isoinspect``: our runtime through the library (Runtime.create/start in this process);
* ``runc`` / ``runsc``: OCI bundles whose ``linux.resources`` carry the limits;
* ``docker``: ``docker run -d --memory ... --cpus ...``;
* ``control``: isoinspect with every limit left out, so each check must FAIL on it.

Every container's stdout/stderr goes to a log the checks read; its cgroup is looked up by pid
with the inspector's :class:`CgroupView` (the same reader for every runtime, v1 and v2).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

CGROUP_PARENT = "isoinspect-verify"
IMAGE = "busybox"


class CheckError(RuntimeError):
    """A workload did not behave (no marker in time, a start failed): the check ERRORs,
    unless the runtime explains it (``VerifyRuntime.explain``). ``evidence``: what was seen."""

    def __init__(self, message: str, evidence: dict | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence or {}


@dataclass
class Limits:
    """What a check asks a runtime to enforce (None: leave out)."""

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    device_read_bps: list[tuple[str, int]] = field(default_factory=list)
    device_write_bps: list[tuple[str, int]] = field(default_factory=list)


def device_numbers(path: str) -> tuple[int, int]:
    rdev = os.stat(path).st_rdev
    return os.major(rdev), os.minor(rdev)


class Box:
    """A running container: its host pid, its output, its cgroup; ``stop`` always cleans up."""

    def __init__(self, name: str, pid: int, read_output: Callable[[], str],
                 stop: Callable[[], None], scratch: str = "/data") -> None:
        from isoinspect.inspector.cgroupfs import CgroupView

        self.name, self.pid, self.scratch = name, pid, scratch
        self._read_output, self._stop = read_output, stop
        self.view = CgroupView.for_pid(pid)
        self.seen_pids: set[tuple[int, str]] = set()  # (pid, start time): pids get reused
        self.stopped = False

    def output(self) -> str:
        return self._read_output()

    def alive(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/stat") as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def wait_for(self, marker: str, timeout: float,
                 sample: Callable[[], None] | None = None, interval: float = 0.05) -> str:
        """Poll the output until ``marker`` shows up (calling ``sample`` each round); the
        output. CheckError if it does not within ``timeout`` or the container died first."""
        deadline = time.monotonic() + timeout
        while True:
            if sample is not None:
                sample()
            self.note_pids()
            text = self.output()
            if marker in text:
                return text
            if not self.alive():
                raise CheckError(f"{self.name} exited before printing {marker!r}: "
                                 f"{text.strip()[-200:]!r}",
                                 {"stats": self.view.figures().to_dict()})
            if time.monotonic() >= deadline:
                raise CheckError(f"no {marker!r} from {self.name} within {timeout:.0f}s: "
                                 f"{text.strip()[-200:]!r}")
            time.sleep(interval)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.note_pids()
            self._stop()

    def note_pids(self) -> None:
        """Remember the container's processes (for ``left_behind``)."""
        for pid in self.view.pids():
            started = _start_time(pid)
            if started:
                self.seen_pids.add((pid, started))

    def left_behind(self, grace: float = 5.0) -> list[int]:
        """Processes seen in the container that still exist after ``stop`` (should be none);
        waits ``grace`` seconds for the kernel to finish killing them."""
        deadline = time.monotonic() + grace
        while True:
            left = sorted(pid for pid, started in self.seen_pids if _start_time(pid) == started)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in ticks); '' once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _log_reader(path: str) -> Callable[[], str]:
    def read() -> str:
        with open(path, errors="replace") as handle:
            return handle.read()
    return read


class VerifyRuntime:
    """One way to start a limited container."""

    name = ""
    control = False           # a control target: limits left out, checks are expected to FAIL
    scratch = "/data"         # where the I/O check's host directory appears in the container

    def __init__(self) -> None:
        self.workdir = ""
        self._ids = itertools.count()

    def available(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> str:
        return ""

    def prepare(self, workdir: str) -> None:
        self.workdir = workdir

    def unsupported(self, check: str) -> str:
        """Why ``check`` cannot be verified on this runtime ('' when it can)."""
        return ""

    def explain(self, check: str, error: CheckError) -> str:
        """Why a workload failure is this runtime's own way of handling the limit (the check
        is then UNSUPPORTED with the error as evidence), or '' (it is an ERROR)."""
        return ""

    def new_name(self) -> str:
        return f"{CGROUP_PARENT}-{os.getpid()}-{self.name}-{next(self._ids)}"

    def log_path(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}.log")

    def start(self, argv: list[str], limits: Limits, scratch: str | None = None) -> Box:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove whatever start() may have left (called once, at the end)."""


# ---------------------------------------------------------------------------------- isoinspect


class IsoinspectVerify(VerifyRuntime):
    """The runtime library; with ``scratch`` the container's state root (and so its writable
    layer) lives under it, on the test's loop device: isoinspect has no bind mounts."""

    name = "isoinspect"
    scratch = ""

    def __init__(self) -> None:
        super().__init__()
        self._runtimes: dict[str, tuple[str, object]] = {}  # scratch -> (root, Runtime)

    def available(self) -> tuple[bool, str]:
        from isoinspect.benches.targets.isoinspect import runtime_import_problem

        problem = runtime_import_problem()
        if problem:
            return False, problem
        return (True, "") if os.geteuid() == 0 else (False, "isoinspect needs root")

    def version(self) -> str:
        from isoinspect.benches.targets.isoinspect import package_version

        return package_version()

    def _runtime(self, scratch: str | None):
        from isoinspect.benches.targets.isoinspect import ensure_base_root, private_root
        from isoinspect.runtime.runtime import Runtime

        key = scratch or ""
        if key not in self._runtimes:
            if scratch:
                root = os.path.join(scratch, "isoroot")
                if not os.path.isdir(root):
                    subprocess.run(["cp", "-a", ensure_base_root(self.workdir), root], check=True)
            else:
                root = private_root(self.workdir, "verify")
            self._runtimes[key] = (root, Runtime(root))
        return self._runtimes[key][1]

    def spec_limits(self, limits: Limits) -> dict:
        from isoinspect.runtime.cgroups.resources import cpus_to_quota

        return dict(memory=limits.memory, memory_swap=limits.memory_swap,
                    cpu_quota_us=None if limits.cpus is None else cpus_to_quota(limits.cpus),
                    cpu_shares=limits.cpu_shares, cpuset_cpus=limits.cpuset_cpus,
                    pids_limit=limits.pids_limit,
                    blkio_read_bps=[(*device_numbers(d), r) for d, r in limits.device_read_bps],
                    blkio_write_bps=[(*device_numbers(d), r)
                                     for d, r in limits.device_write_bps])

    def start(self, argv: list[str], limits: Limits, scratch: str | None = None) -> Box:
        from isoinspect.runtime.spec import ContainerSpec

        runtime = self._runtime(scratch)
        name = self.new_name()
        spec = ContainerSpec(IMAGE, list(argv), name=name, network="none",
                             **self.spec_limits(limits))
        record = runtime.create(spec)
        log = self.log_path(name)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            started = runtime.start(record, stdio=(null, out, out))
        except BaseException:
            runtime.remove(record["id"], force=True)
            raise
        finally:
            os.close(out)
            os.close(null)

        def stop() -> None:
            try:
                os.kill(started.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                runtime.wait_child(started)
            finally:
                runtime.remove(record["id"], force=True)

        try:
            return Box(name, started.pid, _log_reader(log), stop, self.scratch)
        except BaseException:
            stop()
            raise

    def cleanup(self) -> None:
        from isoinspect.benches.targets.isoinspect import clean_root

        for root, _ in self._runtimes.values():
            clean_root(root)
        self._runtimes.clear()


class ControlVerify(IsoinspectVerify):
    """isoinspect with the limits left out: a verifier that cannot FAIL here is worthless."""

    name = "control"
    control = True

    def start(self, argv: list[str], limits: Limits, scratch: str | None = None) -> Box:
        return super().start(argv, Limits(), scratch)


# ---------------------------------------------------------------------------------- OCI


def oci_resources(limits: Limits) -> dict:
    """``linux.resources`` of an OCI config for ``limits``."""
    res: dict = {}
    memory = {k: v for k, v in (("limit", limits.memory), ("swap", limits.memory_swap))
              if v is not None}
    if memory:
        res["memory"] = memory
    cpu: dict = {}
    if limits.cpus is not None:
        from isoinspect.runtime.cgroups.resources import cpus_to_quota

        cpu.update(quota=cpus_to_quota(limits.cpus), period=100000)
    if limits.cpu_shares is not None:
        cpu["shares"] = limits.cpu_shares
    if limits.cpuset_cpus is not None:
        cpu["cpus"] = limits.cpuset_cpus
    if cpu:
        res["cpu"] = cpu
    if limits.pids_limit is not None:
        res["pids"] = {"limit": limits.pids_limit}
    block: dict = {}
    for key, entries in (("throttleReadBpsDevice", limits.device_read_bps),
                         ("throttleWriteBpsDevice", limits.device_write_bps)):
        if entries:
            block[key] = [dict(zip(("major", "minor"), device_numbers(d)), rate=r)
                          for d, r in entries]
    if block:
        res["blockIO"] = block
    return res


class RuncVerify(VerifyRuntime):
    """``runc run --detach`` of a bundle on busybox:latest's layer, limits in the config."""

    name = "runc"
    binary_name = "runc"
    global_options: list[str] = []

    def __init__(self) -> None:
        super().__init__()
        self.binary = shutil.which(self.binary_name)
        self.base = self.state = self.rootfs = ""

    def available(self) -> tuple[bool, str]:
        if not self.binary:
            return False, f"{self.binary_name} not installed"
        return (True, "") if os.geteuid() == 0 else (False, f"{self.binary_name} needs root")

    def version(self) -> str:
        from isoinspect.benches.peers import _version_line

        return _version_line([self.binary, "--version"]) or ""

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.targets.isoinspect import base_layer_dir

        super().prepare(workdir)
        self.base = os.path.join(workdir, self.name)
        self.state = os.path.join(self.base, "state")
        self.rootfs = os.path.join(self.base, "rootfs")
        os.makedirs(self.state, exist_ok=True)
        if not os.path.isdir(self.rootfs):
            subprocess.run(["cp", "-a", base_layer_dir(workdir), self.rootfs], check=True)

    def _cli(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.state, *self.global_options, *args]

    def config(self, name: str, argv: list[str], limits: Limits, scratch: str | None) -> dict:
        from isoinspect.benches.peers import oci_config

        config = oci_config(list(argv))
        config["root"] = {"path": self.rootfs, "readonly": False}
        config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{name}"
        config["linux"]["resources"].update(oci_resources(limits))
        if scratch:
            config["mounts"].append({"destination": self.scratch, "type": "bind",
                                     "source": scratch, "options": ["rbind", "rw"]})
        return config

    def start(self, argv: list[str], limits: Limits, scratch: str | None = None) -> Box:
        name = self.new_name()
        bundle = os.path.join(self.base, name)
        os.makedirs(bundle)
        with open(os.path.join(bundle, "config.json"), "w") as handle:
            json.dump(self.config(name, argv, limits, scratch), handle)
        log, pid_file = self.log_path(name), os.path.join(bundle, "pid")

        def stop() -> None:
            from isoinspect.benches.targets.isoinspect import remove_cgroup_parents

            subprocess.run(self._cli("delete", "--force", name), capture_output=True,
                           timeout=60)
            shutil.rmtree(bundle, ignore_errors=True)
            # a sandbox that failed to start is unknown to `runsc delete`: its cgroups stay
            remove_cgroup_parents("/sys/fs/cgroup", f"{CGROUP_PARENT}/{name}")

        with open(log, "w") as out:
            result = subprocess.run(self._cli("run", "--detach", "--pid-file", pid_file,
                                              "--bundle", bundle, name),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    timeout=120)
        try:
            if result.returncode != 0:
                raise CheckError(f"{self.name} run failed (exit {result.returncode}): "
                                 f"{_log_reader(log)().strip()[-300:]}")
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
            return Box(name, pid, _log_reader(log), stop, self.scratch)
        except BaseException:
            stop()
            raise

    def cleanup(self) -> None:
        from isoinspect.benches.targets.isoinspect import remove_cgroup_parents

        if self.state and os.path.isdir(self.state):
            listed = subprocess.run(self._cli("list", "-q"), capture_output=True, text=True)
            for name in listed.stdout.split():
                subprocess.run(self._cli("delete", "--force", name), capture_output=True)
        remove_cgroup_parents("/sys/fs/cgroup", CGROUP_PARENT)


class RunscVerify(RuncVerify):
    """gVisor: the limits land on the sandbox's host cgroup; the Sentry implements the
    container's own view (its memory accounting, its processes are Sentry tasks)."""

    name = "runsc"
    binary_name = "runsc"
    global_options = ["--network=none"]

    def explain(self, check: str, error: CheckError) -> str:
        text = str(error)
        if check == "pids-limit" and "cannot create sandbox" in text:
            return ("the host pids.max counts the sandbox's own threads (Sentry, Gofer), and "
                    "the container's processes are Sentry tasks, not host processes: runsc "
                    "cannot even start under this limit")
        if check.startswith("memory") and "exited before" in text:
            kills = ((error.evidence.get("stats") or {}).get("memory") or {}) \
                .get("events", {}).get("oom_kill")
            return ("the container's memory is the Sentry's: going past the limit killed the "
                    f"whole sandbox (host oom_kill {kills}), not the process that allocated")
        return ""


# ---------------------------------------------------------------------------------- docker


def docker_flags(limits: Limits) -> list[str]:
    flags: list[str] = []
    for flag, value in (("--memory", limits.memory), ("--memory-swap", limits.memory_swap),
                        ("--cpus", limits.cpus), ("--cpu-shares", limits.cpu_shares),
                        ("--cpuset-cpus", limits.cpuset_cpus),
                        ("--pids-limit", limits.pids_limit)):
        if value is not None:
            flags += [flag, str(value)]
    for flag, entries in (("--device-read-bps", limits.device_read_bps),
                          ("--device-write-bps", limits.device_write_bps)):
        for device, rate in entries:
            flags += [flag, f"{device}:{rate}"]
    return flags


class DockerVerify(VerifyRuntime):
    """``docker run -d`` with Docker's own limit flags (dockerd + containerd + runc)."""

    name = "docker"

    def __init__(self) -> None:
        super().__init__()
        self.target = None

    def available(self) -> tuple[bool, str]:
        from isoinspect.benches.targets.docker import DockerTarget

        return DockerTarget().available()

    def version(self) -> str:
        from isoinspect.benches.targets.docker import DockerTarget

        return DockerTarget().version()

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.targets.docker import DockerTarget

        super().prepare(workdir)
        self.target = DockerTarget()
        self.target.prepare(workdir)  # loads the busybox image (no Docker Hub)

    def start(self, argv: list[str], limits: Limits, scratch: str | None = None) -> Box:
        docker = self.target.docker
        name = self.new_name()
        volume = ["-v", f"{scratch}:{self.scratch}"] if scratch else []
        result = subprocess.run([docker, "run", "-d", "--name", name, "--network", "none",
                                 *docker_flags(limits), *volume, self.target.image, *argv],
                                capture_output=True, text=True, timeout=120)

        def stop() -> None:
            subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=60)

        def read() -> str:
            logs = subprocess.run([docker, "logs", name], capture_output=True, text=True,
                                  timeout=30)
            return logs.stdout + logs.stderr

        try:
            if result.returncode != 0:
                raise CheckError(f"docker run failed: {result.stderr.strip()[-300:]}")
            pid = subprocess.run([docker, "inspect", "-f", "{{.State.Pid}}", name],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
            if not pid.isdigit() or pid == "0":
                raise CheckError(f"docker container {name} is not running: {read()[-200:]!r}")
            return Box(name, int(pid), read, stop, self.scratch)
        except BaseException:
            stop()
            raise

    def cleanup(self) -> None:
        if self.target is None:
            return
        docker = self.target.docker
        mine = f"{CGROUP_PARENT}-{os.getpid()}-{self.name}-"
        listed = subprocess.run([docker, "ps", "-aq", "--filter", f"name={mine}"],
                                capture_output=True, text=True, timeout=60).stdout.split()
        if listed:
            subprocess.run([docker, "rm", "-f", *listed], capture_output=True, timeout=120)
        self.target.cleanup()


RUNTIMES: dict[str, type[VerifyRuntime]] = {
    "isoinspect": IsoinspectVerify, "runc": RuncVerify, "runsc": RunscVerify,
    "docker": DockerVerify, "control": ControlVerify,
}


def select(names: str) -> list[VerifyRuntime]:
    """``isoinspect``, ``runc,docker`` or ``all``; ValueError for an unknown name."""
    wanted = list(RUNTIMES) if names == "all" else [n.strip() for n in names.split(",") if n]
    unknown = [n for n in wanted if n not in RUNTIMES]
    if unknown or not wanted:
        raise ValueError(f"unknown runtime {', '.join(unknown) or names!r}: choose from "
                         f"{', '.join(RUNTIMES)} or all")
    return [RUNTIMES[n]() for n in wanted]
