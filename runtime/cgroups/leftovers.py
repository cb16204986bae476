"""cgroups named after the process that made them (``isoinspect-bench-<pid>-<n>``), in every
hierarchy: found, and removed once that process is gone.

The benchmarks and verify give each peer container (runc, crun, runsc) a cgroup named after
their own pid. A peer killed half-way through a create (a Ctrl-C reaching its process group)
leaves that cgroup behind with no state its runtime knows, in every hierarchy the peer joined:
the v1 controllers, named ones such as ``name=systemd`` (which ``layout.Layout`` leaves out)
and a hybrid host's cgroup2. So this module walks every cgroup mount of mountinfo rather than
the layout, at the top level and under the peers' parent.
"""

from __future__ import annotations

import os
import re
import time
from typing import NamedTuple

from . import fs
from .layout import MOUNTINFO, ROOT, _under, read_mounts

#: the parents the peers' cgroups live under ("" = a hierarchy's root)
PARENTS = ("isoinspect-peers", "")
#: <prefix>-<pid>-<rest>: bench's containers and verify's
OWNED = re.compile(r"^(isoinspect-bench|isoinspect-verify)-(\d+)-")
SIGKILL = 9


class OwnedCgroup(NamedTuple):
    """One cgroup directory in one hierarchy, and the pid its name carries."""

    path: str
    owner: int


def mount_points(root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> list[str]:
    """Every cgroup and cgroup2 mount under ``root`` (named v1 hierarchies too), each once;
    from the directories under ``root`` when mountinfo has none (a test tree)."""
    points = [m.point for m in read_mounts(mountinfo) if _under(m.point, root)]
    if not points:
        points = [root] + [os.path.join(root, d) for d in fs.list_dirs(root)]
    unique: list[str] = []
    seen: set[str] = set()
    for point in points:
        real = os.path.realpath(point)
        if real not in seen:
            seen.add(real)
            unique.append(point)
    return unique


def owned_cgroups(root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> list[OwnedCgroup]:
    """Every ``isoinspect-bench-<pid>-*`` / ``isoinspect-verify-<pid>-*`` cgroup directory."""
    found = []
    for point in mount_points(root, mountinfo):
        for parent in PARENTS:
            directory = os.path.join(point, parent) if parent else point
            for name in fs.list_dirs(directory):
                match = OWNED.match(name)
                if match:
                    found.append(OwnedCgroup(os.path.join(directory, name), int(match[2])))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: str, timeout: float = 5.0) -> bool:
    """SIGKILL what is left in cgroup ``path`` and its children, then rmdir them deepest
    first; True if it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        for directory in _deepest_first(path):
            for pid in fs.read_pids(directory) or ():
                try:
                    os.kill(pid, SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # still emptying (EBUSY): the next pass
        if not os.path.isdir(path):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _deepest_first(path: str) -> list[str]:
    found = []
    for child in fs.list_dirs(path):
        found += _deepest_first(os.path.join(path, child))
    return found + [path]


def remove_owned(owner_alive=pid_alive, only_owner: int | None = None,
                 root: str = ROOT, mountinfo: str | None = MOUNTINFO) -> list[str]:
    """Remove the owned cgroups whose owner is dead (or, with ``only_owner``, those of that
    pid whatever its state: a bench cleaning up after itself); the paths removed."""
    removed = []
    for cgroup in owned_cgroups(root, mountinfo):
        if only_owner is not None:
            if cgroup.owner != only_owner:
                continue
        elif owner_alive(cgroup.owner):
            continue
        if remove_tree(cgroup.path):
            removed.append(cgroup.path)
    return removed
