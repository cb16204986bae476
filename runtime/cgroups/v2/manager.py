"""cgroup v2 driver (unified hierarchy): one directory, controllers enabled top-down.

A v2 controller's files appear in a cgroup only once its parent lists the controller in
cgroup.subtree_control, so ``create`` writes "+memory +cpu ..." (only the ones the parent has in
cgroup.controllers and has not enabled yet) at the root and at each of our parent directories.
Controllers are modules with ``needed(res)`` and ``apply(dir, res) -> warnings``.
Device rules have no file on v2: the devices module attaches an eBPF program to the directory
(BPF_CGROUP_DEVICE), during ``apply``, so before the container's process joins the cgroup.
"""

from __future__ import annotations

import errno

from .. import fs
from ..layout import ROOT, UNIFIED
from ..manager import SIGKILL, CgroupManager
from . import cpu, cpuset, devices, freezer, io, memory, pids

CONTROLLERS = (cpu, cpuset, memory, io, pids, freezer, devices)
# Enabled in subtree_control, in this order (cpuset before cpu as systemd does).
ENABLE = ("cpuset", "cpu", "io", "memory", "pids")
_FILE_BACKED = frozenset(ENABLE)  # modules whose files need the controller enabled


class V2Manager(CgroupManager):
    version = 2

    def __init__(self, path: str, root: str = ROOT) -> None:
        super().__init__(path, root)
        self.dir = root.rstrip("/") + "/" + self.path

    def dirs(self) -> list[str]:
        return [self.dir]

    def create(self) -> None:
        parent = self.root.rstrip("/")
        for part in self.path.split("/"):
            enable_controllers(parent)
            parent = parent + "/" + part
            fs.make_dir(parent)

    def controllers(self) -> list[str]:
        """Controllers available in this cgroup (its cgroup.controllers)."""
        return (fs.read_value(self.dir, "cgroup.controllers") or "").split()

    def apply(self, resources) -> list[str]:
        resources.validate()
        wanted = [c for c in CONTROLLERS if c.needed(resources)]
        if any(c.NAME in _FILE_BACKED for c in wanted):
            available = self.controllers()
            missing = [c.NAME for c in wanted if c.NAME in _FILE_BACKED and c.NAME not in available]
            if missing:
                raise OSError(errno.ENOENT, f"cgroup v2: the requested limits need controller(s) "
                              f"{', '.join(missing)}, not enabled in {self.dir} "
                              f"(cgroup.controllers: {' '.join(available) or 'none'})", self.dir)
        warnings: list[str] = []
        for controller in wanted:
            warnings += controller.apply(self.dir, resources)
        return warnings

    def freeze(self, timeout: float = 2.0) -> None:
        freezer.freeze(self.dir, timeout)

    def thaw(self, timeout: float = 2.0) -> None:
        freezer.thaw(self.dir, timeout)

    def frozen(self) -> bool:
        return freezer.is_frozen(self.dir)

    def _can_freeze(self) -> bool:
        return fs.has_file(self.dir, "cgroup.freeze")

    def freezer_file(self) -> str:
        return self.dir + "/cgroup.events"

    def kill_all(self, sig: int = SIGKILL, timeout: float = 2.0) -> int:
        """SIGKILL through cgroup.kill (Linux 5.14+: atomic, forks included); other signals, or
        older kernels, freeze and signal each process (CgroupManager.kill_all)."""
        if sig != SIGKILL or not fs.has_file(self.dir, "cgroup.kill"):
            return super().kill_all(sig, timeout)
        victims = self.pids()
        fs.write_value(self.dir, "cgroup.kill", 1)
        if timeout:
            fs.wait_for(self._empty, timeout, f"{self.dir} to empty after cgroup.kill")
        return len(victims)

    def _empty(self) -> bool:
        return (fs.read_keyed(self.dir, "cgroup.events") or {}).get("populated") != 1

    def hierarchy_dirs(self) -> dict[str, str]:
        return {UNIFIED: self.dir}

    def _unified_dir(self) -> str:
        return self.dir


def enable_controllers(directory: str, wanted: tuple[str, ...] = ENABLE) -> list[str]:
    """Enable in ``directory``'s cgroup.subtree_control each of ``wanted`` that it offers (in
    cgroup.controllers) and has not enabled yet; return the ones written."""
    available = (fs.read_value(directory, "cgroup.controllers") or "").split()
    enabled = (fs.read_value(directory, "cgroup.subtree_control") or "").split()
    todo = [name for name in wanted if name in available and name not in enabled]
    if todo:
        try:
            fs.write_value(directory, "cgroup.subtree_control", " ".join("+" + n for n in todo))
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            raise OSError(err.errno, f"{err.strerror}: a non-root cgroup with processes of its "
                          "own cannot enable controllers for children (no internal processes "
                          "rule); move them to a leaf cgroup", err.filename) from None
    return todo
