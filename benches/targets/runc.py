"""runc: ``runc run`` of an OCI bundle holding the same busybox layer isoinspect uses."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess

from isoinspect.benches.targets.base import Spawner, Target, which
from isoinspect.benches.targets.isoinspect import base_layer_dir, runtime_import_problem


class RuncTarget(Target):
    """``runc --root R run -b BUNDLE <id>``: create + start + wait + delete, wall clock.

    The bundle is ``runc spec``'s default (pid, net, ipc, uts and mount namespaces, no seccomp
    profile, no cgroup namespace) with args ``/bin/true``, no terminal and a writable root, on
    a copy of busybox:latest's layer. isoinspect additionally loads a seccomp filter, makes a
    cgroup namespace and mounts an overlay, so the comparison is conservative for isoinspect.
    """

    name = "runc"
    notes = "runc run (create+start+wait+delete), runc spec defaults, no seccomp"
    binary_name = "runc"

    def __init__(self, binary: str | None = None) -> None:
        super().__init__()
        self.binary = binary or which(self.binary_name)
        self.state_root: str | None = None
        self.bundle: str | None = None
        self.spawner: Spawner | None = None
        self._ids = itertools.count()
        self._prefix = f"isoinspect-bench-{os.getpid()}"

    def version(self) -> str:
        if not self.binary:
            return ""
        result = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        return "; ".join(line.strip() for line in result.stdout.splitlines()[:3])

    def available(self) -> tuple[bool, str]:
        if not self.binary:
            return False, f"{self.binary_name} not found"
        if os.geteuid() != 0:
            return False, f"{self.binary_name} needs root here (no rootless set-up)"
        problem = runtime_import_problem()
        if problem:  # the bundle is made from isoinspect's busybox image
            return False, problem
        return True, ""

    def prepare(self, workdir: str) -> None:
        super().prepare(workdir)
        base = os.path.join(workdir, self.name)
        self.state_root = os.path.join(base, "state")
        self.bundle = os.path.join(base, "bundle")
        rootfs = os.path.join(self.bundle, "rootfs")
        os.makedirs(self.state_root, exist_ok=True)
        if os.path.isdir(self.bundle):
            shutil.rmtree(self.bundle)
        os.makedirs(rootfs)
        subprocess.run(["cp", "-a", base_layer_dir(workdir) + "/.", rootfs], check=True)
        subprocess.run([self.binary, "spec"], cwd=self.bundle, check=True, capture_output=True)
        path = os.path.join(self.bundle, "config.json")
        with open(path) as handle:
            config = json.load(handle)
        self.adjust_config(config)
        with open(path, "w") as handle:
            json.dump(config, handle, indent=1)
        self.spawner = Spawner(scratch_dir=base)

    @staticmethod
    def adjust_config(config: dict) -> None:
        config["process"]["args"] = ["/bin/true"]
        config["process"]["terminal"] = False
        config["root"]["readonly"] = False

    def argv(self, container_id: str) -> list[str]:
        return [self.binary, "--root", self.state_root, "run", "-b", self.bundle, container_id]

    def start_once(self) -> float:
        return self.spawner.run(self.argv(f"{self._prefix}-{next(self._ids)}"))

    def leftovers(self) -> list[str]:
        if not self.state_root or not os.path.isdir(self.state_root):
            return []
        result = subprocess.run([self.binary, "--root", self.state_root, "list", "-q"],
                                capture_output=True, text=True)
        return result.stdout.split()

    def cleanup(self) -> None:
        for container_id in self.leftovers():
            subprocess.run([self.binary, "--root", self.state_root, "delete", "-f",
                            container_id], capture_output=True)
        if self.spawner:
            self.spawner.close()
            self.spawner = None
