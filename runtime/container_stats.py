"""``isoinspect stats``: a container's live resource usage, computed as ``docker stats`` does.

One reading (``Usage``) comes from the cgroup's figures (runtime/cgroups/figures.py, v1 and v2
alike) and the container's network namespace (/proc/<pid>/net/dev); ``Stats`` is what two
readings give: CPU % is CPU time over wall time (Docker's cpu delta / system delta x online
CPUs is the same ratio), memory is usage minus inactive page cache, with the host's memory as
the limit when there is none, network and block I/O are totals.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from isoinspect.runtime import process
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.runtime import Runtime


@dataclass(frozen=True)
class Usage:
    """One reading of a container's counters (zeros for a container that is not running)."""

    monotonic_ns: int
    cpu_usec: int = 0
    memory: int = 0          # bytes in use, inactive page cache left out
    memory_limit: int = 0    # bytes (the host's memory when the cgroup has no limit)
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0


@dataclass(frozen=True)
class Stats:
    """A container's figures between two readings, as ``docker stats`` shows them."""

    id: str
    name: str
    cpu_percent: float
    memory: int
    memory_limit: int
    memory_percent: float
    net_rx: int
    net_tx: int
    block_read: int
    block_write: int
    pids: int


def host_memory() -> int:
    """MemTotal in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def network_bytes(pid: int, proc: str = "/proc") -> tuple[int, int]:
    """Received and sent bytes of every interface but lo in ``pid``'s network namespace."""
    rx = tx = 0
    try:
        with open(f"{proc}/{pid}/net/dev") as handle:
            lines = handle.read().splitlines()[2:]
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def read_usage(runtime: Runtime, record: ContainerState) -> Usage:
    """The container's counters now."""
    now = time.monotonic_ns()
    if record.status != Status.RUNNING or not process.is_alive(record.pid, record.pid_ticks):
        return Usage(now)
    figures = runtime.cgroup(record).stats()
    memory = cpu = read = written = pids = 0
    limit = host_memory()
    if figures.memory is not None:
        memory = figures.memory.current or 0
        inactive = figures.memory.inactive_file or 0
        memory = memory - inactive if inactive < memory else memory
        if figures.memory.max is not None and 0 <= figures.memory.max < limit:
            limit = figures.memory.max
    if figures.cpu is not None:
        cpu = figures.cpu.usage_usec or 0
    if figures.io is not None:
        read, written = figures.io.rbytes, figures.io.wbytes
    if figures.pids is not None:
        pids = figures.pids.current or 0
    rx = tx = 0
    if record.spec.get("network") != "host":  # the host's counters are not the container's
        rx, tx = network_bytes(record.pid)
    return Usage(now, cpu, memory, limit, rx, tx, read, written, pids)


def compute(record: ContainerState, before: Usage, after: Usage) -> Stats:
    """Stats from two readings of one container (CPU % from their difference)."""
    wall_usec = (after.monotonic_ns - before.monotonic_ns) / 1000
    cpu = 0.0
    if wall_usec > 0 and after.cpu_usec >= before.cpu_usec and before.cpu_usec:
        cpu = (after.cpu_usec - before.cpu_usec) / wall_usec * 100
    mem_percent = after.memory / after.memory_limit * 100 if after.memory_limit else 0.0
    return Stats(record.id, record.name, cpu, after.memory, after.memory_limit, mem_percent,
                 after.net_rx, after.net_tx, after.block_read, after.block_write, after.pids)


def sample(runtime: Runtime, records: list[ContainerState], previous: dict[str, Usage],
           interval: float) -> tuple[list[Stats], dict[str, Usage]]:
    """Stats of ``records``: read them all, wait ``interval`` if there is no earlier reading,
    read again. Returns the stats and the readings to pass as ``previous`` next time."""
    if any(record.id not in previous for record in records):
        previous = {**previous, **{r.id: read_usage(runtime, r) for r in records
                                   if r.id not in previous}}
        time.sleep(interval)
    readings = {record.id: read_usage(runtime, record) for record in records}
    return ([compute(record, previous[record.id], readings[record.id]) for record in records],
            readings)
