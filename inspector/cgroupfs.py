"""Read any container's cgroup (ours, runc's, Docker's) on cgroup v1, hybrid or v2 hosts.

One interface for every setup::

    cg = CgroupView.for_pid(pid)            # or CgroupView.for_path("/docker/<id>")
    cg.figures()    # Figures: memory.current/peak/max/events, cpu usage + throttling, pids, io
    cg.snapshot()   # hierarchy + figures, JSON-ready
    cg.cgroup_id()  # v2 id (inode in the unified hierarchy): bpf_get_current_cgroup_id()

The host's layout and the figures come from the runtime's one layout reader
(runtime/cgroups/layout.py) and one figures reader (runtime/cgroups/figures.py), so the names
are those of ``isoinspect inspect`` (the cgroup v2 file names, on v1 too). Nothing here uses the
runtime's managers: a cgroup is found from a path or a pid alone. Every function that touches a
kernel path takes ``root``/``proc``/``mountinfo`` so tests can point it at a fake tree.
"""

from __future__ import annotations

import os

from isoinspect.runtime.cgroups import fs
from isoinspect.runtime.cgroups.figures import Figures, read_figures
from isoinspect.runtime.cgroups.layout import (MOUNTINFO, ROOT, UNIFIED, Layout, join,
                                               parse_proc_cgroup, read_layout)

PROC = "/proc"


# ---------------------------------------------------------------------------------- the view


class CgroupView:
    """One cgroup (a container's) across the hierarchies of a host; read-only."""

    def __init__(self, paths: dict[str, str], layout: Layout) -> None:
        self.layout = layout
        self.paths = paths                         # controller (or "unified") -> cgroup path
        self.dirs: dict[str, str] = {}             # controller (or "unified") -> directory
        if layout.v2 and UNIFIED in paths:
            self.dirs[UNIFIED] = join(layout.v2, paths[UNIFIED])
        for name, mount in layout.v1.items():
            if name in paths:
                self.dirs[name] = join(mount, paths[name])

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def for_path(cls, path: str, root: str = ROOT, mountinfo: str | None = MOUNTINFO,
                 layout: Layout | None = None) -> "CgroupView":
        """The cgroup at ``path`` (relative to each hierarchy's root) in every hierarchy."""
        layout = layout or read_layout(root, mountinfo)
        path = "/" + path.strip("/")
        names = list(layout.v1) + [UNIFIED]
        return cls({name: path for name in names}, layout)

    @classmethod
    def for_pid(cls, pid: int, root: str = ROOT, proc: str = PROC,
                mountinfo: str | None = MOUNTINFO, layout: Layout | None = None
                ) -> "CgroupView":
        """The cgroups process ``pid`` is in (per hierarchy, from /proc/PID/cgroup)."""
        layout = layout or read_layout(root, mountinfo)
        text = fs.read_value(f"{proc}/{pid}", "cgroup")
        if text is None:
            raise ProcessLookupError(f"no process {pid} ({proc}/{pid}/cgroup missing)")
        return cls(parse_proc_cgroup(text), layout)

    # -- identity --------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.layout.version

    @property
    def path(self) -> str:
        """The container's cgroup path: the unified one if any, else memory's (or any).

        On a hybrid host a runtime may leave the unified hierarchy alone (runsc puts its
        sandbox in the v1 controllers only): a root unified path then yields to the first
        controller whose path is not the root."""
        keys = [k for k in (UNIFIED, "memory", "pids", "cpu") if k in self.paths]
        for key in keys:
            if self.paths[key].strip("/"):
                return self.paths[key]
        return self.paths[keys[0]] if keys else next(iter(self.paths.values()), "/")

    def cgroup_id(self) -> int | None:
        """The v2 cgroup id (inode of the unified dir); None without a unified hierarchy."""
        directory = self.dirs.get(UNIFIED)
        try:
            return os.stat(directory).st_ino if directory else None
        except FileNotFoundError:
            return None

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in set(self.dirs.values()):
            found.update(fs.read_pids(directory) or ())
        return sorted(found)

    def hierarchy(self) -> list[dict]:
        """Each hierarchy the cgroup is in: controller, directory, whether it exists, and the
        ancestors' paths from the root down (limits of a parent bind the container too)."""
        out = []
        for name, directory in sorted(self.dirs.items()):
            path = self.paths[name]
            parts = [p for p in path.strip("/").split("/") if p]
            out.append({"controller": name, "path": path, "dir": directory,
                        "exists": os.path.isdir(directory),
                        "ancestors": ["/" + "/".join(parts[:i]) for i in range(len(parts))]})
        return out

    # -- figures ---------------------------------------------------------------------------
    def figures(self) -> Figures:
        """Usage, limits and enforcement counters, read by the runtime's one reader
        (runtime/cgroups/figures.py: the same names ``isoinspect inspect`` shows)."""
        return read_figures(self.dirs, self.version)

    def snapshot(self) -> dict:
        return {"setup": self.layout.mode, "path": self.path, "cgroup_id": self.cgroup_id(),
                "hierarchy": self.hierarchy(), "stats": self.figures().to_dict()}


def find_by_id(cgroup_id: int, root: str = ROOT, mountinfo: str | None = MOUNTINFO,
               layout: Layout | None = None) -> str | None:
    """The v2 path (e.g. "/docker/<id>") of cgroup ``cgroup_id``, by walking the unified
    hierarchy; None when not found (already removed, or no unified hierarchy)."""
    layout = layout or read_layout(root, mountinfo)
    if not layout.v2:
        return None
    base = layout.v2
    try:
        if os.stat(base).st_ino == cgroup_id:
            return "/"
    except FileNotFoundError:
        return None
    for directory, subdirs, _ in os.walk(base):
        for name in subdirs:
            full = os.path.join(directory, name)
            try:
                if os.stat(full).st_ino == cgroup_id:
                    return "/" + os.path.relpath(full, base)
            except FileNotFoundError:
                continue
    return None
