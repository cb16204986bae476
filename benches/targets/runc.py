"""OCI runtime CLIs (runc, crun, runsc) on bundles holding the busybox layer isoinspect uses."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess

from isoinspect.benches.targets.base import (LIFECYCLE_COMMAND, READY_COMMAND, Sample, Spawner,
                                             Target, TargetError, wait_exit, which)
from isoinspect.benches.targets.isoinspect import base_layer_dir, runtime_import_problem


class RuncTarget(Target):
    """``runc --root R run -b BUNDLE <id>``: create + start + wait + delete, wall clock.

    The bundles are ``runc spec``'s default (pid, net, ipc, uts and mount namespaces, no seccomp
    profile, no cgroup namespace) with no terminal and a writable root on one copy of
    busybox:latest's layer; one bundle runs ``/bin/true``, one ``echo MARKER``.
    isoinspect additionally loads a seccomp filter, makes a cgroup namespace and mounts an
    overlay, so the comparison is conservative for isoinspect.
    teardown: ``create`` + ``start`` (untimed), wait for the container's exit, then ``delete``.
    """

    name = "runc"
    notes = "runc run (create+start+wait+delete), runc spec defaults, no seccomp"
    binary_name = "runc"
    global_options: list[str] = []

    def __init__(self, binary: str | None = None) -> None:
        super().__init__()
        self.binary = binary or which(self.binary_name)
        self.state_root: str | None = None
        self.bundles: dict[str, str] = {}
        self.spawner: Spawner | None = None
        self._ids = itertools.count()
        self._prefix = f"isoinspect-bench-{os.getpid()}"
        self.base: str | None = None

    @property
    def bundle(self) -> str | None:
        return self.bundles.get("true")

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
        self.base = os.path.join(workdir, self.name)
        self.state_root = os.path.join(self.base, "state")
        rootfs = os.path.join(self.base, "rootfs")
        os.makedirs(self.state_root, exist_ok=True)
        if os.path.isdir(rootfs):
            shutil.rmtree(rootfs)
        os.makedirs(rootfs)
        subprocess.run(["cp", "-a", base_layer_dir(workdir) + "/.", rootfs], check=True)
        runc = which("runc") or self.binary  # `runc spec` writes the default config
        for key, args in (("true", ["/bin/" + LIFECYCLE_COMMAND[0]]),
                          ("ready", ["/bin/" + READY_COMMAND[0], *READY_COMMAND[1:]])):
            bundle = os.path.join(self.base, f"bundle-{key}")
            os.makedirs(bundle, exist_ok=True)
            config_path = os.path.join(bundle, "config.json")
            if os.path.exists(config_path):
                os.unlink(config_path)
            subprocess.run([runc, "spec"], cwd=bundle, check=True, capture_output=True)
            with open(config_path) as handle:
                config = json.load(handle)
            self.adjust_config(config, args)
            config["root"]["path"] = rootfs
            with open(config_path, "w") as handle:
                json.dump(config, handle, indent=1)
            self.bundles[key] = bundle
        self.spawner = Spawner(scratch_dir=self.base)

    @staticmethod
    def adjust_config(config: dict, args: list[str] | None = None) -> None:
        config["process"]["args"] = list(args or ["/bin/true"])
        config["process"]["terminal"] = False
        config["root"]["readonly"] = False

    def _cli(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.state_root, *self.global_options, *args]

    def argv(self, container_id: str, bundle: str = "true") -> list[str]:
        return self._cli("run", "--bundle", self.bundles[bundle], container_id)

    def _new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def ready_once(self) -> Sample:
        return self.spawner.until_marker(self.argv(self._new_id(), "ready"))

    def lifecycle_once(self) -> Sample:
        return self.spawner.run_sample(self.argv(self._new_id()))

    def teardown_once(self) -> Sample:
        container_id = self._new_id()
        pid_file = os.path.join(self.base, f"{container_id}.pid")
        try:
            self.spawner.run(self._cli("create", "--pid-file", pid_file, "--bundle",
                                       self.bundles["true"], container_id))
            self.spawner.run(self._cli("start", container_id))
            self.wait_stopped(container_id, pid_file)
            return self.spawner.run_sample(self._cli("delete", container_id))
        finally:
            if os.path.exists(pid_file):
                os.unlink(pid_file)

    def wait_stopped(self, container_id: str, pid_file: str) -> None:
        """Block until the container's process has exited (untimed)."""
        try:
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError) as exc:
            raise TargetError(f"no pid file from {self.name} create: {exc}") from None
        wait_exit(pid)

    def leftovers(self) -> list[str]:
        if not self.state_root or not os.path.isdir(self.state_root):
            return []
        result = subprocess.run(self._cli("list", "-q"), capture_output=True, text=True)
        return result.stdout.split()

    def cleanup(self) -> None:
        for container_id in self.leftovers():
            subprocess.run(self._cli("delete", "-f", container_id), capture_output=True)
        if self.spawner:
            self.spawner.close()
            self.spawner = None


class RunscTarget(RuncTarget):
    """gVisor: ``runsc --network=none run``; the sandbox (Sentry + Gofer) starts every time."""

    name = "runsc"
    notes = "runsc run --network=none (gVisor sandbox boot + create+start+wait+delete)"
    binary_name = "runsc"
    global_options = ["--network=none"]


class CrunTarget(RuncTarget):
    """crun, where it runs: its own test run decides (crun 1.8 refuses hybrid cgroups)."""

    name = "crun"
    notes = "crun run (create+start+wait+delete), same bundles as runc"
    binary_name = "crun"

    def available(self) -> tuple[bool, str]:
        ok, reason = super().available()
        if not ok:
            return ok, reason
        from isoinspect.benches.peers import check_oci_runtime

        check = check_oci_runtime("crun")
        if not check.ok:
            return False, check.detail
        return True, ""
