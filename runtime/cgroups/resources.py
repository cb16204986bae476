"""Resource limits for one container, validated before the host is touched.

``Resources`` is a plain class (``__slots__`` and a keyword ``__init__``): dataclasses cost an
import on the container start path. Every field defaults to None, meaning "leave the kernel's
(inherited) setting alone"; the drivers write only the fields that are set.

Validation is a list of small named checks (as in runc's validator): each raises ValueError with
a one-line message, ``validate()`` runs them all and is also called by ``__init__`` and by every
driver's ``apply()``.
"""

from __future__ import annotations

# (type, major, minor, access, allow): type 'a' (all), 'b' (block) or 'c' (char); major/minor None
# for "*"; access a combination of r (read), w (write), m (mknod).
DEFAULT_DEVICE_RULES = (
    ("a", None, None, "rwm", False),  # deny everything, then allow Docker's standard set
    ("c", None, None, "m", True),     # mknod any char device (opening it is still denied)
    ("b", None, None, "m", True),     # mknod any block device
    ("c", 1, 3, "rwm", True),         # /dev/null
    ("c", 1, 5, "rwm", True),         # /dev/zero
    ("c", 1, 7, "rwm", True),         # /dev/full
    ("c", 5, 0, "rwm", True),         # /dev/tty
    ("c", 5, 1, "rwm", True),         # /dev/console
    ("c", 5, 2, "rwm", True),         # /dev/ptmx
    ("c", 1, 8, "rwm", True),         # /dev/random
    ("c", 1, 9, "rwm", True),         # /dev/urandom
    ("c", 136, None, "rwm", True),    # /dev/pts/*
)

CPU_PERIOD_DEFAULT = 100000
SHARES_MIN, SHARES_MAX = 2, 262144
INT64_MAX = (1 << 63) - 1  # cgroup files hold (signed) 64-bit numbers; more is an error
CPUS_MAX = 8192  # the kernel's largest NR_CPUS: a cpuset list names CPUs below it
PIDS_MAX = 4194304  # the kernel's PID_MAX_LIMIT: pids.max refuses anything above (EINVAL)

_FIELDS = (
    "memory", "memory_swap", "memory_reservation",
    "cpu_quota_us", "cpu_period_us", "cpu_shares", "cpuset_cpus", "cpuset_mems",
    "pids_limit", "device_rules",
    "blkio_read_bps", "blkio_write_bps", "blkio_read_iops", "blkio_write_iops",
    "blkio_weight", "cpu_rt_period_us", "cpu_rt_runtime_us",
)
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000
BLKIO_FIELDS = ("blkio_read_bps", "blkio_write_bps", "blkio_read_iops", "blkio_write_iops")


