"""Read any container's cgroup (ours, runc's, Docker's) on cgroup v1, hybrid or v2 hosts.

One interface for every setup::

    cg = CgroupView.for_pid(pid)            # or CgroupView.for_path("/docker/<id>")
    cg.limits()   # {"memory": {"max": ..., "swap_max": ...}, "cpu": {...}, "pids": {...}}
    cg.usage()    # memory current/peak/events, cpu usage/throttling, pids, io, psi
    cg.snapshot() # hierarchy + limits + usage, JSON-ready
    cg.cgroup_id()  # v2 id (inode in the unified hierarchy): bpf_get_current_cgroup_id()

The shapes are the same on v1 and v2; v1-only or v2-only extras sit under "raw". Numbers are
normalised: bytes, microseconds, -1 for "no limit"; a controller that is not there is left out
(runc's rule: a missing file means "not enabled", not an error).

Reads go through isoinspect.runtime.cgroups.fs (the project's one cgroupfs I/O choke point), but
nothing here uses the runtime's managers: a cgroup is found from a path or a pid alone. Every
function that touches a kernel path takes ``root``/``proc``/``mountinfo`` so tests can point it at
a fake tree.
"""

from __future__ import annotations

import os

from isoinspect.runtime.cgroups import fs
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
        """The container's cgroup path: the unified one if any, else memory's (or any)."""
        for key in (UNIFIED, "memory", "pids", "cpu"):
            if key in self.paths:
                return self.paths[key]
        return next(iter(self.paths.values()), "/")

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

    def _dir(self, controller: str) -> str | None:
        """Where ``controller``'s files are: its v1 dir, or the unified dir on v2."""
        if self.layout.version == 2:
            return self.dirs.get(UNIFIED)
        return self.dirs.get(controller)

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

    # -- limits ----------------------------------------------------------------------------
    def limits(self) -> dict:
        out: dict[str, dict] = {}
        if self.version == 2:
            d = self.dirs.get(UNIFIED)
            if d is None:
                return out
            mem = _drop_none({"max": fs.read_int(d, "memory.max"),
                              "high": fs.read_int(d, "memory.high"),
                              "low": fs.read_int(d, "memory.low"),
                              "swap_max": fs.read_int(d, "memory.swap.max")})
            if mem:
                out["memory"] = mem
            cpu_max = fs.read_value(d, "cpu.max")
            if cpu_max is not None:
                quota, _, period = cpu_max.partition(" ")
                out["cpu"] = _drop_none({"quota_us": fs.parse_int(quota),
                                         "period_us": int(period) if period else 100000,
                                         "weight": fs.read_int(d, "cpu.weight")})
            pids = fs.read_int(d, "pids.max")
            if pids is not None:
                out["pids"] = {"max": pids}
            cpus = fs.read_value(d, "cpuset.cpus")
            if cpus is not None:
                out["cpuset"] = {"cpus": cpus, "mems": fs.read_value(d, "cpuset.mems") or ""}
            io_max = fs.read_nested(d, "io.max")
            if io_max is not None:
                out["io"] = {"max": io_max}
            return out
        d = self._dir("memory")
        if d:
            memsw = fs.read_int(d, "memory.memsw.limit_in_bytes")
            limit = fs.read_int(d, "memory.limit_in_bytes")
            swap = -1 if memsw is None or memsw == -1 or limit in (None, -1) else memsw - limit
            mem = _drop_none({"max": limit, "low": fs.read_int(d, "memory.soft_limit_in_bytes"),
                              "swap_max": swap, "memsw_max": memsw})
            if mem:
                out["memory"] = mem
        d = self._dir("cpu")
        if d:
            quota = fs.read_int(d, "cpu.cfs_quota_us")
            if quota is not None:
                out["cpu"] = _drop_none({"quota_us": quota,
                                         "period_us": fs.read_int(d, "cpu.cfs_period_us"),
                                         "shares": fs.read_int(d, "cpu.shares")})
        d = self._dir("pids")
        if d:
            pids = fs.read_int(d, "pids.max")
            if pids is not None:
                out["pids"] = {"max": pids}
        d = self._dir("cpuset")
        if d:
            cpus = fs.read_value(d, "cpuset.cpus")
            if cpus is not None:
                out["cpuset"] = {"cpus": cpus, "mems": fs.read_value(d, "cpuset.mems") or ""}
        return out

    # -- usage -----------------------------------------------------------------------------
    def usage(self) -> dict:
        out: dict[str, dict] = {}
        for name, reader in (("memory", self._memory), ("cpu", self._cpu),
                             ("pids", self._pids), ("io", self._io)):
            section = reader()
            if section:
                out[name] = section
        psi = self.psi()
        if psi:
            out["psi"] = psi
        return out

    def _memory(self) -> dict | None:
        if self.version == 2:
            d = self.dirs.get(UNIFIED)
            if not d or not fs.has_file(d, "memory.current"):
                return None
            events = fs.read_keyed(d, "memory.events") or {}
            return _drop_none({
                "current": fs.read_int(d, "memory.current"),
                "peak": fs.read_int(d, "memory.peak"),
                "swap_current": fs.read_int(d, "memory.swap.current"),
                "events": {k: events.get(k, 0) for k in ("low", "high", "max", "oom",
                                                          "oom_kill")},
            })
        d = self._dir("memory")
        if not d or not fs.has_file(d, "memory.usage_in_bytes"):
            return None
        oom = fs.read_keyed(d, "memory.oom_control") or {}
        failcnt = fs.read_int(d, "memory.failcnt")
        return _drop_none({
            "current": fs.read_int(d, "memory.usage_in_bytes"),
            "peak": fs.read_int(d, "memory.max_usage_in_bytes"),
            # v1 has no "oom" (OOM episodes) counter: under_oom is a state, oom_kill a count.
            "events": {"max": failcnt or 0, "oom_kill": oom.get("oom_kill", 0),
                       "under_oom": oom.get("under_oom", 0)},
            "raw": {"oom_control": oom, "failcnt": failcnt},
        })

    def _cpu(self) -> dict | None:
        if self.version == 2:
            d = self.dirs.get(UNIFIED)
            stat = fs.read_keyed(d, "cpu.stat") if d else None
            if not stat:
                return None
            return {"usage_usec": stat.get("usage_usec", 0),
                    "user_usec": stat.get("user_usec", 0),
                    "system_usec": stat.get("system_usec", 0),
                    "nr_periods": stat.get("nr_periods", 0),
                    "nr_throttled": stat.get("nr_throttled", 0),
                    "throttled_usec": stat.get("throttled_usec", 0)}
        out: dict = {}
        d = self._dir("cpuacct")
        if d:
            usage = fs.read_int(d, "cpuacct.usage")
            if usage is not None:
                out["usage_usec"] = usage // 1000
            ticks = fs.read_keyed(d, "cpuacct.stat")
            if ticks:
                hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
                out["user_usec"] = int(ticks.get("user", 0)) * 1_000_000 // hz
                out["system_usec"] = int(ticks.get("system", 0)) * 1_000_000 // hz
        d = self._dir("cpu")
        stat = fs.read_keyed(d, "cpu.stat") if d else None
        if stat:
            out["nr_periods"] = stat.get("nr_periods", 0)
            out["nr_throttled"] = stat.get("nr_throttled", 0)
            out["throttled_usec"] = int(stat.get("throttled_time", 0)) // 1000
        return out or None

    def _pids(self) -> dict | None:
        d = self._dir("pids")
        if not d or not fs.has_file(d, "pids.current"):
            return None
        events = fs.read_keyed(d, "pids.events") or {}
        return _drop_none({"current": fs.read_int(d, "pids.current"),
                           "peak": fs.read_int(d, "pids.peak"),
                           "events": {"max": events.get("max", 0)}})

    def _io(self) -> dict | None:
        if self.version == 2:
            d = self.dirs.get(UNIFIED)
            stat = fs.read_nested(d, "io.stat") if d else None
            if stat is None:
                return None
            return fs.sum_by_key(stat.values(), ("rbytes", "wbytes", "rios", "wios"))
        d = self._dir("blkio")
        if not d:
            return None
        found = False
        totals = {"rbytes": 0, "wbytes": 0, "rios": 0, "wios": 0}
        for name, (read_key, write_key) in (
                ("blkio.throttle.io_service_bytes", ("rbytes", "wbytes")),
                ("blkio.throttle.io_serviced", ("rios", "wios"))):
            text = fs.read_value(d, name)
            if text is None:
                continue
            found = True
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2].isdigit():
                    if parts[1] == "Read":
                        totals[read_key] += int(parts[2])
                    elif parts[1] == "Write":
                        totals[write_key] += int(parts[2])
        return totals if found else None

    def psi(self) -> dict:
        """Pressure stall information ({resource: {some: {...}, full: {...}}}) where the kernel
        offers it: in the cgroup's v2 dir (v2, and the unified dir of a hybrid host)."""
        d = self.dirs.get(UNIFIED)
        out: dict = {}
        if not d:
            return out
        for resource in ("cpu", "memory", "io"):
            try:
                nested = fs.read_nested(d, f"{resource}.pressure")
            except OSError:     # PSI disabled at boot: the file exists but reads EOPNOTSUPP
                nested = None
            if nested:
                out[resource] = nested
        return out

    def snapshot(self) -> dict:
        return {"setup": self.layout.mode, "path": self.path, "cgroup_id": self.cgroup_id(),
                "hierarchy": self.hierarchy(), "limits": self.limits(), "usage": self.usage()}


def _drop_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def delta(before: dict, after: dict) -> dict:
    """Counter differences between two usage() results (cpu throttling, events, io)."""
    out: dict = {}
    for section, values in after.items():
        if not isinstance(values, dict) or section == "psi":
            continue
        prev = before.get(section, {})
        diff = {}
        for key, value in values.items():
            if isinstance(value, dict):
                inner = {k: v - prev.get(key, {}).get(k, 0) for k, v in value.items()
                         if isinstance(v, (int, float))}
                if inner:
                    diff[key] = inner
            elif isinstance(value, (int, float)) and key not in ("current",):
                diff[key] = value - prev.get(key, 0)
        out[section] = diff
    return out


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
