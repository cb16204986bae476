"""The cgroup manager interface, setup detection and the factory that picks a driver.

``make_manager("isoinspect/<id>")`` returns a ``V1Manager`` on legacy and hybrid hosts and a
``V2Manager`` on unified (cgroup v2 only) hosts. Every function that touches a kernel path takes
``root`` (the cgroup mount directory) and ``mountinfo`` (a /proc/self/mountinfo path, or None to
judge from the files under ``root`` alone), so tests can point them at recorded fixtures and temp
trees.
"""

from __future__ import annotations

import os

from . import fs

ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"
PREFIX = "isoinspect"
SIGKILL = 9  # the signal module is not imported on the start path

# v1 controllers the v1 driver uses, in the order they are created and applied.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
_V1_KNOWN = frozenset(V1_CONTROLLERS + ("net_cls", "net_prio", "perf_event", "hugetlb", "rdma",
                                        "misc"))


class CgroupManager:
    """One container's cgroup, in one (v2) or several (v1) hierarchies.

    Drivers implement ``dirs``, ``create``, ``apply``, ``freeze``, ``thaw`` and ``stats``; the rest
    works on top of them and may be specialised (v2 kills through cgroup.kill).
    """

    version = 0

    def __init__(self, path: str, root: str = ROOT) -> None:
        self.path = check_path(path)
        self.root = root

    # ---- to implement -------------------------------------------------------------------------
    def dirs(self) -> list[str]:
        """The cgroup directories of this container, one per distinct hierarchy."""
        raise NotImplementedError

    def create(self) -> None:
        """Create the cgroup (and our parent dirs) in every hierarchy; existing dirs are kept."""
        raise NotImplementedError

    def apply(self, resources) -> list[str]:
        """Validate then write the set fields of ``resources``; return warnings about limits that
        cannot be enforced here (e.g. swap without swap accounting)."""
        raise NotImplementedError

    def freeze(self, timeout: float = 2.0) -> None:
        raise NotImplementedError

    def thaw(self, timeout: float = 2.0) -> None:
        raise NotImplementedError

    def stats(self) -> dict:
        """Usage and enforcement counters in one shape for both drivers: sections memory, cpu,
        pids, io, cpuset, freezer, devices; a controller that is not enabled is left out."""
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------------
    def procs_files(self) -> list[str]:
        """cgroup.procs of every hierarchy: a child writes "0" to each to join before exec."""
        return [d + "/cgroup.procs" for d in self.dirs()]

    def add_task(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup in every hierarchy."""
        for directory in self.dirs():
            fs.write_value(directory, "cgroup.procs", int(pid))

    def pids(self) -> list[int]:
        """Processes in the cgroup (union over hierarchies), sorted."""
        found: set[int] = set()
        for directory in self.dirs():
            found.update(fs.read_pids(directory) or ())
        return sorted(found)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def kill_all(self, sig: int = SIGKILL, timeout: float = 2.0) -> int:
        """Send ``sig`` to every process in the cgroup; return how many were signalled.

        The cgroup is frozen first so nothing forks between listing and signalling (then thawed
        so the signals are delivered). With SIGKILL, wait up to ``timeout`` for it to empty;
        where there is no freezer, kill again until it is empty.
        """
        if not self.exists():
            return 0
        frozen = False
        if self._can_freeze():
            frozen = True
            try:
                self.freeze(timeout)
            except TimeoutError:
                pass  # a task stuck in FREEZING: signal anyway, then thaw
            except OSError:
                frozen = False  # no freezer cgroup for this path (e.g. a partial orphan)
        try:
            victims = self._signal(sig)
        finally:
            if frozen:
                try:
                    self.thaw(timeout)
                except OSError:
                    pass
        if sig == SIGKILL and timeout:
            def empty() -> bool:
                return not self._signal(sig)
            fs.wait_for(empty, timeout, f"{self.path} to empty after SIGKILL")
        return len(victims)

    def remove(self, timeout: float = 1.0) -> None:
        """rmdir the cgroup in every hierarchy (retrying on EBUSY); no error if already gone."""
        for directory in reversed(self.dirs()):
            fs.remove_dir(directory, timeout)

    def cgroup_id(self) -> int | None:
        """The v2 cgroup id (inode of the unified-hierarchy dir), what bpf_get_current_cgroup_id()
        returns for the container's processes; None if there is no unified dir."""
        directory = self._unified_dir()
        try:
            return os.stat(directory).st_ino if directory else None
        except FileNotFoundError:
            return None

    def _unified_dir(self) -> str | None:
        return None

    def _can_freeze(self) -> bool:
        return False

    def _signal(self, sig: int) -> list[int]:
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pids

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, root={self.root!r})"


def check_path(path: str) -> str:
    """A cgroup path relative to each hierarchy's root, e.g. "isoinspect/<id>"."""
    parts = path.split("/") if isinstance(path, str) else [""]
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"cgroup: path must be relative like 'isoinspect/<id>', got {path!r}")
    return path


# ---- mounts and setup detection -----------------------------------------------------------------

def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
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


def cgroup_mounts(mountinfo: str | None = MOUNTINFO) -> list[tuple[str, str, list[str]]]:
    """(fstype, mount point, controllers) of each cgroup/cgroup2 mount in a mountinfo file.

    Controllers are the v1 subsystems of the mount's super options (e.g. ["cpu", "cpuacct"]) and
    named hierarchies as "name=systemd"; [] for cgroup2. [] if ``mountinfo`` is None or missing.
    """
    if mountinfo is None:
        return []
    if mountinfo == MOUNTINFO and _HOST_MOUNTS:
        return _HOST_MOUNTS[0]
    mounts = _parse_cgroup_mounts(mountinfo)
    if mountinfo == MOUNTINFO:
        _HOST_MOUNTS.append(mounts)  # cgroup mounts do not change under a running process
    return mounts


