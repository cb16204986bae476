"""How a VM manager (libvirt) turns a container's limits into a guest and its host cgroup.

``plan(limits, ...)`` maps a bundle.Limits onto what ``virsh``/libvirt would configure:

* memory -> the guest's RAM (``-m``, libvirt ``<memory>``), never below the smallest RAM this
  guest kernel boots in (``floor_mb``; the evidence then says it was raised), plus a host
  memory limit around QEMU sized guest RAM + QEMU's own overhead (libvirt
  ``<memtune><hard_limit>``); without a memory limit the guest gets ``DEFAULT_MEMORY_MB`` and
  QEMU no host limit;
* cpus -> CFS quota/period on the host cgroup around the whole QEMU process (libvirt
  ``<cputune><global_quota>/<global_period>``: the domain's total; ``vcpu_quota`` would be the
  same budget split per vCPU thread);
* cpu_shares -> that cgroup's ``cpu.shares`` (libvirt ``<cputune><shares>``);
* cpuset_cpus -> as many vCPUs as CPUs in the set, and QEMU's threads (vCPUs and emulator)
  confined to the set by the cgroup's cpuset (libvirt ``<vcpupin>`` + ``<emulatorpin>``);
  without a cpuset the guest gets one vCPU per host CPU, so a quota, not the vCPU count, limits;
* device read/write bps -> a virtual disk throttled by QEMU's block layer
  (``-drive ...,throttling.bps-read/bps-write``: what libvirt's ``<iotune>`` sets), backed by
  a raw image on the device's file system;
* pids_limit and memory_swap have no VM equivalent (``UNMAPPED`` says why).

Limits a manager can change on a running domain (quota, shares, pinning: ``virsh schedinfo
--live``, ``virsh vcpupin``) are in ``live``: they are written once the guest is up and before
its workload runs, so a TCG boot (seconds of CPU) is not stretched by a 0.2-CPU quota. The RAM
size, the host memory limit and the disk throttle are set when QEMU starts (``boot``/``drive``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from isoinspect.benches.bundle import Limits
from isoinspect.runtime.cgroups.resources import (CPU_PERIOD_DEFAULT, Resources, cpus_to_quota,
                                                  parse_cpu_list)

MIB = 1 << 20
DEFAULT_MEMORY_MB = 256
#: QEMU's own memory beside guest RAM: the TCG translation cache, device state, libraries
#: (measured here: 285 MiB resident for a booted 96 MiB TCG guest)
OVERHEAD_MB = {"tcg": 512, "kvm": 256}
UNMAPPED = {
    "pids_limit": "a VM has no host pids limit for its guest's processes: they are the guest "
                  "kernel's tasks, not host processes (a pids.max around QEMU would count only "
                  "QEMU's own threads)",
    "memory_swap": "memory+swap has no VM equivalent: the guest swaps to a disk of its own, "
                   "and the host's swap of guest RAM is not a limit the guest sees",
}


@dataclass(frozen=True)
class DriveThrottle:
    """A raw virtual disk throttled in QEMU's block layer (libvirt ``<iotune>``)."""

    path: str
    bps_read: int | None = None
    bps_write: int | None = None

    def argv(self) -> list[str]:
        options = [f"file={self.path}", "if=virtio", "format=raw", "cache=none", "aio=threads"]
        if self.bps_read:
            options.append(f"throttling.bps-read={self.bps_read}")
        if self.bps_write:
            options.append(f"throttling.bps-write={self.bps_write}")
        return ["-drive", ",".join(options)]

    def to_dict(self) -> dict:
        return {"bps_read": self.bps_read, "bps_write": self.bps_write,
                "qemu": self.argv()[1]}


@dataclass(frozen=True)
class VMPlan:
    """One guest's configuration: QEMU's size, its host cgroup's limits, its disk."""

    memory_mb: int                     # -m
    vcpus: int                         # -smp
    boot: Resources                    # host cgroup limits written before QEMU starts
    live: Resources | None             # written once the guest is up, before the workload
    drive: DriveThrottle | None = None
    requested_memory: int | None = None
    memory_note: str = ""              # why -m is not the requested limit ('' when it is)

    @property
    def hard_limit(self) -> int | None:
        return self.boot.memory

    def qemu_extra(self) -> list[str]:
        return self.drive.argv() if self.drive else []

    def to_dict(self) -> dict:
        return {"guest_memory_mb": self.memory_mb, "vcpus": self.vcpus,
                "requested_memory": self.requested_memory, "memory_note": self.memory_note,
                "host_cgroup_at_start": _set_fields(self.boot),
                "host_cgroup_live": _set_fields(self.live) if self.live else {},
                "drive": self.drive.to_dict() if self.drive else None}


def _set_fields(resources: Resources) -> dict:
    fields = {k: v for k, v in resources.to_dict().items() if v is not None}
    if not resources.cpu_quota_us:
        fields.pop("cpu_period_us", None)
    return fields


def plan(limits: Limits, host_cpus: int, floor_mb: int, accel: str = "tcg",
         disk: str | None = None) -> VMPlan:
    """The guest and host cgroup a VM manager would configure for ``limits``.

    ``floor_mb``: the smallest guest RAM this kernel boots in; ``disk``: the raw image to attach
    when an I/O limit is asked for (ValueError without one)."""
    requested = limits.memory
    note = ""
    if requested:
        memory_mb = max(math.ceil(requested / MIB), floor_mb)
        if memory_mb * MIB > requested:
            note = (f"guest RAM raised from the {requested / MIB:g} MiB limit to {memory_mb} "
                    f"MiB, the smallest this guest kernel boots in")
        boot = Resources(memory=(memory_mb + OVERHEAD_MB.get(accel, OVERHEAD_MB["tcg"])) * MIB)
    else:
        memory_mb = max(DEFAULT_MEMORY_MB, floor_mb)
        boot = Resources()
    vcpus = len(parse_cpu_list(limits.cpuset_cpus)) if limits.cpuset_cpus else host_cpus
    live = None
    if limits.cpus is not None or limits.cpu_shares is not None or limits.cpuset_cpus:
        live = Resources(
            cpu_quota_us=None if limits.cpus is None else cpus_to_quota(limits.cpus),
            cpu_period_us=CPU_PERIOD_DEFAULT, cpu_shares=limits.cpu_shares,
            cpuset_cpus=limits.cpuset_cpus)
    drive = None
    read = max((rate for _dev, rate in limits.device_read_bps), default=None)
    write = max((rate for _dev, rate in limits.device_write_bps), default=None)
    if read or write:
        if not disk:
            raise ValueError("an I/O limit needs a disk image for the guest")
        drive = DriveThrottle(disk, read, write)
    return VMPlan(memory_mb, vcpus, boot, live, drive, requested, note)


def unmapped(limits: Limits) -> dict[str, str]:
    """The limits asked for that a VM cannot express: field -> why."""
    return {name: why for name, why in UNMAPPED.items() if getattr(limits, name) not in (None, 0)}
