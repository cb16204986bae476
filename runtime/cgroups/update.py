"""Changing the limits of a live container's cgroup: the one code behind `isoinspect update`,
`isoinspect-runc update` and so Docker's `docker update` (containerd sends it to the runtime as
`update --resources -`).

An update names only what changes. The drivers write pairs of values together (the CFS quota
with its period; v2's swap as memory_swap - memory), so the missing half of a pair is read back
from the cgroup before ``Resources`` is built, as runc takes it from its saved config: updating
the quota alone keeps a 50 ms period. Nothing else is written, so a running container's device
rules are never rewritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .resources import CPU_PERIOD_DEFAULT, Resources


@dataclass(frozen=True)
class ResourceUpdate:
    """The limits to change (None: leave as it is). Units as in ``Resources``; -1 lifts a
    limit where ``Resources`` allows it."""

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    cpu_rt_period_us: int | None = None
    cpu_rt_runtime_us: int | None = None

    def changes(self) -> dict:
        """The fields set, by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(value: object, name: str) -> int | None:
    """An integer of a linux.resources section; 0 (Go's zero value) means "not set"."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"resources: {name} must be an integer, got {value!r}")
    return value or None


def _text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"resources: {name} must be a string, got {value!r}")
    return value or None


def from_oci(section: object) -> ResourceUpdate:
    """An OCI ``linux.resources`` object (runc's `update -r FILE`) -> the update it asks for.
    Sections an update cannot change here (devices, hugepages, network) are ignored, as runc
    does."""
    if not isinstance(section, dict):
        raise ValueError("resources: expected a JSON object (linux.resources)")
    parts = {}
    for key in ("memory", "cpu", "pids", "blockIO"):
        part = section.get(key) or {}
        if not isinstance(part, dict):
            raise ValueError(f"resources: {key} must be an object")
        parts[key] = part
    memory, cpu = parts["memory"], parts["cpu"]
    shares = _number(cpu.get("shares"), "cpu.shares")
    return ResourceUpdate(
        memory=_number(memory.get("limit"), "memory.limit"),
        memory_swap=_number(memory.get("swap"), "memory.swap"),
        memory_reservation=_number(memory.get("reservation"), "memory.reservation"),
        cpu_quota_us=_number(cpu.get("quota"), "cpu.quota"),
        cpu_period_us=_number(cpu.get("period"), "cpu.period"),
        cpu_shares=shares,
        cpuset_cpus=_text(cpu.get("cpus"), "cpu.cpus"),
        cpuset_mems=_text(cpu.get("mems"), "cpu.mems"),
        pids_limit=_number(parts["pids"].get("limit"), "pids.limit"),
        blkio_weight=_number(parts["blockIO"].get("weight"), "blockIO.weight"),
        cpu_rt_period_us=_number(cpu.get("realtimePeriod"), "cpu.realtimePeriod"),
        cpu_rt_runtime_us=_number(cpu.get("realtimeRuntime"), "cpu.realtimeRuntime"))


def resources_for(manager, update: ResourceUpdate) -> Resources:
    """The ``Resources`` that carry ``update`` to ``manager``'s cgroup, completed with its
    current values where a driver writes a pair (see the module docstring)."""
    values = update.changes()
    quota, period = update.cpu_quota_us, update.cpu_period_us
    needs_memory = update.memory_swap not in (None, -1) and update.memory is None
    current = manager.stats() if (quota is None) != (period is None) or needs_memory else None
    if (quota is None) != (period is None):
        cpu = current.cpu if current is not None else None
        if quota is None:
            quota = cpu.quota_us if cpu is not None and cpu.quota_us is not None else -1
        if period is None:
            period = cpu.period_us if cpu is not None and cpu.period_us else CPU_PERIOD_DEFAULT
        values["cpu_quota_us"], values["cpu_period_us"] = quota, period
    if needs_memory:
        memory = current.memory if current is not None else None
        if memory is not None and memory.max is not None:
            values["memory"] = memory.max
    return Resources(**values)


def apply_update(manager, update: ResourceUpdate) -> list[str]:
    """Write ``update`` to the container's cgroup; return the drivers' warnings."""
    if not update.changes():
        return []
    return manager.apply(resources_for(manager, update))
