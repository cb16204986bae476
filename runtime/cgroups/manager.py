"""The cgroup manager interface and the factory that picks a driver for the host's layout.

``make_manager("isoinspect/<id>")`` returns a ``V1Manager`` on legacy and hybrid hosts and a
``V2Manager`` on unified (cgroup v2 only) hosts. Every function that touches a kernel path takes
``root`` (the cgroup mount directory) and ``mountinfo`` (a /proc/self/mountinfo path, or None to
judge from the files under ``root`` alone; see layout.read_layout), so tests can point them at
recorded fixtures and temp trees.
"""

from __future__ import annotations

import os

from . import fs
from .layout import MOUNTINFO, ROOT, read_layout

PREFIX = "isoinspect"
SIGKILL = 9  # the signal module is not imported on the start path

class CgroupManager:
    """One container's cgroup, in one (v2) or several (v1) hierarchies.

    Drivers implement ``dirs``, ``hierarchy_dirs``, ``create``, ``apply``, ``freeze``,
    ``thaw`` and ``frozen``; the rest works on top of them and may be specialised (v2 kills through cgroup.kill).
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

    def frozen(self) -> bool:
        """Whether the freezer holds the cgroup frozen (a paused container, for pause's callers
        to tell from a running one; False where there is no freezer)."""
        raise NotImplementedError

    def hierarchy_dirs(self) -> dict[str, str]:
        """This cgroup's directory per hierarchy key (a v1 controller, or layout.UNIFIED)."""
        raise NotImplementedError

    def freezer_file(self) -> str:
        """The file that says whether the cgroup is frozen (v1 freezer.state: FROZEN; v2
        cgroup.events: a "frozen 1" line), for callers that check it without a manager; ""
        where there is no freezer."""
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------------
    def stats(self):
        """Usage, limits and enforcement counters (figures.Figures, the vocabulary the inspector
        uses too); a controller that is not enabled has no section."""
        from .figures import read_figures  # dataclasses: not on the start path
        return read_figures(self.hierarchy_dirs(), self.version)

    def procs_files(self) -> list[str]:
        """cgroup.procs of every hierarchy: a child writes "0" to each to join before exec."""
        return [d + "/cgroup.procs" for d in self.dirs()]

    def self_join_files(self) -> list[str]:
        """What a new, still single-threaded first process writes "0" to, to enter this cgroup
        itself before exec. v2 moves whole processes only (cgroup.procs); the v1 driver gives
        its hierarchies' ``tasks`` files instead (V1Manager.self_join_files)."""
        return self.procs_files()

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

    def destroy(self) -> None:
        """Kill whatever is left in the cgroup, then remove it (the last step of every
        container's deletion: run's rm, the OCI delete, a failed create, gc)."""
        if self.exists():
            self.kill_all(SIGKILL)
            self.remove()

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


def is_frozen(path: str, root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> bool:
    """What ``make_manager(path, root).frozen()`` answers, loading only the freezer's reader:
    ``ps`` asks it of every running container and needs no driver (nor its controllers)."""
    found = read_layout(root, mountinfo)
    if found.mode == "unified":
        from .v2 import freezer as v2_freezer
        return v2_freezer.is_frozen(found.v2.rstrip("/") + "/" + check_path(path))
    mount = found.v1.get("freezer")
    if mount is None:
        return False
    from .v1 import freezer as v1_freezer
    return v1_freezer.is_frozen(mount + "/" + check_path(path))


def make_manager(path: str, root: str = ROOT, mountinfo: str | None = MOUNTINFO,
                 join_unified: bool = True) -> CgroupManager:
    """The driver for the host's layout (see layout.read_layout), for cgroup ``path``
    (e.g. "isoinspect/<id>").

    On hybrid hosts the v1 driver also creates the cgroup in the controller-less unified
    hierarchy (like runc) when ``join_unified``: its processes then get their own v2 cgroup id,
    which is how eBPF programs (bpf_get_current_cgroup_id) tell containers apart.
    """
    found = read_layout(root, mountinfo)
    if found.mode == "unified":
        from .v2.manager import V2Manager
        return V2Manager(path, found.v2)
    from .v1.manager import V1Manager
    return V1Manager(path, root, found.v1, found.v2 if join_unified else None)


def list_children(prefix: str = PREFIX, root: str = ROOT,
                  mountinfo: str | None = MOUNTINFO) -> list[str]:
    """Names of the cgroups under ``prefix`` in any hierarchy (container ids, for `gc`)."""
    check_path(prefix)
    found = read_layout(root, mountinfo)
    mounts = set(found.v1.values())
    if found.v2:
        mounts.add(found.v2)
    names: set[str] = set()
    for mount in mounts:
        names.update(fs.list_dirs(os.path.join(mount, prefix)))
    return sorted(names)
