"""The one OCI bundle builder for the peers (runc, crun, runsc), used by bench, verify and doctor.

From a root file system and a typed :class:`Workload` (argv, env, limits, network none/host,
cgroup path, bind mounts) it writes ``config.json`` with the defaults Docker gives runc (moby
oci/defaults.go and the daemon's additions), taken from the runtime's own tables where it has
them, so every peer runs under the configuration ``isoinspect run`` gives its containers:

* Docker's 14 capabilities (bounding, effective, permitted; no inheritable set since
  CVE-2022-24769), noNewPrivileges off, uid 0, Docker's default rlimits;
* /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys (read-only) and its cgroup mount;
* mount, uts, ipc, pid and (unless ``network="host"``) network namespaces; a cgroup namespace
  where Docker makes one (cgroup v2 hosts);
* Docker's masked and read-only paths, the device allow-list (deny all, then Docker's set);
* seccomp: the runtime's default profile (runtime/linux/seccomp_default.json).

Left out, as in a bare ``runc run``: Docker's /etc/hosts, /etc/hostname and /etc/resolv.conf
bind mounts and its network sysctls.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass, field

OCI_VERSION = "1.0.2"
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
HOSTNAME = "isoinspect"
BUSYBOX_APPLETS = ("sh", "true", "echo")

# Every peer's bundle carries the default seccomp profile (linux.seccomp), the same data
# isoinspect loads for its own containers and Docker gives runc: all run under one policy.
SECCOMP = True

_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]
MOUNTS = (
    {"destination": "/proc", "type": "proc", "source": "proc", "options": _NOSUID_NOEXEC_NODEV},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": [*_NOSUID_NOEXEC_NODEV, "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", *_NOSUID_NOEXEC_NODEV]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": _NOSUID_NOEXEC_NODEV},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]},
)


@dataclass(frozen=True)
class Limits:
    """What a caller asks a runtime to enforce (None: leave out); devices by path."""

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    device_read_bps: list[tuple[str, int]] = field(default_factory=list)
    device_write_bps: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Bind:
    """A host directory bind-mounted read-write into the container."""

    source: str
    destination: str


@dataclass(frozen=True)
class Workload:
    """What to run in a peer's container, and under which limits."""

    argv: tuple[str, ...]
    env: tuple[str, ...] = DEFAULT_ENV
    cwd: str = "/"
    limits: Limits = Limits()
    network: str = "none"          # "none": a network namespace of its own; "host": none
    cgroups_path: str | None = None
    binds: tuple[Bind, ...] = ()
    hostname: str = HOSTNAME
    readonly_root: bool = False
    uid: int = 0                   # process.user: an image's User, resolved in its root
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


def device_numbers(path: str) -> tuple[int, int]:
    rdev = os.stat(path).st_rdev
    return os.major(rdev), os.minor(rdev)


def oci_resources(limits: Limits) -> dict:
    """``linux.resources`` of an OCI config for ``limits`` (devices excluded)."""
    res: dict = {}
    memory = {k: v for k, v in (("limit", limits.memory), ("swap", limits.memory_swap))
              if v is not None}
    if memory:
        res["memory"] = memory
    cpu: dict = {}
    if limits.cpus is not None:
        from isoinspect.runtime.cgroups.resources import CPU_PERIOD_DEFAULT, cpus_to_quota

        cpu.update(quota=cpus_to_quota(limits.cpus), period=CPU_PERIOD_DEFAULT)
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


def device_rules() -> list[dict]:
    """Docker's device allow-list (the runtime's DEFAULT_DEVICE_RULES) in OCI form."""
    from isoinspect.runtime.cgroups.resources import DEFAULT_DEVICE_RULES

    rules = []
    for kind, major, minor, access, allow in DEFAULT_DEVICE_RULES:
        rule: dict = {"allow": allow, "access": access}
        if kind != "a":
            rule["type"] = kind
            if major is not None:
                rule["major"] = major
            if minor is not None:
                rule["minor"] = minor
        rules.append(rule)
    return rules


@functools.lru_cache(maxsize=None)
def _host_rlimits() -> tuple:
    from isoinspect.runtime.linux import rlimits

    return tuple(rlimits.default_rlimits())


def default_rlimits() -> list[dict]:
    """Docker's default rlimits as the runtime applies them here (capped to the host)."""
    return [{"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}
            for name, soft, hard in _host_rlimits()]


@functools.lru_cache(maxsize=None)
def host_is_unified(cgroup_root: str = "/sys/fs/cgroup") -> bool:
    """cgroup v2 only: Docker gives containers a private cgroup namespace there."""
    from isoinspect.runtime.cgroups.layout import read_layout

    return read_layout(cgroup_root).mode == "unified"


def config(rootfs: str, workload: Workload, cgroupns: bool | None = None) -> dict:
    """The OCI config (``config.json``) running ``workload`` on ``rootfs``."""
    from isoinspect.runtime.linux import capabilities, paths_policy

    caps = [f"CAP_{name}" for name in capabilities.DEFAULT_CAPABILITIES]
    kinds = ["mount", "uts", "ipc", "pid"]
    if workload.network != "host":
        kinds.append("network")
    if host_is_unified() if cgroupns is None else cgroupns:
        kinds.append("cgroup")
    linux: dict = {
        "namespaces": [{"type": kind} for kind in kinds],
        "resources": {"devices": device_rules(), **oci_resources(workload.limits)},
        "maskedPaths": list(paths_policy.MASKED_PATHS),
        "readonlyPaths": list(paths_policy.READONLY_PATHS),
    }
    if workload.cgroups_path:
        linux["cgroupsPath"] = workload.cgroups_path
    if SECCOMP:
        from isoinspect.runtime.linux.seccomp_profile import default_profile
        linux["seccomp"] = default_profile()
    mounts = [dict(mount, options=list(mount["options"])) for mount in MOUNTS]
    mounts += [{"destination": bind.destination, "type": "bind", "source": bind.source,
                "options": ["rbind", "rw"]} for bind in workload.binds]
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False, "user": process_user(workload), "args": list(workload.argv),
            "env": list(workload.env), "cwd": workload.cwd,
            "capabilities": {kind: list(caps) for kind in ("bounding", "effective",
                                                           "permitted")},
            "rlimits": default_rlimits(),
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": workload.readonly_root},
        "hostname": workload.hostname,
        "mounts": mounts,
        "linux": linux,
    }


def process_user(workload: Workload) -> dict:
    """process.user: additionalGids only when there are some (runc's own specs omit it)."""
    user: dict = {"uid": workload.uid, "gid": workload.gid}
    if workload.additional_gids:
        user["additionalGids"] = list(workload.additional_gids)
    return user


def write(directory: str, rootfs: str, workload: Workload, cgroupns: bool | None = None) -> str:
    """Make ``directory`` a bundle running ``workload`` on ``rootfs``; its path."""
    from isoinspect.runtime.fsutil import write_atomic

    os.makedirs(directory, exist_ok=True)
    data = json.dumps(config(rootfs, workload, cgroupns), indent=1).encode()
    write_atomic(os.path.join(directory, "config.json"), data)
    return directory


def busybox_rootfs(directory: str, busybox: str = "/bin/busybox",
                   applets: tuple[str, ...] = BUSYBOX_APPLETS) -> str:
    """A root file system holding only a static busybox and some applets; its path."""
    for sub in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    shutil.copy2(busybox, os.path.join(directory, "bin", "busybox"))
    for applet in applets:
        os.symlink("busybox", os.path.join(directory, "bin", applet))
    return directory
