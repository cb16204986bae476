"""cgroup management: one manager interface, v1 and v2 drivers, one module per controller.

    from isoinspect.runtime.cgroups import Resources, make_manager
    read_layout().mode                         # "unified", "hybrid" or "legacy" (layout.py)
    cg = make_manager("isoinspect/<id>")      # V1Manager (legacy/hybrid) or V2Manager (unified)
    cg.create(); cg.apply(Resources(memory=64 << 20, pids_limit=100))
    # the container's child writes "0" to each of cg.procs_files() before exec

Only os, errno, time and these modules are imported: this package is on the start path.
"""

from .layout import Layout, read_layout
from .manager import CgroupManager, list_children, make_manager
from .resources import DEFAULT_DEVICE_RULES, Resources

__all__ = ["CgroupManager", "DEFAULT_DEVICE_RULES", "Layout", "Resources", "list_children",
           "make_manager", "read_layout"]
