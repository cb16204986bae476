"""cgroup v1 driver (legacy and hybrid hosts): one directory per controller hierarchy.

Controllers are modules (memory, cpu, cpuacct, cpuset, pids, devices, freezer, blkio) that each
expose ``needed(res)`` and ``apply(dir, res) -> warnings``; the manager only iterates (figures
are read by figures.read_figures). Combined mounts ("cpu,cpuacct") share one directory, created
and joined once.
"""

from __future__ import annotations

import errno

from .. import fs
from ..layout import ROOT, UNIFIED, read_layout
from ..manager import CgroupManager

# The controllers, in the order limits are applied. Their modules are imported by the steps
# that use them (create, apply, freeze): rm and the monitor's teardown only remove
# directories, ~1 ms of imports less.
CONTROLLER_NAMES = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def controllers() -> tuple:
    """The controller modules, in CONTROLLER_NAMES's order."""
    from . import blkio, cpu, cpuacct, cpuset, devices, freezer, memory, pids

    return (cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids)


class V1Manager(CgroupManager):
    """``hierarchies`` maps controller name -> mount dir (the host's Layout.v1 by default);
    ``unified`` is the controller-less cgroup2 mount of a hybrid host, joined too (for a
    per-container v2 cgroup id) when given."""

    version = 1

    def __init__(self, path: str, root: str = ROOT, hierarchies: dict[str, str] | None = None,
                 unified: str | None = None) -> None:
        super().__init__(path, root)
        if hierarchies is None:
            hierarchies = read_layout(root).v1
        self.mounts = {name: hierarchies[name] for name in CONTROLLER_NAMES
                       if name in hierarchies}
        self.unified = unified
        self._by_controller = {name: mount + "/" + self.path
                               for name, mount in self.mounts.items()}
        unique: list[str] = []
        for directory in self._by_controller.values():
            if directory not in unique:
                unique.append(directory)
        if unified:
            unique.append(unified + "/" + self.path)
        self._dirs = unique

    def dirs(self) -> list[str]:
        return list(self._dirs)

    def self_join_files(self) -> list[str]:
        """``tasks`` in every v1 hierarchy, cgroup.procs in the unified one. Writing "0" to
        ``tasks`` moves only the writing thread, which a recent kernel does without the global
        threadgroup lock whose writer waits for an RCU grace period (the kernel's "optimize
        single thread migration"; a kernel without it only pays that wait, as before): on this
        host's 6.18, 0.1 ms against 7.2 ms for a first cgroup.procs write. The writer has no
        other thread, so that is the whole process. The unified directory is given to clone3
        instead where it can be (launch.clone_target)."""
        unified = self.unified + "/" + self.path if self.unified else None
        return [d + ("/cgroup.procs" if d == unified else "/tasks") for d in self._dirs]

    def controller_dir(self, name: str) -> str | None:
        """This cgroup's directory in controller ``name``'s hierarchy (None if not mounted)."""
        return self._by_controller.get(name)

    def create(self) -> None:
        cpuset_dir = self._by_controller.get("cpuset")
        for directory in self._dirs:
            if directory == cpuset_dir:
                from . import cpuset

                cpuset.prepare(self.mounts["cpuset"], self.path)
            else:
                fs.make_dir(directory)

    def apply(self, resources) -> list[str]:
        resources.validate()
        missing = [c.NAME for c in controllers()
                   if c.needed(resources) and c.NAME not in self.mounts]
        if missing:
            raise OSError(errno.ENOENT, f"cgroup v1: the requested limits need the "
                          f"{', '.join(missing)} hierarchy, which is not mounted under {self.root}")
        warnings: list[str] = []
        for controller in controllers():
            if controller.needed(resources):
                warnings += controller.apply(self._by_controller[controller.NAME], resources)
        return warnings

    def _freezer_dir(self) -> str:
        directory = self._by_controller.get("freezer")
        if directory is None:
            raise OSError(errno.ENOENT, f"cgroup v1: no freezer hierarchy under {self.root}")
        return directory

    def freeze(self, timeout: float = 2.0) -> None:
        from . import freezer

        freezer.freeze(self._freezer_dir(), timeout)

    def thaw(self, timeout: float = 2.0) -> None:
        from . import freezer

        freezer.thaw(self._freezer_dir(), timeout)

    def frozen(self) -> bool:
        from . import freezer

        return self._can_freeze() and freezer.is_frozen(self._freezer_dir())

    def _can_freeze(self) -> bool:
        return "freezer" in self.mounts

    def freezer_file(self) -> str:
        from . import freezer

        return self._freezer_dir() + "/" + freezer.STATE if self._can_freeze() else ""

    def hierarchy_dirs(self) -> dict[str, str]:
        found = dict(self._by_controller)
        if self.unified:
            found[UNIFIED] = self.unified + "/" + self.path
        return found

    def _unified_dir(self) -> str | None:
        return self.unified + "/" + self.path if self.unified else None
