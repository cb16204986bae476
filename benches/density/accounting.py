"""Which host processes and memory belong to each idle instance, and what one instance costs.

**An instance's processes** are, on the host's /proc at the moment of measurement:

1. the processes in the instance's own cgroup (the memory hierarchy's cgroup.procs on v1 and
   hybrid hosts, the unified one on v2; a cgroup that is ``/`` or the bench's own counts as
   none), plus its ``roots`` (the host's ``sleep``, a QEMU process), and everything below them;
2. their ancestors, up to but excluding pid 1, the bench process (and so its ancestors) and
   the shared daemons (dockerd, containerd): runc's and our library's inits have none left;
   Docker's have their ``containerd-shim``; runsc's Sentry and Gofer are already in (1).

Of those, the **workload** is the instance's command as a host process and its descendants
(absent for runsc, whose ``sleep`` is a Sentry task, and for QEMU); every other one is the
**runtime's** (shim, Sentry, stubs, Gofer, QEMU).

**Figures** (bytes): ``runtime_pss`` and ``workload_pss`` are sums of PSS
(procmem.read_rollup); ``cgroup`` is the instance cgroup's charge (``memory.current``, v1
``memory.usage_in_bytes``: its processes' pages, the page cache they brought in first and the
kernel memory charged to it) read by the inspector's CgroupView. **One instance's memory**
(``total``) is its cgroup charge plus the PSS of its processes outside that cgroup (a shim,
QEMU, the host's ``sleep``); PSS inside the cgroup is not added again. Measured separately
and never in ``total``: the shared daemons' growth (their PSS now minus before the first
instance) and the host-wide drop of MemAvailable since before the first instance.

**Per-instance estimate** at a level: the mean of the instances' ``total`` with a 95 %
percentile-bootstrap interval (benches/stats.bootstrap_ci), so N instances cost N x mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from isoinspect.benches import stats
from isoinspect.benches.density import procmem
from isoinspect.benches.density.instances import Instance

DEFINITION = ("instance processes = its cgroup's (memory hierarchy) + its own roots and their "
              "descendants + their ancestors up to but excluding pid 1, the bench process and "
              "the shared daemons; total per instance = cgroup memory charge + PSS of its "
              "processes outside that cgroup; per-instance estimate = mean of the totals with a "
              "95% percentile bootstrap CI; daemon growth and MemAvailable drop are separate")


@dataclass(frozen=True)
class Process:
    """One host process counted for an instance."""

    pid: int
    name: str
    role: str            # "runtime" | "workload"
    in_cgroup: bool
    memory: procmem.Rollup


@dataclass
class InstanceMemory:
    """One instance at one moment."""

    index: int
    processes: list[Process]
    cgroup_bytes: int | None         # None: the instance has no cgroup of its own

    def pss(self, role: str | None = None) -> int:
        return sum(p.memory.pss for p in self.processes if role in (None, p.role))

    @property
    def total_bytes(self) -> int:
        outside = sum(p.memory.pss for p in self.processes if not p.in_cgroup)
        return (self.cgroup_bytes or 0) + outside


@dataclass(frozen=True)
class Estimate:
    """The mean of per-instance values with its bootstrap interval."""

    estimate: float
    ci: tuple[float, float]
    n: int
    method: str = "mean, 95% percentile bootstrap over instances"

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "ci": list(self.ci), "n": self.n,
                "method": self.method}


def per_instance_estimate(values: list[float]) -> Estimate:
    """Mean of ``values`` (one per instance) with a 95 % percentile-bootstrap interval; one
    value gives a zero-width interval."""
    if not values:
        raise ValueError("no instances to estimate from")
    centre = stats.mean(values)
    if len(values) == 1:
        return Estimate(centre, (centre, centre), 1)
    low, high = stats.bootstrap_ci(values, stats.mean)
    return Estimate(centre, (low, high), len(values))


def marginal_bytes(previous: tuple[int, float] | None, current: tuple[int, float]
                   ) -> float | None:
    """(total(N2) - total(N1)) / (N2 - N1) between two levels given as (N, total bytes)."""
    if previous is None or current[0] <= previous[0]:
        return None
    return (current[1] - previous[1]) / (current[0] - previous[0])


class Accountant:
    """Attributes processes to instances (see the module notes) and reads their memory."""

    def __init__(self, daemon_names: tuple[str, ...] = (), proc: str = procmem.PROC,
                 bench_pid: int | None = None, cgroup_root: str | None = None,
                 mountinfo: str | None = None) -> None:
        from isoinspect.inspector.cgroupfs import CgroupView
        from isoinspect.runtime.cgroups.layout import MOUNTINFO, ROOT

        self.proc = proc
        self.daemon_names = set(daemon_names)
        self.bench_pid = bench_pid or os.getpid()
        own = CgroupView.for_pid(self.bench_pid, root=cgroup_root or ROOT, proc=proc,
                                 mountinfo=mountinfo if cgroup_root else MOUNTINFO)
        self._own_cgroup = _memory_dir(own)[0]

    def daemon_pids(self, table: dict[int, procmem.ProcInfo]) -> list[int]:
        return sorted(pid for pid, info in table.items() if info.name in self.daemon_names)

    def daemons_pss(self, table: dict[int, procmem.ProcInfo] | None = None) -> int:
        table = table if table is not None else procmem.process_table(self.proc)
        return sum((procmem.read_rollup(pid, self.proc) or procmem.Rollup()).pss
                   for pid in self.daemon_pids(table))

    def measure(self, instances: list[Instance]) -> tuple[list[InstanceMemory], int]:
        """Every instance's memory now, and the shared daemons' PSS (bytes)."""
        table = procmem.process_table(self.proc)
        stop = {0, 1, self.bench_pid, *self.daemon_pids(table)}
        return ([self._one(instance, table, stop) for instance in instances],
                self.daemons_pss(table))

    def _one(self, instance: Instance, table: dict[int, procmem.ProcInfo],
             stop: set[int]) -> InstanceMemory:
        members, cgroup_bytes = self._cgroup(instance)
        seeds = (members | set(instance.roots)) - stop
        pids = procmem.descendants(seeds, table) - stop
        for pid in list(pids):
            for parent in procmem.ancestors(pid, table):
                if parent in stop:
                    break
                pids.add(parent)
        workload = (procmem.descendants({instance.workload_pid}, table)
                    if instance.workload_pid else set())
        processes = []
        for pid in sorted(pids):
            memory = procmem.read_rollup(pid, self.proc)
            info = table.get(pid)
            if memory is None or info is None:
                continue      # gone since the table was read, or a zombie
            processes.append(Process(pid, info.name,
                                     "workload" if pid in workload else "runtime",
                                     pid in members, memory))
        return InstanceMemory(instance.index, processes, cgroup_bytes)

    def _cgroup(self, instance: Instance) -> tuple[set[int], int | None]:
        """The instance cgroup's processes and memory charge (none for a shared cgroup)."""
        from isoinspect.runtime.cgroups import fs

        view = instance.cgroup
        directory, path = _memory_dir(view) if view is not None else (None, None)
        if directory is None or directory == self._own_cgroup or path in ("", "/"):
            return set(), None
        memory = view.figures().memory
        return set(fs.read_pids(directory) or ()), memory.current if memory else None


