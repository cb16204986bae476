"""Find a container's cgroup from what a user types: a pid, a cgroup path, a container id
(prefix, any runtime that puts the 64-hex id in the cgroup path: Docker, containerd, runc under
Docker, isoinspect) or - through the runtime adapter - one of our containers' names."""

from __future__ import annotations

import os

from .attribution import HEX64, Container, guess_runtime
from isoinspect.runtime.cgroups.layout import read_layout

from .cgroupfs import ROOT, CgroupView


def _walk_dirs(base: str):
    for directory, subdirs, _ in os.walk(base):
        for name in subdirs:
            yield os.path.join(directory, name)


def find_container(ref: str, root: str = ROOT, our_root: str | None = None) -> Container | None:
    if ref.isdigit():                                  # a pid
        view = CgroupView.for_pid(int(ref), root=root)
        found = HEX64.findall(view.path)
        cid = found[-1] if found else view.path
        return Container(cid, cid[:12] if found else view.path, guess_runtime(view.path),
                         view.path, view.cgroup_id())
    if ref.startswith("/"):                            # a cgroup path (runc --cgroup-parent...)
        view = CgroupView.for_path(ref, root=root)
        if not view.exists():
            return None
        return Container(ref, os.path.basename(ref), guess_runtime(ref), ref, view.cgroup_id())
    try:
        from .runtime_adapter import find_ours          # names of our containers

        ours = find_ours(ref, our_root)
    except ImportError:
        ours = None
    if ours is not None:
        return ours
    layout = read_layout(root)
    base = layout.v2 or next(iter(layout.v1.values()), None)
    if base is None or len(ref) < 4:
        return None
    for directory in _walk_dirs(base):
        for cid in HEX64.findall(os.path.basename(directory)):
            if cid.startswith(ref.lower()):
                path = "/" + os.path.relpath(directory, base)
                view = CgroupView.for_path(path, layout=layout)
                return Container(cid, cid[:12], guess_runtime(path), path, view.cgroup_id())
    return None


def pid_of(ref: str, root: str = ROOT, our_root: str | None = None) -> int | None:
    """A process of the container ``ref`` (its first process for ours), or ``ref`` as a pid."""
    if ref.isdigit():
        return int(ref)
    try:
        from .runtime_adapter import pid_of_ours

        pid = pid_of_ours(ref, our_root)
    except ImportError:
        pid = None
    if pid:
        return pid
    container = find_container(ref, root=root, our_root=our_root)
    if container is None:
        return None
    pids = CgroupView.for_path(container.cgroup_path, root=root).pids()
    return pids[0] if pids else None
