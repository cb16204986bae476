"""Host-kernel exposure: which host system calls a set of processes made, counted in the kernel.

    with SyscallCounter() as counter:          # TracerUnavailable: one line (no BCC, not root)
        counter.watch_cgroup(cgroup_id)         # and/or watch_pid(pid): the pid tree
        before = counter.snapshot()             # counting from here
        ...                                      # the window
        after = counter.snapshot(counting=False)
        figures = summarize(after.minus(before), seconds, counter.comms)

The counting is the ``syscall_counts`` probe (per-CPU BPF maps, nothing per event to user
space) loaded through the inspector's one :class:`Tracer` (pre-flight, BPF run-time stats,
the shared cgroup-id + pid-tree filter). ``summarize`` turns map counts into the figures a
table and a RunRecord show; it is pure, so it is unit-tested without BPF.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from .probes import syscall_counts
from .probes.syscall_counts import Counts
from .syscall_names import errno_name, name_of


@dataclass
class SyscallRow:
    name: str
    nr: int
    calls: int
    failed: int = 0


@dataclass
class ErrorRow:
    name: str
    errno: str
    calls: int


@dataclass
class ProcessRow:
    tgid: int
    comm: str
    calls: int


@dataclass
class ExposureFigures:
    """One window's host system calls, ready for a table or a RunRecord."""

    seconds: float
    total: int
    distinct: int
    per_second: float
    failed: int
    failed_share: float
    top: list[SyscallRow] = field(default_factory=list)
    top_errors: list[ErrorRow] = field(default_factory=list)
    processes: list[ProcessRow] = field(default_factory=list)
    calls_by_name: dict[str, int] = field(default_factory=dict)
    calls_by_process: dict[str, int] = field(default_factory=dict)   # process name -> calls
    missed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(counts: Counts, seconds: float, comms: dict[int, str] | None = None,
              top: int = 10) -> ExposureFigures:
    """Map counts of one window -> totals, distinct syscalls, rate, failed share, top lists."""
    comms = comms or {}
    total = sum(counts.calls.values())
    failed_by_nr: dict[int, int] = {}
    for (nr, _code), calls in counts.errors.items():
        failed_by_nr[nr] = failed_by_nr.get(nr, 0) + calls
    failed = sum(failed_by_nr.values())
    ranked = sorted(counts.calls.items(), key=lambda item: (-item[1], item[0]))
    rows = [SyscallRow(name_of(nr), nr, calls, failed_by_nr.get(nr, 0)) for nr, calls in ranked]
    errors = sorted(counts.errors.items(), key=lambda item: (-item[1], item[0]))
    processes = sorted(counts.tgids.items(), key=lambda item: (-item[1], item[0]))
    by_process: dict[str, int] = {}
    for tgid, calls in processes:
        name = comms.get(tgid, "?")
        by_process[name] = by_process.get(name, 0) + calls
    return ExposureFigures(
        seconds=round(seconds, 3), total=total, distinct=len(counts.calls),
        per_second=round(total / seconds, 1) if seconds > 0 else 0.0,
        failed=failed, failed_share=round(failed / total, 4) if total else 0.0,
        top=rows[:top],
        top_errors=[ErrorRow(name_of(nr), errno_name(code), calls)
                    for (nr, code), calls in errors[:top]],
        processes=[ProcessRow(tgid, comms.get(tgid, "?"), calls)
                   for tgid, calls in processes[:top]],
        calls_by_name={row.name: row.calls for row in rows},
        calls_by_process=dict(sorted(by_process.items(), key=lambda item: -item[1])),
        missed=counts.missed)


def comm_of(pid: int, proc: str = "/proc") -> str | None:
    """A process's name for readers: runsc's processes are all ``exe``, so its first argument
    (runsc-sandbox, runsc-gofer) names them when the comm does not."""
    try:
        with open(f"{proc}/{pid}/comm") as handle:
            comm = handle.read().strip()
        with open(f"{proc}/{pid}/cmdline", "rb") as handle:
            argv0 = handle.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return None
    base = os.path.basename(argv0)
    return base if comm == "exe" and base else comm


class SyscallCounter:
    """The syscall_counts probe loaded once; watch sets and snapshots for any number of
    windows. Raises ``TracerUnavailable`` (one line) without root, tracefs or BCC."""

    def __init__(self) -> None:
        from .tracer import Tracer

        self.tracer = Tracer(probes=(syscall_counts.NAME,), keep=False)
        self.bpf = self.tracer.bpf
        self.comms: dict[int, str] = {}

    # -- what is watched -------------------------------------------------------------------
    def watch_cgroup(self, cgroup_id: int) -> None:
        self.tracer.watch_cgroup(cgroup_id)

    def watch_pid(self, pid: int) -> None:
        """``pid`` and every process it forks from now on."""
        self.tracer.watch_pid(pid)

    def watch_children_of(self, pid: int) -> None:
        """Processes ``pid`` forks from now on (and theirs), not ``pid`` itself."""
        syscall_counts.add_spawner(self.bpf, pid)

    def unwatch_children_of(self, pid: int) -> None:
        syscall_counts.remove_spawner(self.bpf, pid)

    def unwatch_all(self) -> None:
        for name in (b"filter_cgroups", b"filter_pids", b"spawners"):
            self.bpf[name].clear()

    def watched_pids(self) -> list[int]:
        return sorted(int(key.value) for key in self.bpf[b"filter_pids"].keys())

    # -- reading ---------------------------------------------------------------------------
    def snapshot(self, counting: bool = True) -> Counts:
        """The maps' totals, read with counting paused (so they agree with each other);
        counting is then on or off as asked (off: between windows)."""
        syscall_counts.set_gate(self.bpf, False)
        counts = syscall_counts.snapshot(self.bpf)
        syscall_counts.set_gate(self.bpf, counting)
        self.note_comms(counts.tgids)
        for pid, name in syscall_counts.exited_comms(self.bpf).items():
            self.comms.setdefault(pid, name)
        return counts

    def note_comms(self, pids) -> None:
        """Remember names while the processes exist (a window's summary may come later)."""
        for pid in pids:
            if pid not in self.comms:
                name = comm_of(pid)
                if name:
                    self.comms[pid] = name

    def cost(self) -> dict:
        """The programs' own run time since load (kernel BPF stats) and lost events."""
        return self.tracer.cost()

    def close(self) -> None:
        self.tracer.close()

    def __enter__(self) -> "SyscallCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cost_between(before: dict, after: dict) -> dict:
    """The BPF cost of one window from two ``cost()`` readings. ``lost_events`` is 0 by
    construction (the probe sends no events); ``missed`` counts a full per-CPU hash."""
    runs = after["run_cnt"] - before["run_cnt"]
    run_ns = after["run_time_ns"] - before["run_time_ns"]
    return {"bpf_stats": after.get("bpf_stats"), "run_cnt": runs, "run_time_ns": run_ns,
            "ns_per_run": round(run_ns / runs, 1) if runs else 0.0,
            "lost_events": after.get("lost_events", 0), "programs": after.get("programs"),
            "lost_note": "0 by construction: counts stay in BPF maps, no per-event buffer"}