def _memory_dir(view) -> tuple[str | None, str | None]:
    """(directory, cgroup path) in the hierarchy that holds the memory controller: its
    cgroup.procs and charge are the instance's (other v1 hierarchies may differ: runsc leaves
    some at /)."""
    from isoinspect.runtime.cgroups.layout import UNIFIED

    key = UNIFIED if view.version == 2 else "memory"
    return view.dirs.get(key), view.paths.get(key)


@dataclass
class LevelMemory:
    """All instances of one level, summed and estimated."""

    instances: list[InstanceMemory]
    daemons_pss: int
    daemons_baseline: int
    mem_available: int
    mem_available_baseline: int
    estimate: Estimate = field(init=False)

    def __post_init__(self) -> None:
        self.estimate = per_instance_estimate([i.total_bytes for i in self.instances])

    @property
    def total_bytes(self) -> int:
        return sum(i.total_bytes for i in self.instances)

    def runtime_pss(self) -> int:
        return sum(i.pss("runtime") for i in self.instances)

    def workload_pss(self) -> int:
        return sum(i.pss("workload") for i in self.instances)

    def cgroup_bytes(self) -> int | None:
        charges = [i.cgroup_bytes for i in self.instances if i.cgroup_bytes is not None]
        return sum(charges) if charges else None

    def process_kinds(self) -> dict[str, dict]:
        """Per process name: how many, its role, whether in the cgroup, PSS summed."""
        kinds: dict[str, dict] = {}
        for instance in self.instances:
            for process in instance.processes:
                kind = kinds.setdefault(process.name, {
                    "count": 0, "role": process.role, "in_cgroup": process.in_cgroup,
                    "pss_bytes": 0, "pss_anon_bytes": 0, "pss_file_bytes": 0})
                kind["count"] += 1
                kind["pss_bytes"] += process.memory.pss
                kind["pss_anon_bytes"] += process.memory.pss_anon
                kind["pss_file_bytes"] += process.memory.pss_file
        return kinds
