"""Make a mount and every mount below it read-only (a bound /sys must not leave its submounts
- the host's cgroup hierarchies, tracefs, debugfs, bpffs - writable).

A read-only bind remount changes one mount only; the mounts under it keep their own flags. On
Linux >= 5.12 mount_setattr(2) with AT_RECURSIVE sets MOUNT_ATTR_RDONLY on the whole tree at
once (what runc's "rro" option does); older kernels get each mount point from
/proc/self/mountinfo remounted read-only, parents first.
"""

from __future__ import annotations

import errno
import os

from isoinspect.runtime.linux import syscalls as sc

MOUNTINFO = "/proc/self/mountinfo"


def make_tree_readonly(target: str) -> None:
    """``target`` (a mount point) and all mounts below it become read-only."""
    try:
        sc.mount_setattr(target, sc.MOUNT_ATTR_RDONLY)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
    remount_each_readonly(target)


def remount_each_readonly(target: str, mountinfo: str = MOUNTINFO) -> None:
    """The pre-5.12 way: a read-only bind remount of every mount point at or under ``target``."""
    from isoinspect.runtime.linux.paths_policy import _kept_flags
    for point in mount_points_under(target, mountinfo):
        kept = _kept_flags(os.statvfs(point).f_flag, sc)
        sc.mount(None, point, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | kept)


def mount_points_under(target: str, mountinfo: str = MOUNTINFO) -> list[str]:
    """Mount points at or below ``target`` in ``mountinfo``, parents before children."""
    from isoinspect.runtime.cgroups.layout import unescape  # mountinfo \ooo unescaping
    base = target.rstrip("/") or "/"
    points = set()
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 5:
                continue
            point = unescape(fields[4])
            if point == base or point.startswith(base + "/"):
                points.add(point)
    return sorted(points, key=lambda p: (p.count("/"), p))


def detach_tree(target: str, mountinfo: str = MOUNTINFO) -> None:
    """Lazily unmount every mount at or below ``target``, children first (stacked mounts
    included): what a container that shared the runtime's mount namespace left there."""
    for _ in range(16):  # a bound limit on stacked mounts at one point
        points = mount_points_under(target, mountinfo)
        if not points:
            return
        for point in reversed(points):
            try:
                sc.umount2(point, sc.MNT_DETACH)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOENT):
                    raise
