"""v1 cpuset controller: cpuset.cpus, cpuset.mems.

A new v1 cpuset cgroup starts with both empty and refuses tasks until they are set, so
``prepare`` copies the parent's values down every level of our path (isoinspect/ then the
container) before any task joins; ``apply`` then narrows them to what was requested.
"""

from __future__ import annotations

from .. import fs

NAME = "cpuset"
FILES = ("cpuset.cpus", "cpuset.mems")


def needed(res) -> bool:
    return res.cpuset_cpus is not None or res.cpuset_mems is not None


def prepare(mount: str, path: str) -> None:
    """mkdir each level of ``path`` under the cpuset ``mount``, filling empty cpus/mems from the
    parent."""
    parent = mount
    for part in path.split("/"):
        child = parent + "/" + part
        fs.make_dir(child)
        for name in FILES:
            if not fs.read_value(child, name):
                inherited = fs.read_value(parent, name)
                if inherited:
                    fs.write_value(child, name, inherited)
        parent = child


def apply(directory: str, res) -> list[str]:
    fs.write_fields(directory, (("cpuset.cpus", res.cpuset_cpus),
                                ("cpuset.mems", res.cpuset_mems)))
    return []
