"""OCI runtime CLIs (runc, crun, runsc) on bundles holding the busybox layer isoinspect uses.

One adapter per peer for bench and verify: every container, measured or verified, gets a bundle
of its own from benches/bundle.py (Docker's defaults; limits only where verify asks for them)
with its cgroup at ``/isoinspect-peers/<container id>``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

from isoinspect.benches import bundle
from isoinspect.benches.targets.base import (LIFECYCLE_COMMAND, READY_COMMAND, VERIFY_PREFIX,
                                             Sample, Spawner, Target, TargetError, wait_exit,
                                             which)
from isoinspect.benches.targets.box import Box, CheckError, log_reader
from isoinspect.benches.targets.isoinspect import (base_layer_dir, remove_cgroup_parents,
                                                   runtime_import_problem)

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PARENT = "isoinspect-peers"


def drain_cgroup(path: str, timeout: float = 5.0) -> None:
    """Kill what is left in our container's cgroup ``path`` and remove it from every
    hierarchy, waiting for the processes to go (rmdir fails while one is still exiting)."""
    import signal
    import time

    from isoinspect.inspector.cgroupfs import CgroupView

    view = CgroupView.for_path(path)
    deadline = time.monotonic() + timeout
    while True:
        for pid in view.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        remove_cgroup_parents(CGROUP_ROOT, path.strip("/"))
        if not view.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _children(directory: str, prefix: str) -> list[str]:
    try:
        return [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return []


class RuncTarget(Target):
    """``runc --root R run -b BUNDLE <id>``: create + start + wait + delete, wall clock.

    Each run's bundle (written untimed) is benches/bundle.py's: Docker's defaults with no
    terminal and a writable root on one copy of busybox:latest's layer, and the default seccomp
    profile isoinspect loads for its own containers (one policy for every runtime measured).
    teardown: ``create`` + ``start`` (untimed), wait for the container's exit, then ``delete``.
    verify: ``run --detach`` of a bundle whose ``linux.resources`` carry the limits.
    """

    name = "runc"
    notes = "runc run (create+start+wait+delete), Docker's default config and seccomp profile"
    takes_images = True
    binary_name = "runc"
    global_options: list[str] = []

    def __init__(self, binary: str | None = None, name: str | None = None,
                 control: bool = False) -> None:
        super().__init__(name, control)
        self.binary = binary or which(self.binary_name)
        self.state_root: str | None = None
        self.rootfs: str | None = None
        self.spawner: Spawner | None = None
        self._ids = itertools.count()
        self._prefix = f"isoinspect-bench-{os.getpid()}"
        self.base: str | None = None
        self.image_user: tuple[int, int, tuple[int, ...]] = (0, 0, ())

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
        self.rootfs = os.path.join(self.base, "rootfs")
        os.makedirs(self.state_root, exist_ok=True)
        if os.path.isdir(self.rootfs):
            shutil.rmtree(self.rootfs)
        if self.user is not None:
            from isoinspect.benches.user_image import process_user, rootfs

            source = rootfs(self.user, workdir)
            self.image_user = process_user(self.user, source)
        else:
            source = base_layer_dir(workdir)
        subprocess.run(["cp", "-a", source, self.rootfs], check=True)
        self.spawner = Spawner(scratch_dir=self.base)
        self.spawner.judge = self

    # -- one container, one bundle -------------------------------------------------------------

    def workload(self, container_id: str, argv: list[str],
                 limits: bundle.Limits | None = None, scratch: str | None = None
                 ) -> bundle.Workload:
        """What bench and verify both run: only the command, the limits and binds differ."""
        binds = (bundle.Bind(scratch, self.scratch),) if scratch else ()
        image = {}
        if self.user:  # the image's ENV, WORKDIR and USER, as `docker run` applies them
            uid, gid, groups = self.image_user
            image = {"env": self.user.env, "cwd": self.user.cwd, "uid": uid, "gid": gid,
                     "additional_gids": groups}
        return bundle.Workload(tuple(argv), limits=limits or bundle.Limits(),
                               cgroups_path=f"/{CGROUP_PARENT}/{container_id}", binds=binds,
                               **image)

    def write_bundle(self, container_id: str, argv: list[str],
                     limits: bundle.Limits | None = None, scratch: str | None = None) -> str:
        return bundle.write(os.path.join(self.base, "bundles", container_id), self.rootfs,
                            self.workload(container_id, argv, limits, scratch))

    def _remove_bundle(self, container_id: str) -> None:
        shutil.rmtree(os.path.join(self.base, "bundles", container_id), ignore_errors=True)

    def _cli(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.state_root, *self.global_options, *args]

    def _new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # -- bench ---------------------------------------------------------------------------------

    def _run_once(self, argv: list[str], measure) -> Sample:
        """Write a fresh bundle (untimed), ``measure(run argv)``, remove the bundle."""
        container_id = self._new_id()
        path = self.write_bundle(container_id, argv)
        try:
            return measure(self._cli("run", "--bundle", path, container_id))
        finally:
            self._remove_bundle(container_id)

    def ready_once(self) -> Sample:
        return self._run_once(["/bin/" + READY_COMMAND[0], *READY_COMMAND[1:]],
                              self.spawner.until_marker)

    def lifecycle_once(self) -> Sample:
        argv = list(self.user.argv) if self.user else ["/bin/" + LIFECYCLE_COMMAND[0]]
        return self._run_once(argv, self.spawner.run_sample)

    def teardown_once(self) -> Sample:
        container_id = self._new_id()
        path = self.write_bundle(container_id, ["/bin/" + LIFECYCLE_COMMAND[0]])
        pid_file = os.path.join(self.base, f"{container_id}.pid")
        try:
            self.spawner.run(self._cli("create", "--pid-file", pid_file, "--bundle", path,
                                       container_id))
            self.spawner.run(self._cli("start", container_id))
            self.wait_stopped(container_id, pid_file)
            return self.spawner.run_sample(self._cli("delete", container_id))
        finally:
            if os.path.exists(pid_file):
                os.unlink(pid_file)
            self._remove_bundle(container_id)

    def wait_stopped(self, container_id: str, pid_file: str) -> None:
        """Block until the container's process has exited (untimed)."""
        try:
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError) as exc:
            raise TargetError(f"no pid file from {self.name} create: {exc}") from None
        wait_exit(pid)

    # -- verify --------------------------------------------------------------------------------

    def start(self, argv: list[str], limits: bundle.Limits,
              scratch: str | None = None) -> Box:
        name = self.verify_name()
        path = self.write_bundle(name, argv, bundle.Limits() if self.control else limits,
                                 scratch)
        log, pid_file = self.log_path(name), os.path.join(path, "pid")

        def stop() -> None:
            try:
                subprocess.run(self._cli("delete", "--force", name), capture_output=True,
                               timeout=60)
            finally:
                self._remove_bundle(name)
                # a sandbox that failed to start (or whose start was interrupted) is unknown
                # to `runsc delete`: its processes and cgroups stay
                drain_cgroup(f"{CGROUP_PARENT}/{name}")

        try:   # a Ctrl-C during `run` too: the half-made sandbox's state and cgroups go
            with open(log, "w") as out:
                result = subprocess.run(self._cli("run", "--detach", "--pid-file", pid_file,
                                                  "--bundle", path, name),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        timeout=120)
            if result.returncode != 0:
                raise CheckError(f"{self.name} run failed (exit {result.returncode}): "
                                 f"{log_reader(log)().strip()[-300:]}")
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
            return Box(name, pid, log_reader(log), stop, self.scratch)
        except BaseException:
            stop()
            raise

    # -- leftovers -----------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        if not self.state_root or not os.path.isdir(self.state_root):
            return []
        result = subprocess.run(self._cli("list", "--quiet"), capture_output=True, text=True)
        return result.stdout.split()

    def cleanup(self) -> None:
        for container_id in self.leftovers():
            subprocess.run(self._cli("delete", "-f", container_id), capture_output=True)
        mine = f"{VERIFY_PREFIX}-{os.getpid()}-{self.name}-"   # verify_name's, this process's
        for name in _children(f"{CGROUP_ROOT}/memory/{CGROUP_PARENT}", mine):
            drain_cgroup(f"{CGROUP_PARENT}/{name}")
        remove_cgroup_parents(CGROUP_ROOT, CGROUP_PARENT)
        if self.spawner:
            self.spawner.close()
            self.spawner = None


class RunscTarget(RuncTarget):
    """gVisor: ``runsc --network=none run``; the sandbox (Sentry + Gofer) starts every time.

    Under verify the limits land on the sandbox's host cgroup; the Sentry implements the
    container's own view (its memory accounting, its processes are Sentry tasks)."""

    name = "runsc"
    notes = "runsc run --network=none (gVisor sandbox boot + create+start+wait+delete)"
    binary_name = "runsc"
    global_options = ["--network=none"]

    def explain(self, check: str, error: CheckError) -> str:
        text = str(error)
        if check == "pids-limit" and "cannot create sandbox" in text:
            return ("the host pids.max counts the sandbox's own threads (Sentry, Gofer), and "
                    "the container's processes are Sentry tasks, not host processes: runsc "
                    "cannot even start under this limit")
        if check.startswith("memory") and "exited before" in text:
            kills = ((error.evidence.get("usage") or {}).get("memory") or {}) \
                .get("events", {}).get("oom_kill")
            counted = f" (host oom_kill {kills})" if kills is not None else ""
            return ("the container's memory is the Sentry's: going past the limit killed the "
                    f"whole sandbox{counted}, not the process that allocated")
        return ""


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
