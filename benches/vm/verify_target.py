"""The QEMU guest as a ``verify`` runtime: limits applied the way a VM manager applies them.

``start(argv, limits)`` boots a detached guest (benches/vm/instance.py) configured by
benches/vm/limits.py ``plan``: guest RAM, vCPUs, a throttled virtual disk, and a host cgroup
``isoinspect-verify-<pid>-qemu-<n>`` that QEMU joins before exec (memory hard limit) and that
gets the CPU quota, shares and cpuset once the guest is up. The guest's job then runs ``argv``
with busybox's applets first on PATH (the same tools the containers' busybox image has), its
stdout and stderr in one file the host reads live.

The Box: pid = QEMU's (its cgroup is the one the CPU checks read), output = the guest job's
output, ``stop`` = kill QEMU and remove the host cgroup. Each start's configuration and the
host cgroup's figures at stop are handed to verify through ``take_evidence`` together with the
accelerator (kvm or tcg), so every result says what ran and under which limits.
"""

from __future__ import annotations

import os
import shlex
import shutil

from isoinspect.benches.targets.base import VERIFY_PREFIX, Target, TargetError, first_line
from isoinspect.benches.targets.box import Box, CheckError

DISK_MB = 40
GUEST_BUSYBOX = "/tmp/isoinspect-busybox"
GO = "go"
# The guest side of a start: busybox applets first on PATH; the throttled disk (if any) is
# /dev/vda, linked where the I/O check writes and reads its file; then wait for the host to
# apply the live limits (the "go" file in the run share) and run the workload.
JOB = """G=/run/isoinspect-vm
mkdir -p {bb} && /bin/busybox --install -s {bb}
export PATH={bb}:$PATH
if [ -b /dev/vda ]; then mkdir -p {scratch}; for d in read write; do ln -sf /dev/vda {scratch}/iotest-$d; done; fi
while [ ! -e $G/{go} ]; do sleep 0.05; done
exec {command} 2>&1
"""


def guest_job(argv: list[str], scratch: str) -> str:
    """The shell command DetachedGuest execs in the guest for ``argv``."""
    script = JOB.format(bb=GUEST_BUSYBOX, scratch=scratch, go=GO, command=shlex.join(argv))
    return "sh -c " + shlex.quote(script)