class Resources:
    """Limits for one cgroup. Sizes are bytes; -1 means "unlimited" where noted.

    memory               hard limit (v1 memory.limit_in_bytes, v2 memory.max); -1 unlimited
    memory_swap          memory + swap in total, like Docker's --memory-swap; -1 unlimited swap;
                         needs ``memory``; v2 writes memory.swap.max = memory_swap - memory
    memory_reservation   soft limit (v1 memory.soft_limit_in_bytes, v2 memory.low)
    cpu_quota_us         CFS quota per period; -1 unlimited. ``cpus=0.5`` sets it from a CPU count
    cpu_period_us        CFS period (default 100000), written only together with the quota
    cpu_shares           v1 shares 2..262144; v2 writes cpu.weight = shares_to_weight(shares)
    cpuset_cpus/_mems    list syntax, e.g. "0-1,3"
    pids_limit           max tasks; -1 or 0 unlimited
    device_rules         (type, major, minor, access, allow) rules applied in order
                         (e.g. DEFAULT_DEVICE_RULES): v1 writes devices.allow/deny, v2 attaches
                         an eBPF device program built from them (v2/devices.py)
    blkio_*              lists of (major, minor, value): bytes/s or IO/s per block device
    blkio_weight         proportional I/O weight 10..1000 (v1 blkio[.bfq].weight, v2
                         io[.bfq].weight): only where an I/O scheduler offers one (BFQ/CFQ)
    cpu_rt_period_us     real-time scheduling budget (v1 cpu.rt_period_us / cpu.rt_runtime_us,
    cpu_rt_runtime_us    kernels with RT group scheduling); cgroup v2 has none: refused there
    """

    __slots__ = _FIELDS

    def __init__(self, *, memory: int | None = None, memory_swap: int | None = None,
                 memory_reservation: int | None = None, cpu_quota_us: int | None = None,
                 cpu_period_us: int = CPU_PERIOD_DEFAULT, cpu_shares: int | None = None,
                 cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
                 pids_limit: int | None = None,
                 device_rules: list[tuple] | tuple | None = None,
                 blkio_read_bps: list[tuple[int, int, int]] | None = None,
                 blkio_write_bps: list[tuple[int, int, int]] | None = None,
                 blkio_read_iops: list[tuple[int, int, int]] | None = None,
                 blkio_write_iops: list[tuple[int, int, int]] | None = None,
                 blkio_weight: int | None = None, cpu_rt_period_us: int | None = None,
                 cpu_rt_runtime_us: int | None = None, cpus: float | None = None) -> None:
        self.memory = memory
        self.memory_swap = memory_swap
        self.memory_reservation = memory_reservation
        self.cpu_period_us = cpu_period_us
        self.cpu_quota_us = cpu_quota_us
        if cpus is not None:
            if cpu_quota_us is not None:
                raise ValueError("resources: give either cpus or cpu_quota_us, not both")
            self.cpu_quota_us = cpus_to_quota(cpus, cpu_period_us)
        self.cpu_shares = cpu_shares
        self.cpuset_cpus = cpuset_cpus
        self.cpuset_mems = cpuset_mems
        self.pids_limit = pids_limit
        self.device_rules = None if device_rules is None else [tuple(r) for r in device_rules]
        self.blkio_read_bps = _throttle_list(blkio_read_bps)
        self.blkio_write_bps = _throttle_list(blkio_write_bps)
        self.blkio_read_iops = _throttle_list(blkio_read_iops)
        self.blkio_write_iops = _throttle_list(blkio_write_iops)
        self.blkio_weight = blkio_weight
        self.cpu_rt_period_us = cpu_rt_period_us
        self.cpu_rt_runtime_us = cpu_rt_runtime_us
        self.validate()

    def validate(self) -> None:
        """Run every check; raise ValueError (one line) at the first failure."""
        for check in CHECKS:
            check(self)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (tuples become lists)."""
        out = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if isinstance(value, list):
                value = [list(item) for item in value]
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Resources:
        """Inverse of to_dict(); unknown keys raise ValueError."""
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(f"resources: unknown field(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in data.items() if v is not None})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS
                           if getattr(self, name) is not None
                           and not (name == "cpu_period_us"
                                    and self.cpu_period_us == CPU_PERIOD_DEFAULT))
        return f"Resources({fields})"


def _throttle_list(value: list | None) -> list[tuple] | None:
    return None if value is None else [tuple(item) for item in value]


# ---- conversions -------------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) -> v2 cpu.weight (1..10000), runc's formula."""
    return 1 + ((shares - 2) * 9999) // 262142


def cpus_to_quota(cpus: float, period_us: int = CPU_PERIOD_DEFAULT) -> int:
    """A CPU count like Docker's --cpus (0.5) -> CFS quota in microseconds for ``period_us``."""
    if not isinstance(cpus, (int, float)) or isinstance(cpus, bool) or cpus <= 0:
        raise ValueError(f"resources: cpus must be a positive number, got {cpus!r}")
    return int(round(cpus * period_us))


