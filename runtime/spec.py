"""What a user asks for when starting a container, validated before the host is touched.

Like runc's config validation, every check runs before any directory, cgroup or namespace is
created, so bad input never leaves anything behind.
"""

from __future__ import annotations

from isoinspect.runtime import units
from isoinspect.runtime.cgroups.resources import DEFAULT_DEVICE_RULES, PIDS_MAX, Resources
from isoinspect.runtime.errors import UsageError

NETWORK_MODES = ("none", "host", "bridge")  # or the name of a user-defined network
DEFAULT_NETWORK = "bridge"
DEFAULT_NAMESPACES = ("mnt", "pid", "uts", "ipc", "net", "cgroup")


def check_network(name: str) -> None:
    """--network is none, host, bridge or a network made by ``network create``."""
    if name not in NETWORK_MODES:
        from isoinspect.runtime.network.store import require_network
        require_network(name)


class ContainerSpec:
    """A container to create: image, command, environment, limits, isolation options.

    Limits are already parsed (bytes, CFS quota) here; ``from_flags`` parses Docker-style
    strings for the CLI, while library callers may pass numbers directly.
    """

    __slots__ = ("image", "command", "name", "env", "workdir", "user", "hostname", "read_only",
                 "memory", "memory_swap", "cpu_quota_us", "cpu_period_us", "cpu_shares",
                 "cpuset_cpus", "pids_limit", "network", "remove", "detach", "userns",
                 "cap_add", "cap_drop", "seccomp", "entrypoint", "labels", "publish",
                 "blkio_read_bps", "blkio_write_bps", "device_rules", "mounts", "tty",
                 "interactive")

    def __init__(self, image: str, command: list[str] | None = None, *, name: str | None = None,
                 env: list[str] | None = None, workdir: str | None = None,
                 user: str | None = None, hostname: str | None = None, read_only: bool = False,
                 memory: int | None = None, memory_swap: int | None = None,
                 cpu_quota_us: int | None = None, cpu_period_us: int = units.CFS_PERIOD_US,
                 cpu_shares: int | None = None, cpuset_cpus: str | None = None,
                 pids_limit: int | None = None, network: str = DEFAULT_NETWORK,
                 remove: bool = False, detach: bool = False, userns: bool = False,
                 cap_add: list[str] | None = None, cap_drop: list[str] | None = None,
                 seccomp: bool = True,
                 entrypoint: list[str] | None = None, labels: dict | None = None,
                 publish: list[str] | None = None,
                 blkio_read_bps: list[tuple[int, int, int]] | None = None,
                 blkio_write_bps: list[tuple[int, int, int]] | None = None,
                 device_rules: list[tuple] | None = None, mounts: list | None = None,
                 tty: bool = False, interactive: bool = False) -> None:
        self.image = image
        self.command = list(command or [])
        self.name = name
        self.env = list(env or [])
        self.workdir = workdir
        self.user = user
        self.hostname = hostname
        self.read_only = read_only
        self.memory = memory or None  # Docker: 0 means no limit
        self.memory_swap = memory_swap or None
        self.cpu_quota_us = cpu_quota_us
        self.cpu_period_us = cpu_period_us
        self.cpu_shares = cpu_shares
        self.cpuset_cpus = cpuset_cpus
        self.pids_limit = pids_limit
        self.network = network
        self.remove = remove
        self.detach = detach
        self.userns = userns
        self.cap_add = list(cap_add or [])
        self.cap_drop = list(cap_drop or [])
        self.seccomp = seccomp
        self.entrypoint = entrypoint
        self.labels = dict(labels or {})
        self.publish = list(publish or [])
        self.blkio_read_bps = [tuple(item) for item in blkio_read_bps or ()] or None
        self.blkio_write_bps = [tuple(item) for item in blkio_write_bps or ()] or None
        # extra (type, major, minor, access, allow) rules after Docker's default allow-list
        self.device_rules = [tuple(rule) for rule in device_rules or ()]
        # bind mounts as BindMount.as_tuple() (runtime/bind_mounts.py): they marshal
        self.mounts = [tuple(item) for item in mounts or ()]
        self.tty = tty  # -t: a pseudo-terminal for the command
        self.interactive = interactive  # -i: relay the caller's stdin (with -t)
        self.validate()

    @classmethod
    def from_flags(cls, image: str, command: list[str], *, memory: str | None = None,
                   memory_swap: str | None = None, cpus: str | None = None,
                   cpu_shares: str | None = None, cpuset_cpus: str | None = None,
                   pids_limit: str | None = None, env: list[str] | tuple = (),
                   user: str | None = None, device_read_bps: list[str] | tuple = (),
                   device_write_bps: list[str] | tuple = (),
                   device_cgroup_rules: list[str] | tuple = (), volumes: list[str] | tuple = (),
                   mounts: list[str] | tuple = (), env_files: list[str] | tuple = (),
                   **rest) -> "ContainerSpec":
        """Build a spec from the CLI's strings (``--memory 64m``, ``--cpus 0.5``, ...)."""
        quota = units.parse_cpus(cpus)[0] if cpus is not None else None
        return cls(
            image, command,
            memory=units.parse_bytes(memory) if memory is not None else None,
            memory_swap=units.parse_memory_swap(memory_swap) if memory_swap is not None else None,
            cpu_quota_us=quota,
            cpu_shares=units.parse_int(cpu_shares, "--cpu-shares", 2)
            if cpu_shares is not None else None,
            cpuset_cpus=units.parse_cpuset(cpuset_cpus) if cpuset_cpus is not None else None,
            pids_limit=units.parse_int(pids_limit, "--pids-limit", -1, PIDS_MAX)
            if pids_limit is not None else None,
            env=_env_files(env_files) + units.parse_env(list(env)),
            mounts=_bind_mounts(volumes, mounts),
            blkio_read_bps=[parse_device_rate(v, "--device-read-bps") for v in device_read_bps],
            blkio_write_bps=[parse_device_rate(v, "--device-write-bps")
                             for v in device_write_bps],
            device_rules=[parse_device_cgroup_rule(v) for v in device_cgroup_rules],
            user=user, **rest)

    def validate(self) -> None:
        """Cross-field checks; raises UsageError with one line naming the problem."""
        check_network(self.network)
        if self.publish:
            if self.network in ("none", "host"):
                raise UsageError(f"-p needs a bridge network, not --network {self.network}")
            from isoinspect.runtime.network.ports import check_unique, parse_publish
            check_unique([parse_publish(item) for item in self.publish])
        if self.name is not None:
            from isoinspect.runtime.records import validate_name
            validate_name(self.name)
        if self.memory is not None and self.memory < 6 * 1024 * 1024:
            raise UsageError("minimum memory limit allowed is 6MB")
        if self.memory_swap is not None and self.memory_swap != -1:
            if self.memory is None:
                raise UsageError("you should always set --memory when using --memory-swap")
            if self.memory_swap < self.memory:
                raise UsageError("--memory-swap must be larger than or equal to --memory")
        if self.cpu_shares is not None and not 2 <= self.cpu_shares <= 262144:
            raise UsageError("--cpu-shares must be between 2 and 262144")
        if self.user is not None:
            units.parse_user(self.user)
        if self.workdir is not None and not self.workdir.startswith("/"):
            raise UsageError(f"the working directory {self.workdir!r} is invalid: it needs "
                                  "to be an absolute path")
        if self.hostname is not None and (not 0 < len(self.hostname) <= 64
                                          or "/" in self.hostname):
            raise UsageError(f"invalid hostname {self.hostname!r}")
        if self.cap_add or self.cap_drop:
            from isoinspect.runtime.linux.capabilities import parse_capabilities
            try:
                parse_capabilities(self.cap_add, self.cap_drop)
            except ValueError as exc:
                raise UsageError(f"invalid capability: {exc}") from None
        try:
            self.resources()
        except ValueError as exc:  # a library caller's numbers out of the kernel's range
            raise UsageError(str(exc)) from None

    def resources(self) -> Resources:
        """The cgroup limits this spec asks for (validated by Resources itself)."""
        return Resources(memory=self.memory, memory_swap=self.memory_swap,
                         cpu_quota_us=self.cpu_quota_us, cpu_period_us=self.cpu_period_us,
                         cpu_shares=self.cpu_shares, cpuset_cpus=self.cpuset_cpus,
                         pids_limit=self.pids_limit,
                         device_rules=list(DEFAULT_DEVICE_RULES) + list(self.device_rules),
                         blkio_read_bps=self.blkio_read_bps,
                         blkio_write_bps=self.blkio_write_bps)

    def to_dict(self) -> dict:
        return {slot: getattr(self, slot) for slot in self.__slots__}


