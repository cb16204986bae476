"""cgroup management: one manager interface, v1 and v2 drivers, one module per controller.

    from isoinspect.runtime.cgroups import Resources, make_manager
    read_layout().mode                         # "unified", "hybrid" or "legacy" (layout.py)
    cg = make_manager("isoinspect/<id>")      # V1Manager (legacy/hybrid) or V2Manager (unified)
    cg.create(); cg.apply(Resources(memory=64 << 20, pids_limit=100))
    # the container's child writes "0" to each of cg.procs_files() before exec

Only os, errno, time and these modules are imported: this package is on the start path.
"""

# Loaded on first use (PEP 562): importing one submodule (ps's freezer reader, the layout)
# does not load the others.
_EXPORTS = {"Layout": "layout", "read_layout": "layout", "CgroupManager": "manager",
            "list_children": "manager", "make_manager": "manager",
            "DEFAULT_DEVICE_RULES": "resources", "Resources": "resources"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
