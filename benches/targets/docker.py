"""``docker run`` (runc under dockerd, containerd and a shim) on the isoinspect-busybox image.

One adapter for bench (``docker run --rm``) and verify (``docker run -d`` with Docker's own
limit flags): both go through ``run_argv``, so only the command and the limits differ.
On-CPU time adds the daemons' own CPU time (dockerd, containerd: /proc/PID/stat deltas) to the
docker CLI's rusage; the per-container shim is not counted (it is reparented away from us).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

from isoinspect.benches.targets.base import (LIFECYCLE_COMMAND, READY_COMMAND, VERIFY_PREFIX,
                                             Sample, Spawner, Target)
from isoinspect.benches.targets.box import Box, CheckError

DAEMONS = ("dockerd", "containerd")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def docker_binary() -> str | None:
    """Debian's CLI (same release as the daemon) before any other docker on PATH."""
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")


def daemon_pids(names: tuple[str, ...] = DAEMONS, proc: str = "/proc") -> list[int]:
    pids = []
    for entry in os.listdir(proc):
        if entry.isdigit():
            try:
                with open(os.path.join(proc, entry, "comm")) as handle:
                    if handle.read().strip() in names:
                        pids.append(int(entry))
            except OSError:
                continue
    return sorted(pids)


def process_cpu(pids: list[int], proc: str = "/proc") -> float:
    """utime + stime of ``pids`` in seconds (processes that are gone count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(os.path.join(proc, str(pid), "stat")) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def docker_flags(limits) -> list[str]:
    """Docker's own flags for a bundle.Limits."""
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


class DockerTarget(Target):
    name = "docker"
    notes = "docker run --rm --network none (dockerd 20.10, containerd, runc); CPU incl. daemons"

    def __init__(self, name: str | None = None, control: bool = False) -> None:
        super().__init__(name, control)
        self.docker = docker_binary()
        self.spawner: Spawner | None = None
        self.daemons: list[int] = []
        self._ids = itertools.count()
        self._prefix = f"isoinspect-bench-{os.getpid()}"
        self.loaded = False

    takes_images = True

    def version(self) -> str:
        from isoinspect.benches.peers import check_docker

        data = check_docker().data or {}
        return f"dockerd {data.get('version')}, containerd " \
               f"{(data.get('components') or {}).get('containerd')}"

    def available(self) -> tuple[bool, str]:
        from isoinspect.benches.peers import check_docker

        if not self.docker:
            return False, "docker CLI not installed"
        check = check_docker()
        return (True, "") if check.ok else (False, check.detail)

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.peers import DOCKER_IMAGE

        super().prepare(workdir)
        if self.user is not None:
            from isoinspect.benches.user_image import docker_load

            self.loaded = True  # cleanup() untags it, even if the load fails half-way
            self.image = docker_load(self.user, self.docker, workdir)
        else:
            self.image = DOCKER_IMAGE
            subprocess.run(["bash", os.path.join(REPO, "scripts", "docker-busybox.sh"),
                            self.image], check=True, capture_output=True,
                           env=dict(os.environ, DOCKER=self.docker))
        scratch = os.path.join(workdir, self.name)
        os.makedirs(scratch, exist_ok=True)
        self.spawner = Spawner(scratch_dir=scratch)
        self.spawner.judge = self
        self.daemons = daemon_pids()

    def run_argv(self, command: list[str], name: str | None = None, limits=None,
                 scratch: str | None = None, detach: bool = False) -> list[str]:
        """``docker run`` as bench and verify both call it (unnamed: ``--rm``)."""
        options = ["-d"] if detach else []
        options += ["--name", name] if name else ["--rm"]
        if scratch:
            options += ["-v", f"{scratch}:{self.scratch}"]
        return [self.docker, "run", *options, "--network", "none",
                *(docker_flags(limits) if limits is not None else []), self.image, *command]

    def argv(self, *command: str, name: str | None = None) -> list[str]:
        default = self.user.command if self.user else LIFECYCLE_COMMAND
        return self.run_argv(list(command or default), name=name)

    def _with_daemons(self, run) -> Sample:
        before = process_cpu(self.daemons)
        sample = run()
        return Sample(sample.wall, (sample.cpu or 0.0) + process_cpu(self.daemons) - before)

    def ready_once(self) -> Sample:
        return self.spawner.until_marker(self.argv(*READY_COMMAND))

    def lifecycle_once(self) -> Sample:
        return self._with_daemons(lambda: self.spawner.run_sample(self.argv()))

    def teardown_once(self) -> Sample:
        name = f"{self._prefix}-{next(self._ids)}"
        self.spawner.run(self.argv(name=name))  # waits for the exit
        return self._with_daemons(lambda: self.spawner.run_sample([self.docker, "rm", name]))

    def trace_pids(self) -> list[int]:
        return list(self.daemons)

    def start(self, argv: list[str], limits, scratch: str | None = None) -> Box:
        from isoinspect.benches.bundle import Limits

        docker = self.docker
        name = self.verify_name()
        result = subprocess.run(self.run_argv(list(argv), name, Limits() if self.control
                                              else limits, scratch, detach=True),
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

    def leftovers(self) -> list[str]:
        """Containers this process's bench runs and verify checks left (by name prefix)."""
        if not self.docker:
            return []
        found: list[str] = []
        for prefix in (self._prefix, f"{VERIFY_PREFIX}-{os.getpid()}-{self.name}-"):
            result = subprocess.run([self.docker, "ps", "-aq", "--filter", f"name={prefix}"],
                                    capture_output=True, text=True, timeout=60)
            found += [c for c in result.stdout.split() if c not in found]
        return found

    def cleanup(self) -> None:
        found = self.leftovers()
        if found:
            subprocess.run([self.docker, "rm", "-f", *found], capture_output=True, timeout=120)
        if self.loaded:
            from isoinspect.benches.user_image import docker_unload

            docker_unload(self.docker)
            self.loaded = False
        if self.spawner:
            self.spawner.close()
            self.spawner = None