def parse_size(text: str | int) -> int:
    """"64m" / "64MiB" / "1g" / "512k" / "1048576" -> bytes (binary units, like Docker); -1 stays."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if str(text).strip() == "-1":
        return -1
    from isoinspect.runtime.errors import UsageError
    from isoinspect.runtime.units import size_in_bytes

    try:
        return size_in_bytes(str(text))
    except UsageError as exc:
        raise ValueError(f"resources: bad size {text!r}: {exc}") from None


def parse_cpu_list(text: str) -> list[int]:
    """Expand a cpuset list ("0-2,5") into sorted numbers; ValueError on bad syntax."""
    numbers: set[int] = set()
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"resources: bad cpuset list {text!r} (expected e.g. '0-1,3')")
    for part in text.strip().split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"resources: bad cpuset list {text!r} (expected e.g. '0-1,3')")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"resources: bad cpuset range {part!r} in {text!r}")
        if last >= CPUS_MAX:  # checked before expanding: '0-99999999999' must not hang
            raise ValueError(f"resources: CPU {last} in {text!r} is beyond any kernel's "
                             f"limit ({CPUS_MAX - 1})")
        numbers.update(range(first, last + 1))
    return sorted(numbers)


def format_device_rule(rule: tuple) -> str:
    """(type, major, minor, access, allow) -> the v1 devices.allow/deny line, e.g. "c 1:3 rwm"."""
    kind, major, minor, access, _allow = rule
    if kind == "a":
        return "a *:* " + access
    return f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} {access}"


# ---- checks (each one small and named, run in order by validate()) ------------------------------

def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _limit(value: object, name: str) -> None:
    if value is not None and (not _is_int(value) or (value <= 0 and value != -1)
                              or value > INT64_MAX):
        raise ValueError(f"resources: {name} must be a positive number of bytes (at most "
                         f"{INT64_MAX}) or -1, got {value!r}")


def check_memory(res: Resources) -> None:
    _limit(res.memory, "memory")
    _limit(res.memory_reservation, "memory_reservation")
    swap = res.memory_swap
    _limit(swap, "memory_swap")
    if swap is None or swap == -1:
        return
    if res.memory is None or res.memory == -1:
        raise ValueError("resources: memory_swap needs a memory limit (it is memory + swap)")
    if swap < res.memory:
        raise ValueError(f"resources: memory_swap ({swap}) must be >= memory ({res.memory})")


def check_cpu(res: Resources) -> None:
    period = res.cpu_period_us
    if not _is_int(period) or not 1000 <= period <= 1000000:
        raise ValueError(f"resources: cpu_period_us must be 1000..1000000, got {period!r}")
    quota = res.cpu_quota_us
    if quota is not None and (not _is_int(quota) or (quota < 1000 and quota != -1)
                              or quota > INT64_MAX):
        raise ValueError(f"resources: cpu_quota_us must be 1000..{INT64_MAX} or -1, "
                         f"got {quota!r}")
    for name in ("cpu_rt_period_us", "cpu_rt_runtime_us"):
        value = getattr(res, name)
        if value is not None and (not _is_int(value) or value < -1 or value > INT64_MAX):
            raise ValueError(f"resources: {name} must be -1..{INT64_MAX}, got {value!r}")
    shares = res.cpu_shares
    if shares is not None and (not _is_int(shares) or not SHARES_MIN <= shares <= SHARES_MAX):
        raise ValueError(f"resources: cpu_shares must be {SHARES_MIN}..{SHARES_MAX}, "
                         f"got {shares!r}")


def check_cpuset(res: Resources) -> None:
    for value in (res.cpuset_cpus, res.cpuset_mems):
        if value is not None:
            parse_cpu_list(value)


def check_pids(res: Resources) -> None:
    limit = res.pids_limit
    if limit is not None and (not _is_int(limit) or not -1 <= limit <= PIDS_MAX):
        raise ValueError(f"resources: pids_limit must be -1..{PIDS_MAX} (-1 or 0: unlimited; "
                         f"the kernel allows no more), got {limit!r}")


def check_devices(res: Resources) -> None:
    for rule in res.device_rules or ():
        if len(rule) != 5:
            raise ValueError(f"resources: device rule {rule!r} is not "
                             "(type, major, minor, access, allow)")
        kind, major, minor, access, allow = rule
        if kind not in ("a", "b", "c"):
            raise ValueError(f"resources: device rule {rule!r}: type must be 'a', 'b' or 'c'")
        for number in (major, minor):
            if number is not None and (not _is_int(number) or not 0 <= number < 1 << 32):
                raise ValueError(f"resources: device rule {rule!r}: bad major/minor {number!r}")
        if (not isinstance(access, str) or not access or len(set(access)) != len(access)
                or set(access) - set("rwm")):
            raise ValueError(f"resources: device rule {rule!r}: access must combine r, w, m")
        if not isinstance(allow, bool):
            raise ValueError(f"resources: device rule {rule!r}: allow must be True or False")


def check_blkio(res: Resources) -> None:
    for name in BLKIO_FIELDS:
        for entry in getattr(res, name) or ():
            if len(entry) != 3 or not all(_is_int(v) and 0 <= v <= INT64_MAX for v in entry):
                raise ValueError(f"resources: {name} entry {entry!r} is not "
                                 "(major, minor, value) with integers 0..2^63-1")
    weight = res.blkio_weight
    if weight is not None and (not _is_int(weight)
                               or not BLKIO_WEIGHT_MIN <= weight <= BLKIO_WEIGHT_MAX):
        raise ValueError(f"resources: blkio_weight must be {BLKIO_WEIGHT_MIN}.."
                         f"{BLKIO_WEIGHT_MAX}, got {weight!r}")


CHECKS = (check_memory, check_cpu, check_cpuset, check_pids, check_devices, check_blkio)
