"""Baselines without a container runtime: a plain fork+exec and ``unshare``."""

from __future__ import annotations

import os

from isoinspect.benches.targets.base import (MARKER, Sample, Spawner, Target, find_busybox,
                                             first_line, which)


class HostExec(Target):
    """fork+exec of ``busybox true`` on the host: the floor every runtime stands on."""

    name = "host-exec"
    notes = "posix_spawn + waitpid of busybox true, no isolation"
    container = False
    takes_images = True
    on_host = True
    unsupported = {"teardown": "a plain process has nothing to tear down beyond waitpid"}

    def __init__(self) -> None:
        super().__init__()
        self.busybox = find_busybox()
        self.spawner: Spawner | None = None

    def version(self) -> str:
        return first_line([self.busybox, "--help"]) if self.busybox else ""

    def available(self) -> tuple[bool, str]:
        if not self.busybox:
            return False, "busybox not found (install busybox-static)"
        return True, ""

    def argv(self, *command: str) -> list[str]:
        if self.user is not None and not command:  # the user's command, on this host
            from isoinspect.benches.user_image import host_argv

            return host_argv(self.user)
        return [self.busybox, *(command or ("true",))]

    def prepare(self, workdir: str) -> None:
        super().prepare(workdir)
        scratch = os.path.join(workdir, self.name)
        os.makedirs(scratch, exist_ok=True)
        self.spawner = Spawner(scratch_dir=scratch)
        self.spawner.judge = self
        self.argv()  # the user's command must exist on this host: refused here, not per run

    def ready_once(self) -> Sample:
        return self.spawner.until_marker(self.argv("echo", MARKER))

    def lifecycle_once(self) -> Sample:
        return self.spawner.run_sample(self.argv())

    def cleanup(self) -> None:
        if self.spawner:
            self.spawner.close()
            self.spawner = None


class UnshareTarget(HostExec):
    """``unshare -fmpiun busybox true``: the kernel's namespace cost, no runtime around it."""

    name = "unshare"
    notes = "new mount, pid, ipc, uts and net namespaces (fork), no cgroup, no rootfs"
    unsupported = {"teardown": "the namespaces die with the process (see `bench namespaces` "
                               "for their destruction cost)"}

    def __init__(self) -> None:
        super().__init__()
        self.unshare = which("unshare")

    def version(self) -> str:
        return first_line([self.unshare, "--version"]) if self.unshare else ""

    def available(self) -> tuple[bool, str]:
        ok, reason = super().available()
        if not ok:
            return ok, reason
        if not self.unshare:
            return False, "unshare not found (util-linux)"
        if os.geteuid() != 0:
            return False, "unshare -m/-n needs root"
        return True, ""

    def argv(self, *command: str) -> list[str]:
        return [self.unshare, "-fmpiun", *super().argv(*command)]
