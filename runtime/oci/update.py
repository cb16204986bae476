"""`isoinspect-runc update`: new limits for a created, running or paused container, from runc's
flags or from a linux.resources JSON (`-r FILE`, `-r -` for stdin: how containerd passes on
Docker's `docker update`). The cgroup is written by the one update path (cgroups/update.py)."""

from __future__ import annotations

import json
import sys

from isoinspect.runtime.cgroups.resources import parse_size
from isoinspect.runtime.container_state import Status
from isoinspect.runtime.oci import container as oc

# The parser is built for every command, `create` included: cgroups.update (dataclasses) is
# imported only when an update runs.

# runc's flag -> (ResourceUpdate field, parser). Sizes take Docker's units ("64m"), as runc's.
FLAGS = (
    ("memory", "memory", parse_size),
    ("memory_swap", "memory_swap", parse_size),
    ("memory_reservation", "memory_reservation", parse_size),
    ("cpu_quota", "cpu_quota_us", int),
    ("cpu_period", "cpu_period_us", int),
    ("cpu_share", "cpu_shares", int),
    ("cpuset_cpus", "cpuset_cpus", str),
    ("cpuset_mems", "cpuset_mems", str),
    ("pids_limit", "pids_limit", int),
    ("blkio_weight", "blkio_weight", int),
    ("cpu_rt_period", "cpu_rt_period_us", int),
    ("cpu_rt_runtime", "cpu_rt_runtime_us", int),
)
# Accepted as runc does: kernel memory limits are ignored with its warning; Intel RDT schemas
# are refused (`features` says intelRdt is not enabled).
KERNEL_MEMORY = ("kernel_memory", "kernel_memory_tcp")
KERNEL_MEMORY_IGNORED = "Kernel memory settings are ignored and will be removed"
RDT = (("l3_cache_schema", "Intel RDT/CAT: l3 cache schema is not enabled"),
       ("mem_bw_schema", "Intel RDT/MBA: memory bandwidth schema is not enabled"))


def add_arguments(parser) -> None:
    """runc update's options (``--cpu-shares`` is accepted beside runc's ``--cpu-share``)."""
    parser.add_argument("-r", "--resources", default=None)
    for flag, _, _ in FLAGS:
        names = ["--" + flag.replace("_", "-")]
        if flag == "cpu_share":
            names.append("--cpu-shares")
        parser.add_argument(*names, dest=flag, default=None)
    for flag in KERNEL_MEMORY + tuple(name for name, _ in RDT):
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None)
    parser.add_argument("id")


def _read_resources(path: str) -> object:
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"resources {path}: not JSON: {exc.msg}") from None


def from_args(args) -> tuple:
    """(the ResourceUpdate asked for, warnings): the JSON of ``--resources`` alone when given
    (runc ignores the flags then), else the flags."""
    from isoinspect.runtime.cgroups.update import ResourceUpdate, from_oci
    if args.resources:
        section = _read_resources(args.resources)
        change = from_oci(section)
        memory = section.get("memory") if isinstance(section, dict) else None
        kernel = isinstance(memory, dict) and any(memory.get(k) for k in ("kernel", "kernelTCP"))
        return change, [KERNEL_MEMORY_IGNORED] if kernel else []
    for flag, message in RDT:
        if getattr(args, flag) is not None:
            raise oc.OciError(message)
    warnings = [KERNEL_MEMORY_IGNORED] if any(getattr(args, f) is not None
                                              for f in KERNEL_MEMORY) else []
    values = {}
    for flag, field, parse in FLAGS:
        text = getattr(args, flag)
        if text is None:
            continue
        try:
            values[field] = parse(text)
        except ValueError:
            raise ValueError(f"invalid value {text!r} for --{flag.replace('_', '-')}") from None
    return ResourceUpdate(**values), warnings


def update(store: oc.Store, cid: str, change) -> list[str]:
    """Apply ``change`` (a ResourceUpdate) to container ``cid``'s cgroup; return the drivers'
    warnings."""
    from isoinspect.runtime.cgroups import make_manager
    from isoinspect.runtime.cgroups.update import apply_update
    state = store.load(cid)
    if oc.status_of(store, state) == Status.STOPPED:
        raise oc.OciError("container not running")
    return apply_update(make_manager(state.cgroup, oc.CGROUP_ROOT), change)
