"""Where isoinspect keeps its state, overridable for tests.

Default: persistent data (images, containers) under /var/lib/isoinspect and volatile run state
(locks, network namespaces) under /run/isoinspect. ``--root DIR`` or ``ISOINSPECT_ROOT=DIR`` moves
both under DIR (DIR/lib, DIR/run) so tests get a private store. The cgroup parent is
``isoinspect`` for the default root and ``isoinspect-<crc of the root path>`` for any other, so
``gc`` of a test root can never touch the cgroups of another root's containers;
``ISOINSPECT_CGROUP_PARENT`` overrides it.
"""

from __future__ import annotations

import os
import zlib

DEFAULT_DATA_DIR = "/var/lib/isoinspect"
DEFAULT_RUN_DIR = "/run/isoinspect"
DEFAULT_CGROUP_PARENT = "isoinspect"


class Roots:
    """The directories one runtime instance works in."""

    __slots__ = ("data_dir", "run_dir", "cgroup_parent", "cgroup_root")

    def __init__(self, root: str | None = None, cgroup_parent: str | None = None,
                 cgroup_root: str = "/sys/fs/cgroup") -> None:
        root = root or os.environ.get("ISOINSPECT_ROOT") or None
        if root:
            root = os.path.abspath(root)
            self.data_dir = os.path.join(root, "lib")
            self.run_dir = os.path.join(root, "run")
        else:
            self.data_dir = DEFAULT_DATA_DIR
            self.run_dir = DEFAULT_RUN_DIR
        default_parent = DEFAULT_CGROUP_PARENT
        if root:
            default_parent = f"{DEFAULT_CGROUP_PARENT}-{zlib.crc32(root.encode()):08x}"
        self.cgroup_parent = (cgroup_parent or os.environ.get("ISOINSPECT_CGROUP_PARENT")
                              or default_parent)
        self.cgroup_root = cgroup_root

    @classmethod
    def exact(cls, data_dir: str, run_dir: str, cgroup_parent: str,
              cgroup_root: str) -> "Roots":
        """The same directories as another process's Roots (its fields passed on as they are,
        with no environment or default in between)."""
        roots = cls.__new__(cls)
        roots.data_dir, roots.run_dir = data_dir, run_dir
        roots.cgroup_parent, roots.cgroup_root = cgroup_parent, cgroup_root
        return roots

    def fields(self) -> list[str]:
        """What ``exact`` takes, in its order."""
        return [self.data_dir, self.run_dir, self.cgroup_parent, self.cgroup_root]

    def data(self, *parts: str) -> str:
        return os.path.join(self.data_dir, *parts)

    def run(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)