_HOST_MOUNTS: list[list[tuple[str, str, list[str]]]] = []


def _parse_cgroup_mounts(mountinfo: str) -> list[tuple[str, str, list[str]]]:
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    mounts = []
    for line in lines:
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        tail = after.split()
        if not tail or tail[0] not in ("cgroup", "cgroup2"):
            continue
        fields = before.split()
        if len(fields) < 5:
            continue
        options = tail[2].split(",") if len(tail) > 2 else []
        controllers = [o for o in options if o in _V1_KNOWN or o.startswith("name=")]
        mounts.append((tail[0], _unescape(fields[4]), controllers if tail[0] == "cgroup" else []))
    return mounts


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def detect_setup(root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> str:
    """"unified" (cgroup2 at root), "hybrid" (v1 controllers plus a cgroup2 mount, usually
    root/unified) or "legacy" (v1 only).

    Decided from the cgroup mounts at or below ``root`` in ``mountinfo``; where there are none
    (a test tree, or mountinfo=None) from the files: root/cgroup.controllers means unified,
    root/unified/cgroup.controllers hybrid, a subdirectory holding cgroup.procs legacy.
    """
    root = os.path.normpath(root)
    mounts = [m for m in cgroup_mounts(mountinfo) if _under(m[1], root)]
    if mounts:
        if any(kind == "cgroup2" and point == root for kind, point, _ in mounts):
            return "unified"
        has_v1 = any(kind == "cgroup" for kind, _, _ in mounts)
        has_v2 = any(kind == "cgroup2" for kind, _, _ in mounts)
        if has_v1:
            return "hybrid" if has_v2 else "legacy"
    if fs.has_file(root, "cgroup.controllers"):
        return "unified"
    if fs.has_file(root + "/unified", "cgroup.controllers"):
        return "hybrid"
    if any(fs.has_file(root + "/" + name, "cgroup.procs") for name in fs.list_dirs(root)):
        return "legacy"
    if any(kind == "cgroup2" for kind, _, _ in mounts):
        return "unified"
    raise OSError(2, f"cgroup: no cgroup hierarchy found at {root}", root)


def v1_hierarchies(root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> dict[str, str]:
    """Map each v1 controller (and "name=..." hierarchy) to its mount directory under ``root``.

    Combined mounts map several controllers to one directory: with "cpu,cpuacct" mounted at
    root/cpu,cpuacct (and cpu, cpuacct symlinks to it) both names map to root/cpu,cpuacct. Without
    mountinfo entries under ``root``, the directory names are read instead (split on ",").
    """
    root = os.path.normpath(root)
    found: dict[str, str] = {}
    for kind, point, controllers in cgroup_mounts(mountinfo):
        if kind == "cgroup" and _under(point, root):
            for name in controllers:
                found.setdefault(name, point)
    if found:
        return found
    try:
        with os.scandir(root) as scan:
            # Real directories before symlinks, so "cpu" -> "cpu,cpuacct" maps to the real one.
            entries = sorted(scan, key=lambda e: (e.is_symlink(), e.name))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.is_dir() or not fs.has_file(entry.path, "cgroup.procs"):
            continue
        for name in entry.name.split(","):
            if name in _V1_KNOWN:
                found.setdefault(name, entry.path)
    return found


def unified_mount(root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> str | None:
    """The cgroup2 mount of a hybrid host (root/unified), or None."""
    root = os.path.normpath(root)
    mounts = [m for m in cgroup_mounts(mountinfo) if _under(m[1], root)]
    for kind, point, _ in mounts:
        if kind == "cgroup2" and point != root:
            return point
    if mounts:
        return None
    candidate = root + "/unified"
    return candidate if fs.has_file(candidate, "cgroup.controllers") else None


def make_manager(path: str, root: str = ROOT, mountinfo: str | None = MOUNTINFO,
                 join_unified: bool = True) -> CgroupManager:
    """The driver for this host's setup, for cgroup ``path`` (e.g. "isoinspect/<id>").

    On hybrid hosts the v1 driver also creates the cgroup in the controller-less unified
    hierarchy (like runc) when ``join_unified``: its processes then get their own v2 cgroup id,
    which is how eBPF programs (bpf_get_current_cgroup_id) tell containers apart.
    """
    setup = detect_setup(root, mountinfo)
    if setup == "unified":
        from .v2.manager import V2Manager
        return V2Manager(path, root)
    from .v1.manager import V1Manager
    unified = unified_mount(root, mountinfo) if setup == "hybrid" and join_unified else None
    return V1Manager(path, root, v1_hierarchies(root, mountinfo), unified)


def list_children(prefix: str = PREFIX, root: str = ROOT,
                  mountinfo: str | None = MOUNTINFO) -> list[str]:
    """Names of the cgroups under ``prefix`` in any hierarchy (container ids, for `gc`)."""
    check_path(prefix)
    setup = detect_setup(root, mountinfo)
    if setup == "unified":
        return fs.list_dirs(os.path.join(root, prefix))
    mounts = set(v1_hierarchies(root, mountinfo).values())
    unified = unified_mount(root, mountinfo)
    if unified:
        mounts.add(unified)
    names: set[str] = set()
    for mount in mounts:
        names.update(fs.list_dirs(os.path.join(mount, prefix)))
    return sorted(names)