def _env_files(paths: list[str] | tuple) -> list[str]:
    if not paths:
        return []
    from isoinspect.runtime.env_file import read_env_file
    return [item for path in paths for item in read_env_file(path)]


def _bind_mounts(volumes: list[str] | tuple, mounts: list[str] | tuple) -> list[tuple]:
    """-v then --mount values, parsed and checked (runtime/bind_mounts.py) as tuples."""
    if not volumes and not mounts:
        return []
    from isoinspect.runtime.bind_mounts import parse_mount, parse_volume
    parsed = [parse_volume(v) for v in volumes] + [parse_mount(m) for m in mounts]
    seen = set()
    for mount in parsed:
        if mount.destination in seen:
            raise UsageError(f"duplicate mount point: {mount.destination}")
        seen.add(mount.destination)
    return [mount.as_tuple() for mount in parsed]


def parse_device_cgroup_rule(value: str) -> tuple:
    """Docker's ``--device-cgroup-rule 'c 1:3 rwm'`` (type a/b/c, major and minor numbers or *,
    access r/w/m) -> an allowing (type, major, minor, access, True) rule."""
    parts = value.split() if isinstance(value, str) else []
    numbers = parts[1].split(":") if len(parts) == 3 else []
    access = parts[2] if len(parts) == 3 else ""
    if (len(numbers) != 2 or parts[0] not in ("a", "b", "c")
            or not all(n == "*" or (n.isdigit() and int(n) < 1 << 31) for n in numbers)
            or not access or set(access) - set("rwm") or len(set(access)) != len(access)):
        raise UsageError(f"invalid --device-cgroup-rule {value!r}: expected e.g. "
                              "'c 1:3 rwm' (type a, b or c; major:minor numbers or *; r, w, m)")
    major, minor = (None if n == "*" else int(n) for n in numbers)
    return parts[0], major, minor, access, True


def parse_device_rate(value: str, flag: str) -> tuple[int, int, int]:
    """Docker's ``--device-write-bps /dev/sda:1mb``: (major, minor, bytes per second) of a
    block device; a path that is not a block device is a one-line error."""
    import os
    import stat

    path, sep, rate = value.rpartition(":")
    if not sep or not path:
        raise UsageError(f"invalid value {value!r} for {flag}: expected DEVICE:RATE")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{flag}: {path}: {exc.strerror}") from None
    if not stat.S_ISBLK(info.st_mode):
        raise UsageError(f"{flag}: {path} is not a block device")
    return os.major(info.st_rdev), os.minor(info.st_rdev), units.parse_bytes(rate, flag)
