"""A cgroup's figures (usage, limits, enforcement counters) in one vocabulary on v1 and v2.

One reader, ``read_figures``, for the runtime's own containers (``isoinspect inspect``: "Stats")
and for any runtime's (``isoinspect trace``, ``run --trace``, ``verify``: via the inspector's
CgroupView). The names are the cgroup v2 interface files' (what ``cat`` shows on the v2 hosts
most users run, and what runc, systemd and Docker read there): ``memory.current``,
``memory.peak``, ``memory.max``, ``memory.events`` ``max``/``oom_kill``, ``pids.current``,
``pids.max``, ``pids.events`` ``max``, ``cpu.stat``'s ``usage_usec``/``nr_throttled``,
``io.stat``'s ``rbytes``... A section is a controller and a field a file (or a key of a keyed
file). v1 numbers are translated to their v2 meaning (memory.usage_in_bytes -> memory.current,
memory.failcnt -> memory.events max, ns -> µs). Units: bytes, microseconds; -1 is "no limit";
None is "this kernel or setup has no such file"; a controller that is not there has no section
(runc's rule: a missing file means "not enabled", not an error).

Off the start path (only ``stats()``/``inspect``/the inspector import it): dataclasses are fine.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from . import fs
from .layout import UNIFIED


@dataclass(frozen=True)
class MemoryEvents:
    """memory.events: how often each boundary was hit (v1: failcnt as ``max`` and
    memory.oom_control's oom_kill, since Linux 4.13; v1 has no low/high/oom counters)."""

    low: int | None = None
    high: int | None = None
    max: int | None = None          # usage hit memory.max (reclaim or OOM followed)
    oom: int | None = None          # OOM episodes (v2 only)
    oom_kill: int | None = None     # processes the OOM killer killed


@dataclass(frozen=True)
class Memory:
    current: int | None = None      # memory.current (v1 memory.usage_in_bytes)
    peak: int | None = None         # memory.peak (v1 memory.max_usage_in_bytes)
    max: int | None = None          # memory.max (v1 memory.limit_in_bytes)
    high: int | None = None         # memory.high (v2 only)
    low: int | None = None          # memory.low (v1 memory.soft_limit_in_bytes)
    swap_current: int | None = None  # memory.swap.current (v2 only)
    swap_max: int | None = None     # memory.swap.max (v1 memsw - limit; None: no swap accounting)
    inactive_file: int | None = None  # memory.stat inactive_file (v1 total_inactive_file):
    #                                   page cache reclaimed first; `stats` leaves it out (Docker)
    events: MemoryEvents = field(default_factory=MemoryEvents)
    pressure: dict | None = None    # memory.pressure (PSI: {"some": {...}, "full": {...}})


@dataclass(frozen=True)
class Cpu:
    usage_usec: int | None = None   # cpu.stat (v1 cpuacct.usage, ns -> µs)
    user_usec: int | None = None    # cpu.stat (v1 cpuacct.usage_user)
    system_usec: int | None = None  # cpu.stat (v1 cpuacct.usage_sys)
    nr_periods: int | None = None   # cpu.stat (v1 cpu.stat)
    nr_throttled: int | None = None
    throttled_usec: int | None = None  # cpu.stat (v1 cpu.stat throttled_time, ns -> µs)
    quota_us: int | None = None     # cpu.max's quota (v1 cpu.cfs_quota_us); -1: no limit
    period_us: int | None = None    # cpu.max's period (v1 cpu.cfs_period_us)
    weight: int | None = None       # cpu.weight (v2)
    shares: int | None = None       # cpu.shares (v1)
    pressure: dict | None = None    # cpu.pressure


@dataclass(frozen=True)
class PidsEvents:
    max: int | None = None          # fork/clone refused because pids.max was reached


@dataclass(frozen=True)
class Pids:
    current: int | None = None      # pids.current
    peak: int | None = None         # pids.peak (Linux 6.1+)
    max: int | None = None          # pids.max; -1: no limit
    events: PidsEvents = field(default_factory=PidsEvents)


@dataclass(frozen=True)
class Io:
    rbytes: int = 0                 # io.stat, all devices (v1 blkio.throttle.io_service_bytes)
    wbytes: int = 0
    rios: int = 0                   # (v1 blkio.throttle.io_serviced)
    wios: int = 0
    devices: dict = field(default_factory=dict)  # "MAJ:MIN" -> {rbytes, wbytes, rios, wios, ...}
    max: dict | None = None         # io.max: "MAJ:MIN" -> {rbps, wbps, riops, wiops} (v2)
    pressure: dict | None = None    # io.pressure


@dataclass(frozen=True)
class Cpuset:
    cpus: str | None = None         # cpuset.cpus
    mems: str | None = None
    cpus_effective: str | None = None  # cpuset.cpus.effective (v1 cpuset.effective_cpus)
    mems_effective: str | None = None


@dataclass(frozen=True)
class Freezer:
    state: str = "THAWED"           # FROZEN, THAWED (v1 also FREEZING)
    frozen: bool = False
    populated: bool | None = None   # cgroup.events populated (v2)


@dataclass(frozen=True)
class Devices:
    enforced: bool = False
    list: list | None = None        # v1 devices.list (the allow-list rules)
    programs: int | None = None     # v2: eBPF device programs attached to the cgroup


@dataclass(frozen=True)
class Figures:
    """One cgroup's figures; a section is None where its controller is not there."""

    memory: Memory | None = None
    cpu: Cpu | None = None
    pids: Pids | None = None
    io: Io | None = None
    cpuset: Cpuset | None = None
    freezer: Freezer | None = None
    devices: Devices | None = None

    def to_dict(self) -> dict:
        """JSON-ready: absent sections and fields (None) are left out."""
        return _drop_none(asdict(self))

    def limits(self) -> dict:
        """The limit fields alone, same names (``memory.max``, ``pids.max``, ``cpu.quota_us``)."""
        out = {}
        for section, values in self.to_dict().items():
            kept = {k: v for k, v in values.items() if k in LIMIT_FIELDS.get(section, ())}
            if kept:
                out[section] = kept
        return out


LIMIT_FIELDS = {"memory": ("max", "high", "low", "swap_max"),
                "cpu": ("quota_us", "period_us", "weight", "shares"), "pids": ("max",),
                "cpuset": ("cpus", "mems"), "io": ("max",)}


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


COUNTERS = frozenset(("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled",
                      "throttled_usec", "rbytes", "wbytes", "rios", "wios"))


def delta(before: Figures, after: Figures) -> dict:
    """Counter differences between two readings: cpu time and throttling, io, and every
    ``events`` counter (gauges and limits such as current or max are not counters)."""
    out: dict = {}
    old, new = before.to_dict(), after.to_dict()
    for section, values in new.items():
        prev = old.get(section, {})
        diff = {key: value - prev.get(key, 0) for key, value in values.items()
                if key in COUNTERS and isinstance(value, int)}
        events = {key: value - prev.get("events", {}).get(key, 0)
                  for key, value in values.get("events", {}).items()}
        if events:
            diff["events"] = events
        if diff:
            out[section] = diff
    return out


# ---------------------------------------------------------------------------------- the reader


def read_figures(dirs: dict[str, str], version: int) -> Figures:
    """The figures of one cgroup from its directories: ``dirs`` maps each hierarchy's key (a
    v1 controller, or layout.UNIFIED for the cgroup2 one) to the cgroup's directory there;
    ``version`` is the controllers' cgroup version (2 only when unified). On a hybrid host the
    cgroup2 directory still supplies pressure (PSI)."""
    unified = dirs.get(UNIFIED)
    if version == 2:
        if unified is None:
            return Figures()
        return Figures(memory=_memory_v2(unified), cpu=_cpu_v2(unified), pids=_pids(unified),
                       io=_io_v2(unified), cpuset=_cpuset(unified, "cpuset.cpus.effective",
                                                          "cpuset.mems.effective"),
                       freezer=_freezer_v2(unified), devices=_devices_v2(unified))
    cpuset_dir, freezer_dir, devices_dir = (dirs.get(n) for n in ("cpuset", "freezer", "devices"))
    return Figures(
        memory=_memory_v1(dirs.get("memory"), unified),
        cpu=_cpu_v1(dirs.get("cpu"), dirs.get("cpuacct"), unified),
        pids=_pids(dirs["pids"]) if "pids" in dirs else None,
        io=_io_v1(dirs.get("blkio"), unified),
        cpuset=_cpuset(cpuset_dir, "cpuset.effective_cpus", "cpuset.effective_mems")
        if cpuset_dir else None,
        freezer=_freezer_v1(freezer_dir) if freezer_dir else None,
        devices=_devices_v1(devices_dir) if devices_dir else None)


def _pressure(unified: str | None, resource: str) -> dict | None:
    if unified is None:
        return None
    try:
        return fs.read_nested(unified, f"{resource}.pressure")
    except OSError:     # PSI disabled at boot: the file exists but reads EOPNOTSUPP
        return None


def _memory_v2(d: str) -> Memory | None:
    current = fs.read_int(d, "memory.current")
    if current is None:
        return None
    events = fs.read_keyed(d, "memory.events") or {}
    return Memory(current=current, peak=fs.read_int(d, "memory.peak"),
                  max=fs.read_int(d, "memory.max"), high=fs.read_int(d, "memory.high"),
                  low=fs.read_int(d, "memory.low"),
                  swap_current=fs.read_int(d, "memory.swap.current"),
                  swap_max=fs.read_int(d, "memory.swap.max"),
                  inactive_file=(fs.read_keyed(d, "memory.stat") or {}).get("inactive_file"),
                  events=MemoryEvents(**{k: events.get(k) for k in
                                         ("low", "high", "max", "oom", "oom_kill")}),
                  pressure=_pressure(d, "memory"))


def _memory_v1(d: str | None, unified: str | None) -> Memory | None:
    current = fs.read_int(d, "memory.usage_in_bytes") if d else None
    if current is None:
        return None
    limit = fs.read_int(d, "memory.limit_in_bytes")
    memsw = fs.read_int(d, "memory.memsw.limit_in_bytes")
    swap = None if memsw is None else -1 if -1 in (memsw, limit) or limit is None \
        else memsw - limit
    oom = fs.read_keyed(d, "memory.oom_control") or {}
    stat = fs.read_keyed(d, "memory.stat") or {}
    return Memory(current=current, peak=fs.read_int(d, "memory.max_usage_in_bytes"), max=limit,
                  low=fs.read_int(d, "memory.soft_limit_in_bytes"), swap_max=swap,
                  inactive_file=stat.get("total_inactive_file"),
                  events=MemoryEvents(max=fs.read_int(d, "memory.failcnt"),
                                      oom_kill=oom.get("oom_kill")),
                  pressure=_pressure(unified, "memory"))


def _cpu_v2(d: str) -> Cpu | None:
    stat = fs.read_keyed(d, "cpu.stat")
    if stat is None:
        return None
    quota = period = None
    limit = fs.read_value(d, "cpu.max")   # only with the cpu controller enabled
    if limit is not None:
        text, _, period_text = limit.partition(" ")
        quota, period = fs.parse_int(text), int(period_text) if period_text else None
    return Cpu(**{k: stat.get(k) for k in ("usage_usec", "user_usec", "system_usec",
                                           "nr_periods", "nr_throttled", "throttled_usec")},
               quota_us=quota, period_us=period, weight=fs.read_int(d, "cpu.weight"),
               pressure=_pressure(d, "cpu"))


def _usec(directory: str | None, name: str) -> int | None:
    value = fs.read_int(directory, name) if directory else None
    return None if value is None else value // 1000


def _cpu_v1(cpu: str | None, cpuacct: str | None, unified: str | None) -> Cpu | None:
    stat = fs.read_keyed(cpu, "cpu.stat") if cpu else None
    usage = _usec(cpuacct, "cpuacct.usage")
    if stat is None and usage is None:
        return None
    stat = stat or {}
    throttled = stat.get("throttled_time")
    return Cpu(usage_usec=usage, user_usec=_usec(cpuacct, "cpuacct.usage_user"),
               system_usec=_usec(cpuacct, "cpuacct.usage_sys"),
               nr_periods=stat.get("nr_periods"), nr_throttled=stat.get("nr_throttled"),
               throttled_usec=None if throttled is None else throttled // 1000,
               quota_us=fs.read_int(cpu, "cpu.cfs_quota_us") if cpu else None,
               period_us=fs.read_int(cpu, "cpu.cfs_period_us") if cpu else None,
               shares=fs.read_int(cpu, "cpu.shares") if cpu else None,
               pressure=_pressure(unified, "cpu"))


def _pids(d: str) -> Pids | None:
    current = fs.read_int(d, "pids.current")
    if current is None:
        return None
    events = fs.read_keyed(d, "pids.events") or {}
    return Pids(current=current, peak=fs.read_int(d, "pids.peak"), max=fs.read_int(d, "pids.max"),
                events=PidsEvents(max=events.get("max", 0)))


_IO_KEYS = ("rbytes", "wbytes", "rios", "wios")


def _io_v2(d: str) -> Io | None:
    stat = fs.read_nested(d, "io.stat")
    if stat is None:
        return None
    return Io(**fs.sum_by_key(stat.values(), _IO_KEYS), devices=stat,
              max=fs.read_nested(d, "io.max"), pressure=_pressure(d, "io"))


def _io_v1(d: str | None, unified: str | None) -> Io | None:
    if d is None:
        return None
    devices: dict[str, dict[str, int]] = {}
    found = False
    for name, (read_key, write_key) in (("blkio.throttle.io_service_bytes", ("rbytes", "wbytes")),
                                        ("blkio.throttle.io_serviced", ("rios", "wios"))):
        text = fs.read_value(d, name)
        if text is None:
            continue
        found = True
        for line in text.splitlines():   # "MAJ:MIN Read N" ... "Total N"
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                key = read_key if parts[1] == "Read" else write_key
                devices.setdefault(parts[0], {})[key] = int(parts[2])
    if not found:
        return None
    return Io(**fs.sum_by_key(devices.values(), _IO_KEYS), devices=devices,
              pressure=_pressure(unified, "io"))


def _cpuset(d: str, cpus_effective: str, mems_effective: str) -> Cpuset | None:
    values = fs.read_fields(d, (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems"),
                                ("cpus_effective", cpus_effective),
                                ("mems_effective", mems_effective)))
    return None if values is None else Cpuset(**values)


def _freezer_v2(d: str) -> Freezer | None:
    events = fs.read_keyed(d, "cgroup.events")
    if events is None:
        return None
    frozen = events.get("frozen") == 1
    return Freezer(state="FROZEN" if frozen else "THAWED", frozen=frozen,
                   populated=events.get("populated") == 1)


def _freezer_v1(d: str) -> Freezer | None:
    state = fs.read_value(d, "freezer.state")
    return None if state is None else Freezer(state=state, frozen=state == "FROZEN")


def _devices_v2(d: str) -> Devices | None:
    from .v2.devices import attached

    programs = attached(d) if os.path.isdir(d) else None
    return None if programs is None else Devices(enforced=bool(programs), programs=len(programs))


def _devices_v1(d: str) -> Devices | None:
    listing = fs.read_value(d, "devices.list")
    return None if listing is None else Devices(enforced=True, list=listing.splitlines())