class QemuVerifyTarget(Target):
    name = "qemu"
    slow = True
    concurrent = False
    container = False
    notes = "QEMU guest configured like libvirt: -m, vCPUs + pinning, host cgroup, iotune disk"
    scratch = "/data"

    def __init__(self, name: str | None = None, control: bool = False) -> None:
        super().__init__(name, control)
        self.vm = None
        self.accel = ""
        self.floor_mb = 0
        self.setup: dict = {}
        self._live: dict[str, Box] = {}
        self._evidence: list[dict] = []

    def available(self) -> tuple[bool, str]:
        if not shutil.which("qemu-system-x86_64"):
            return False, "qemu-system-x86_64 not installed"
        if os.geteuid() != 0:
            return False, "needs root (9p passthrough shares, host cgroups)"
        if not os.access("/bin/busybox", os.X_OK):
            return False, "the guest runs the host's /bin/busybox: busybox-static not installed"
        return True, ""

    def version(self) -> str:
        out = first_line(["qemu-system-x86_64", "--version"]) or "qemu"
        return f"{out} accel={self.accel}" if self.accel else out

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.density.instances import smallest_guest

        super().prepare(workdir)
        self.vm, probe, cached = smallest_guest(cpus=1)
        self.accel = self.vm.accel
        self.floor_mb = probe.memory_mb
        self.labels = {"accelerator": self.accel}
        self.setup = {"accelerator": self.accel, "accelerator_reason": self.vm.accel_reason,
                      "guest_kernel": self.vm.kernel.release,
                      "guest_memory_floor_mb": self.floor_mb, "floor_probe_cached": cached}

    # -- verify ------------------------------------------------------------------------------

    def check_unsupported(self, check: str) -> str:
        from isoinspect.benches.vm.limits import UNMAPPED

        if check == "pids-limit":
            return UNMAPPED["pids_limit"]
        if check == "memory-swap":
            return UNMAPPED["memory_swap"]
        return ""

    @property
    def verify_checks(self) -> dict:
        """The checks judged from the guest's own view (memory: the guest's RAM and OOM killer
        are how a VM enforces it; the host cgroup only holds QEMU as a whole)."""
        from isoinspect.benches.verify import vm_memory

        return {"memory-oom": vm_memory.check_oom,
                "memory-under-limit": vm_memory.check_under_limit}

    def plan(self, limits, name: str, scratch: str | None):
        from isoinspect.benches.vm.limits import plan

        disk = None
        if limits.device_read_bps or limits.device_write_bps:
            disk = os.path.join(scratch or self.workdir, f"{name}.img")
        return plan(limits, os.cpu_count() or 1, self.floor_mb, self.accel, disk)

    def start(self, argv: list[str], limits, scratch: str | None = None) -> Box:
        from isoinspect.benches.vm import VMError
        from isoinspect.benches.vm.instance import STARTED, DetachedGuest
        from isoinspect.runtime.cgroups.manager import make_manager

        if self.vm is None:
            raise TargetError("prepare() first")
        name = self.verify_name()
        config = self.plan(limits, name, scratch)
        if config.drive:
            with open(config.drive.path, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, DISK_MB << 20)
        cgroup = make_manager(name)
        guest = None
        entry = {"name": name, "config": config.to_dict(), "host_cgroup": name}

        def stop() -> None:
            try:
                if guest is not None and guest.alive():
                    entry["host_figures_at_stop"] = _figures(cgroup)
                    entry["qemu_alive_at_stop"] = True
                elif guest is not None:
                    entry["qemu_alive_at_stop"] = False
                    entry["qemu_exit"] = guest.proc.returncode if guest.proc else None
            finally:
                if guest is not None:
                    guest.stop()
                cgroup.destroy()
                if config.drive and os.path.exists(config.drive.path):
                    os.unlink(config.drive.path)
                self._live.pop(name, None)
                self._evidence.append(entry)

        try:
            cgroup.create()
            cgroup.apply(config.boot)
            guest = DetachedGuest(self.vm, guest_job(argv, self.scratch), config.memory_mb,
                                  cpus=config.vcpus, extra_argv=config.qemu_extra(),
                                  cgroup_procs=tuple(cgroup.procs_files()))
            try:
                entry["boot_s"] = round(guest.start(), 3)
            except VMError as exc:
                raise CheckError(f"the guest did not start: {str(exc).splitlines()[0]}",
                                 {"console": guest.console()[-2000:]}) from None
            entry["qemu_pid"] = guest.pid
            if config.live is not None:
                cgroup.apply(config.live)
            with open(os.path.join(guest.run_dir, GO), "w"):
                pass
            stdout = os.path.join(guest.run_dir, "stdout")

            def output() -> str:
                try:
                    with open(stdout, errors="replace") as handle:
                        text = handle.read()
                except OSError:
                    return ""
                return text.split(STARTED + "\n", 1)[-1]

            box = Box(name, guest.pid, output, stop, self.scratch)
        except BaseException:
            stop()
            raise
        self._live[name] = box
        return box

    def take_evidence(self) -> dict:
        """What every result of the check just run carries: the accelerator and, per guest
        started, its configuration and its host cgroup's figures at stop."""
        vms, self._evidence = self._evidence, []
        return {**self.setup, "vms": vms} if vms else dict(self.setup)

    def cleanup(self) -> None:
        for box in list(self._live.values()):
            box.stop()
        from isoinspect.benches.targets.isoinspect import remove_cgroup_parents

        stem = f"{VERIFY_PREFIX}-{os.getpid()}-{self.name}-"
        root = "/sys/fs/cgroup"
        for hierarchy in [""] + _listdir(root):
            for child in _listdir(os.path.join(root, hierarchy)):
                if child.startswith(stem):
                    remove_cgroup_parents(root, child)


def _figures(cgroup) -> dict:
    """The host cgroup's figures (limits, usage, enforcement counters), pressure left out."""
    figures = cgroup.stats().to_dict()
    for section in figures.values():
        if isinstance(section, dict):
            section.pop("pressure", None)
    return figures


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
