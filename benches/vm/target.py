"""The QEMU guest as a start-up benchmark target (see benches/targets/base.py).

``start_once`` boots the guest with the command ``true`` and returns QEMU start -> the guest's
ready marker (init done, cgroup2 mounted: the moment a workload would be exec'd), so it is the
VM's "start-to-exec"; ``last_phases`` adds the guest kernel's own clock at that marker and the
whole lifecycle (boot, ``true``, power-off, QEMU exit). The accelerator (kvm or tcg, chosen by
a timed boot) is in the name shown to readers through ``notes`` and ``version``.

Register it with the runner by adding ``QemuTarget()`` to benches/targets default_targets();
it is ``slow`` (left out by --quick).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from isoinspect.benches.targets.base import Sample, Target, TargetError


class QemuTarget(Target):
    name = "qemu"
    measures = "start-to-exec"
    no_image_reason = ("cannot run an arbitrary image (the guest boots its own kernel and "
                       "busybox initramfs)")
    slow = True
    notes = "QEMU start to the guest's init ready marker (Debian kernel + busybox initramfs)"
    concurrent = False
    container = False
    unsupported = {"teardown": "the guest powers off inside its lifecycle; QEMU's exit is "
                               "not separable from it"}

    def __init__(self, cpus: int = 1, memory_mb: int = 512) -> None:
        super().__init__()
        self.cpus, self.memory_mb = cpus, memory_mb
        self.vm = None

    def available(self) -> tuple[bool, str]:
        if not shutil.which("qemu-system-x86_64"):
            return False, "qemu-system-x86_64 not installed"
        if os.geteuid() != 0:
            return False, "needs root (9p passthrough shares)"
        return True, ""

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.vm import GuestVM, VMError

        super().prepare(workdir)
        try:
            self.vm = GuestVM(cpus=self.cpus, memory_mb=self.memory_mb)
            accel = self.vm.choose_accel()
        except VMError as exc:
            raise TargetError(str(exc)) from None
        self.notes = f"{QemuTarget.notes}; accelerator {accel} ({self.vm.accel_reason})"
        self.labels = {"accelerator": accel}

    def version(self) -> str:
        try:
            out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                                 text=True, timeout=10).stdout.split("\n")[0]
        except (OSError, subprocess.SubprocessError):
            out = "qemu"
        accel = self.vm.accel if self.vm and self.vm.accel else "?"
        kernel = self.vm.kernel.release if self.vm else "?"
        return f"{out} accel={accel} guest={kernel}"

    def ready_once(self) -> Sample:
        return Sample(self._boot().boot_seconds)

    def lifecycle_once(self) -> Sample:
        return Sample(self._boot().total_seconds)

    def start_once(self) -> float:
        return self._boot().boot_seconds

    def _boot(self):
        from isoinspect.benches.vm import VMError

        if self.vm is None:
            raise TargetError("prepare() first")
        try:
            result = self.vm.run(["true"], timeout=300)
        except VMError as exc:
            raise TargetError(str(exc).split("\n")[0]) from None
        if result.returncode != 0:
            raise TargetError(f"true exited {result.returncode} in the guest")
        self.last_phases = {"guest_kernel_to_ready": result.guest_uptime_ready or 0.0,
                            "lifecycle": result.total_seconds}
        return result
