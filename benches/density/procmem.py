"""Host memory as /proc shows it: a process's PSS (smaps_rollup), the process tree, MemAvailable.

PSS (proportional set size) charges each page to the processes mapping it in equal parts, so
the PSS of every process sums to the memory they use together: 32 shims sharing one binary
each carry 1/32 of its text. ``smaps_rollup`` (Linux 4.14+) sums a process's mappings in the
kernel in one read. Every reader takes ``proc`` (and ``meminfo``) so tests can use a fake tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROC = "/proc"
MEMINFO = "/proc/meminfo"
KIB = 1024


@dataclass(frozen=True)
class Rollup:
    """The PSS fields of one process's smaps_rollup, in bytes (0 where the kernel lacks one)."""

    rss: int = 0
    pss: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0

    def __add__(self, other: "Rollup") -> "Rollup":
        return Rollup(self.rss + other.rss, self.pss + other.pss,
                      self.pss_anon + other.pss_anon, self.pss_file + other.pss_file,
                      self.pss_shmem + other.pss_shmem)


_FIELDS = {"Rss:": "rss", "Pss:": "pss", "Pss_Anon:": "pss_anon", "Pss_File:": "pss_file",
           "Pss_Shmem:": "pss_shmem"}


def parse_smaps_rollup(text: str) -> Rollup:
    """``Pss:   12322 kB`` lines -> a Rollup in bytes; ValueError without a Pss line (an
    empty file is what a kernel thread or a process being reaped shows)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in _FIELDS:
            unit = parts[2] if len(parts) > 2 else "kB"
            if unit != "kB":
                raise ValueError(f"smaps_rollup: unexpected unit in {line!r}")
            found[_FIELDS[parts[0]]] = int(parts[1]) * KIB
    if "pss" not in found:
        raise ValueError("smaps_rollup: no Pss line")
    return Rollup(**found)


def read_rollup(pid: int, proc: str = PROC) -> Rollup | None:
    """The process's PSS figures; None when it is gone (or has no memory: a zombie)."""
    try:
        with open(f"{proc}/{pid}/smaps_rollup") as handle:
            return parse_smaps_rollup(handle.read())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ProcInfo:
    """One process: its parent and a readable name (argv[0]'s base name, else comm: runsc
    names its Sentry ``runsc-sandbox`` and its Gofer ``runsc-gofer`` in argv[0], comm ``exe``)."""

    pid: int
    ppid: int
    name: str


def read_proc(pid: int, proc: str = PROC) -> ProcInfo | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    close = stat.rindex(b")")
    comm = stat[stat.index(b"(") + 1:close].decode(errors="replace")
    fields = stat[close + 2:].split()
    name = comm
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as handle:
            argv0 = handle.read().split(b"\0", 1)[0].decode(errors="replace")
        if argv0:
            name = os.path.basename(argv0.split()[0]) if argv0.strip() else comm
    except OSError:
        pass
    return ProcInfo(pid, int(fields[1]), name)


def process_table(proc: str = PROC) -> dict[int, ProcInfo]:
    """Every process of the host (threads left out), by pid."""
    table = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            info = read_proc(int(entry), proc)
            if info is not None:
                table[info.pid] = info
    return table


def children_of(table: dict[int, ProcInfo]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for info in table.values():
        kids.setdefault(info.ppid, []).append(info.pid)
    return kids


def ancestors(pid: int, table: dict[int, ProcInfo]) -> list[int]:
    """``pid``'s parent, grandparent, ... up to pid 1 (excluded), nearest first."""
    out = []
    seen = {pid}
    current = table.get(pid)
    while current is not None and current.ppid > 1 and current.ppid not in seen:
        out.append(current.ppid)
        seen.add(current.ppid)
        current = table.get(current.ppid)
    return out


def descendants(pids: set[int], table: dict[int, ProcInfo]) -> set[int]:
    """``pids`` and every process below them."""
    kids = children_of(table)
    out, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(kids.get(pid, ()))
    return out


def mem_available(meminfo: str = MEMINFO) -> int:
    """MemAvailable from /proc/meminfo, bytes: what the kernel estimates could be allocated
    without swapping (free + reclaimable cache)."""
    with open(meminfo) as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * KIB
    raise ValueError(f"{meminfo}: no MemAvailable line")
