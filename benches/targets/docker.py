"""``docker run`` (runc under dockerd, containerd and a shim) on the isoinspect-busybox image.

On-CPU time adds the daemons' own CPU time (dockerd, containerd: /proc/PID/stat deltas) to the
docker CLI's rusage; the per-container shim is not counted (it is reparented away from us).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

from isoinspect.benches.targets.base import (LIFECYCLE_COMMAND, READY_COMMAND, Sample, Spawner,
                                             Target)

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


class DockerTarget(Target):
    name = "docker"
    notes = "docker run --rm --network none (dockerd 20.10, containerd, runc); CPU incl. daemons"

    def __init__(self) -> None:
        super().__init__()
        self.docker = docker_binary()
        self.spawner: Spawner | None = None
        self.daemons: list[int] = []
        self._ids = itertools.count()
        self._prefix = f"isoinspect-bench-{os.getpid()}"

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
        self.image = DOCKER_IMAGE
        subprocess.run(["bash", os.path.join(REPO, "scripts", "docker-busybox.sh"), self.image],
                       check=True, capture_output=True, env=dict(os.environ, DOCKER=self.docker))
        scratch = os.path.join(workdir, self.name)
        os.makedirs(scratch, exist_ok=True)
        self.spawner = Spawner(scratch_dir=scratch)
        self.daemons = daemon_pids()

    def argv(self, *command: str, name: str | None = None) -> list[str]:
        options = ["--name", name] if name else ["--rm"]
        return [self.docker, "run", *options, "--network", "none", self.image,
                *(command or LIFECYCLE_COMMAND)]

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

    def leftovers(self) -> list[str]:
        if not self.docker:
            return []
        result = subprocess.run([self.docker, "ps", "-aq", "--filter", f"name={self._prefix}"],
                                capture_output=True, text=True)
        return result.stdout.split()

    def cleanup(self) -> None:
        found = self.leftovers()
        if found:
            subprocess.run([self.docker, "rm", "-f", *found], capture_output=True)
        if self.spawner:
            self.spawner.close()
            self.spawner = None
