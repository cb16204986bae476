"""Where a host's cgroup hierarchies are mounted: cgroup v2 only, v1 only, or hybrid.

The one reader of the cgroup mounts in /proc/self/mountinfo and of /proc/PID/cgroup, used by the
runtime (which driver, each controller's directory), the inspector (finding any runtime's
container), and doctor::

    layout = read_layout()          # Layout(mode="hybrid", root="/sys/fs/cgroup",
                                    #        v2="/sys/fs/cgroup/unified", v1={"cpu": ..., ...})
    layout.dir_of("memory", "/docker/<id>")   # that cgroup's directory in memory's hierarchy

This module is on the container start path: it imports only os and the Frozen record, and the
host's mounts are parsed once per process (they do not change under a running process).
Every function that reads a kernel file takes its path (``root``, ``mountinfo``) as an argument,
so tests point it at recorded fixtures and temporary trees.
"""

from __future__ import annotations

import errno
import os

from isoinspect.runtime.frozen import Frozen

from . import fs

ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"
UNIFIED = "unified"  # the cgroup2 hierarchy's key wherever hierarchies are keyed by controller

# v1 controllers (subsystems) a cgroup mount's super options may name.
V1_CONTROLLERS = frozenset(("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
                            "pids", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma",
                            "misc"))


class Mount(Frozen):
    """One cgroup or cgroup2 mount from mountinfo."""

    fstype: str                 # "cgroup" (v1) or "cgroup2"
    point: str                  # mount point, unescaped
    controllers: tuple = ()     # v1 controllers of the mount (named hierarchies left out)


class Layout(Frozen):
    """The host's cgroup hierarchies: ``mode`` "unified" (cgroup v2 only, at ``root``), "hybrid"
    (v1 controllers plus a controller-less cgroup2 mount, usually root/unified) or "legacy" (v1
    only). ``v1`` maps each v1 controller to its mount directory; combined mounts
    ("cpu,cpuacct") map several names to one directory."""

    mode: str
    root: str
    v2: str | None = None       # the cgroup2 mount (== root when unified)
    v1: dict = {}

    @property
    def version(self) -> int:
        """The controllers' cgroup version: 2 when unified, else 1."""
        return 2 if self.mode == "unified" else 1

    def mount_of(self, key: str) -> str | None:
        """The mount directory of hierarchy ``key`` (a v1 controller, or UNIFIED for cgroup2)."""
        return self.v2 if key == UNIFIED else self.v1.get(key)

    def dir_of(self, key: str, path: str) -> str | None:
        """Directory of cgroup ``path`` ("/docker/x" or "docker/x") in hierarchy ``key``."""
        mount = self.mount_of(key)
        return None if mount is None else join(mount, path)


def join(mount: str, path: str) -> str:
    """``mount`` + a cgroup path, which may start with "/" (as in /proc/PID/cgroup) or not."""
    path = path.strip("/")
    return mount + "/" + path if path else mount


def unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts of mountinfo ``text``, in order."""
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        tail = after.split()
        if not sep or not tail or tail[0] not in ("cgroup", "cgroup2"):
            continue
        fields = before.split()
        if len(fields) < 5:
            continue
        options = tail[2].split(",") if len(tail) > 2 and tail[0] == "cgroup" else ()
        mounts.append(Mount(fstype=tail[0], point=unescape(fields[4]),
                            controllers=tuple(o for o in options if o in V1_CONTROLLERS)))
    return mounts


_HOST_MOUNTS: list[list[Mount]] = []  # the parsed /proc/self/mountinfo, once per process


def read_mounts(mountinfo: str | None = MOUNTINFO) -> list[Mount]:
    """The cgroup mounts in file ``mountinfo`` ([] if it is None or missing); this process's
    own mountinfo is read once."""
    if mountinfo is None:
        return []
    if mountinfo == MOUNTINFO and _HOST_MOUNTS:
        return _HOST_MOUNTS[0]
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            mounts = parse_mounts(handle.read())
    except FileNotFoundError:
        return []
    if mountinfo == MOUNTINFO:
        _HOST_MOUNTS.append(mounts)
    return mounts


def read_layout(root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> Layout:
    """The layout of the hierarchies at or below ``root``.

    Decided from the cgroup mounts under ``root`` in ``mountinfo``; where there are none (a test
    tree, or mountinfo=None), from the files: root/cgroup.controllers means unified,
    root/unified/cgroup.controllers a hybrid host's cgroup2, and directories named after v1
    controllers holding cgroup.procs the v1 hierarchies. OSError(ENOENT) if there is no
    hierarchy at all.
    """
    root = os.path.normpath(root)
    mounts = [m for m in read_mounts(mountinfo) if _under(m.point, root)]
    if mounts:
        return _from_mounts(root, mounts)
    return _from_files(root)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _from_mounts(root: str, mounts: list[Mount]) -> Layout:
    v2 = [m.point for m in mounts if m.fstype == "cgroup2"]
    if root in v2:
        return Layout(mode="unified", root=root, v2=root, v1={})
    v1: dict[str, str] = {}
    for mount in mounts:
        for name in mount.controllers:
            v1.setdefault(name, mount.point)
    return Layout(mode="hybrid" if v2 else "legacy", root=root, v2=v2[0] if v2 else None, v1=v1)


def _from_files(root: str) -> Layout:
    if fs.has_file(root, "cgroup.controllers"):
        return Layout(mode="unified", root=root, v2=root, v1={})
    v1: dict[str, str] = {}
    try:
        with os.scandir(root) as scan:
            # Real directories before symlinks, so "cpu" -> "cpu,cpuacct" maps to the real one.
            entries = sorted(scan, key=lambda e: (e.is_symlink(), e.name))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if entry.is_dir() and fs.has_file(entry.path, "cgroup.procs"):
            for name in entry.name.split(","):
                if name in V1_CONTROLLERS:
                    v1.setdefault(name, entry.path)
    v2 = root + "/" + UNIFIED if fs.has_file(root + "/" + UNIFIED, "cgroup.controllers") else None
    if not v1 and not v2:
        raise OSError(errno.ENOENT, f"cgroup: no cgroup hierarchy found at {root}", root)
    return Layout(mode="hybrid" if v2 else "legacy", root=root, v2=v2, v1=v1)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup text -> {hierarchy key: cgroup path}: each v1 controller (and named
    hierarchy, "name=systemd") of a line, and the cgroup2 line ("0::/path") under UNIFIED."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[UNIFIED] = path
            continue
        for name in controllers.split(","):
            paths[name] = path
    return paths
