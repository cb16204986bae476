"""Docker's masked and read-only paths under /proc and /sys, and the mounts that apply them.

Run inside the container's own mount namespace (with private propagation, or the mounts reach
the host), after /proc and /sys are mounted and before anything refuses mount(2) (seccomp,
dropped CAP_SYS_ADMIN). ``root_prefix`` is the container's root directory before pivot_root,
or "" after it.

The default paths all lie inside the procfs and sysfs the runtime mounted itself, so no symlink
from the image is on their way. Paths from elsewhere (an OCI config) should be applied after
pivot_root, where an absolute symlink cannot point outside the container.
"""

from __future__ import annotations

import errno
import os

# The one list of default masked and read-only paths (our runtime, the runc bundles of the
# benches, the inspector's scorecard). moby oci/defaults.go (DefaultLinuxSpec) of current Docker
# and `runc spec` of current runc; Docker 20.10 and runc 1.1 (this host's) lack the last entry,
# /sys/devices/virtual/powercap (RAPL energy counters: the PLATYPUS side channel).
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_DEV_NULL_RDEV = os.makedev(1, 3)


def _syscalls():
    from isoinspect.runtime.linux import syscalls
    return syscalls


def _join(root_prefix: str, path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"masked or read-only path must be absolute: {path!r}")
    return root_prefix.rstrip("/") + path


def _check_dev_null() -> None:
    # What gets bound over masked files must be the real null device, not a file or a link
    # someone put at /dev/null (runc CVE-2025-31133).
    info = os.stat("/dev/null")
    if (info.st_mode & 0o170000) != 0o020000 or info.st_rdev != _DEV_NULL_RDEV:
        raise OSError(errno.EPERM, "/dev/null is not the null character device", "/dev/null")


def mask_paths(root_prefix: str, paths: list[str] | tuple[str, ...] = MASKED_PATHS) -> None:
    """Hide each path: /dev/null bound over a file, an empty read-only tmpfs over a directory.

    Paths that do not exist are skipped. /dev/null is the current root's (the host's before
    pivot_root), checked to be the null device first.
    """
    if not paths:
        return
    sc = _syscalls()
    _check_dev_null()
    for path in paths:
        target = _join(root_prefix, path)
        try:
            sc.mount("/dev/null", target, None, sc.MS_BIND)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            if exc.errno != errno.ENOTDIR:  # a directory cannot take a file bind mount
                raise
            sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY)


def _kept_flags(st_flags: int, sc) -> int:
    """MS_* flags of a mount (from statvfs f_flag) that a read-only remount must repeat.

    In a user namespace the kernel locks nosuid/nodev/noexec and the atime mode of mounts
    inherited from the parent namespace; a remount that would clear one fails with EPERM.
    """
    flags = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV),
                             (os.ST_NOEXEC, sc.MS_NOEXEC), (os.ST_NOATIME, sc.MS_NOATIME),
                             (os.ST_NODIRATIME, sc.MS_NODIRATIME),
                             (os.ST_RELATIME, sc.MS_RELATIME)):
        if st_flags & st_flag:
            flags |= ms_flag
    return flags


def readonly_paths(root_prefix: str,
                   paths: list[str] | tuple[str, ...] = READONLY_PATHS) -> None:
    """Make each path read-only: bind it onto itself, then remount that bind read-only.

    Paths that do not exist are skipped. Mounts below a path (e.g. binfmt_misc under
    /proc/sys/fs) are bound along but stay writable, as with runc.
    """
    if not paths:
        return
    sc = _syscalls()
    for path in paths:
        target = _join(root_prefix, path)
        try:
            sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        flags = _kept_flags(os.statvfs(target).f_flag, sc)
        sc.mount(target, target, None,
                 flags | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC)
