"""Host system calls of the watched processes, counted in the kernel (no event per call).

``raw_syscalls:sys_enter`` fires for every system call of the machine, so the shared filter
(``is_wanted()``: the watched cgroup ids, then the watched tgids and their forks) runs first and
nothing else is done for the rest of the machine. A watched call bumps three BPF maps:

* ``sc_calls``   per-CPU array, syscall nr -> calls (nr >= MAX_NR, e.g. x32, lands in OTHER_NR);
* ``sc_tgids``   per-CPU hash, tgid -> calls (which host process made them: Sentry, Gofer, QEMU);
* ``sc_gate``    closes the counting while user space reads the maps, so one snapshot's three
  maps agree (calls = the sum over tgids) and a window's bounds are exact;
* ``sc_errors``  per-CPU hash, (nr << 12 | errno) -> failed calls, from ``sys_exit``
  (ret in [-4095, -1]; the kernel's internal restart codes 512..516 included).

Per-CPU maps: increments never contend between CPUs and need no atomics; user space sums the
CPUs. Nothing goes through the ring buffer, so "lost events" is 0 by construction: a count can
only be missed if a per-CPU hash is full (``TGID_SLOTS``/``ERROR_SLOTS``), and ``sc_full``
counts those misses.

``spawners``: tgids whose *children* are watched but which are not themselves (a benchmark
process starting ``runc``, ``docker`` or QEMU: the start is counted, the harness is not).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

from .common import Parts

NAME = "syscall_counts"
TRACEPOINTS = ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit", "task:task_newtask",
               "sched:sched_process_exit")

MAX_NR = 1024
OTHER_NR = MAX_NR - 1
ERRNO_BITS = 12
TGID_SLOTS = 4096
ERROR_SLOTS = 4096

DECLARATIONS = r"""
#define SC_MAX_NR MAX_NR_VALUE
BPF_PERCPU_ARRAY(sc_calls, u64, SC_MAX_NR);           /* syscall nr -> calls */
BPF_PERCPU_HASH(sc_tgids, u32, u64, TGID_SLOTS_VALUE);   /* tgid -> calls */
BPF_PERCPU_HASH(sc_errors, u32, u64, ERROR_SLOTS_VALUE); /* nr << 12 | errno -> failed calls */
BPF_PERCPU_ARRAY(sc_full, u64, 1);                    /* counts missed: a per-CPU hash full */
BPF_HASH(spawners, u32, u8, 64);                      /* tgids whose children are watched */
BPF_ARRAY(sc_gate, u32, 1);                           /* 1: counting (a window is open) */
struct sc_comm_t { char comm[16]; };
BPF_HASH(sc_comms, u32, struct sc_comm_t, TGID_SLOTS_VALUE); /* exited tgid -> last name */

static __always_inline int sc_counting(void) {
    int zero = 0;
    u32 *open = sc_gate.lookup(&zero);
    return open && *open;
}

static __always_inline void sc_bump_hash_full(void) {
    int zero = 0;
    u64 *full = sc_full.lookup(&zero);
    if (full)
        (*full)++;
}
"""

ENTER = r"""
        if (sc_counting() && is_wanted()) {
            u32 nr = args->id;
            if (nr >= SC_MAX_NR)
                nr = SC_MAX_NR - 1;
            u64 *calls = sc_calls.lookup(&nr);
            if (calls)
                (*calls)++;
            u32 tgid = bpf_get_current_pid_tgid() >> 32;
            u64 zero = 0;
            u64 *mine = sc_tgids.lookup_or_try_init(&tgid, &zero);
            if (mine)
                (*mine)++;
            else
                sc_bump_hash_full();
        }
"""

EXIT = r"""
        if (sc_counting() && is_wanted()) {
            long ret = args->ret;
            if (ret < 0 && ret >= -4095) {
                u32 nr = args->id;
                if (nr >= SC_MAX_NR)
                    nr = SC_MAX_NR - 1;
                u32 key = (nr << ERRNO_BITS_VALUE) | (u32)(-ret);
                u64 zero = 0;
                u64 *failed = sc_errors.lookup_or_try_init(&key, &zero);
                if (failed)
                    (*failed)++;
                else
                    sc_bump_hash_full();
            }
        }
"""

# A spawner's new processes are watched (its threads are not: they are the spawner).
SPAWNED = r"""
        u32 spawner = bpf_get_current_pid_tgid() >> 32;
        if (!(args->clone_flags & CLONE_THREAD_FLAG) && spawners.lookup(&spawner)) {
            u32 spawned = args->pid;
            u8 yes = 1;
            filter_pids.update(&spawned, &yes);
        }
"""


# A watched process's last name (after its execs), kept when it exits: /proc has it no more.
EXITED = r"""
        if (args->group_dead && is_wanted()) {
            /* the last thread to exit may not be the main one (Go: runc, docker): args->pid
               is its tid, so the tgid comes from the task */
            u32 gone_tgid = bpf_get_current_pid_tgid() >> 32;
            struct sc_comm_t last = {};
            bpf_get_current_comm(&last.comm, sizeof(last.comm));
            sc_comms.update(&gone_tgid, &last);
        }
"""


def parts() -> Parts:
    out = Parts()
    out.declarations.append(
        DECLARATIONS.replace("MAX_NR_VALUE", str(MAX_NR))
        .replace("TGID_SLOTS_VALUE", str(TGID_SLOTS))
        .replace("ERROR_SLOTS_VALUE", str(ERROR_SLOTS)))
    out.add("raw_syscalls", "sys_enter", ENTER)
    out.add("raw_syscalls", "sys_exit", EXIT.replace("ERRNO_BITS_VALUE", str(ERRNO_BITS)))
    out.add("task", "task_newtask", SPAWNED)
    out.add("sched", "sched_process_exit", EXITED)
    return out


# ------------------------------------------------------------------------------- user space


@dataclass
class Counts:
    """The maps' totals at one moment (summed over CPUs); ``minus`` gives a window's counts."""

    calls: dict[int, int] = field(default_factory=dict)             # nr -> calls
    errors: dict[tuple[int, int], int] = field(default_factory=dict)  # (nr, errno) -> failed
    tgids: dict[int, int] = field(default_factory=dict)             # tgid -> calls
    missed: int = 0                                                 # a per-CPU hash was full

    def minus(self, before: "Counts") -> "Counts":
        def diff(now: dict, then: dict) -> dict:
            out = {key: value - then.get(key, 0) for key, value in now.items()}
            return {key: value for key, value in out.items() if value > 0}

        return Counts(diff(self.calls, before.calls), diff(self.errors, before.errors),
                      diff(self.tgids, before.tgids), self.missed - before.missed)


def split_error_key(key: int) -> tuple[int, int]:
    """``sc_errors`` key -> (syscall nr, errno)."""
    return key >> ERRNO_BITS, key & ((1 << ERRNO_BITS) - 1)


def _summed(table) -> dict[int, int]:
    out = {}
    for key, values in table.items():
        total = sum(int(v) for v in values)
        if total:
            out[int(key.value)] = total
    return out


def snapshot(bpf) -> Counts:
    """Read the three maps of a loaded program (one pass over each, CPUs summed)."""
    errors = {split_error_key(key): n for key, n in _summed(bpf[b"sc_errors"]).items()}
    missed = sum(int(v) for v in bpf[b"sc_full"][ctypes.c_int(0)])
    return Counts(_summed(bpf[b"sc_calls"]), errors, _summed(bpf[b"sc_tgids"]), missed)


def set_gate(bpf, counting: bool) -> None:
    bpf[b"sc_gate"][ctypes.c_int(0)] = ctypes.c_uint32(1 if counting else 0)


def exited_comms(bpf) -> dict[int, str]:
    """tgid -> name of the watched processes that have exited since load."""
    return {int(key.value): value.comm.decode(errors="replace")
            for key, value in bpf[b"sc_comms"].items()}


def add_spawner(bpf, tgid: int) -> None:
    bpf[b"spawners"][ctypes.c_uint32(tgid)] = ctypes.c_uint8(1)


def remove_spawner(bpf, tgid: int) -> None:
    try:
        del bpf[b"spawners"][ctypes.c_uint32(tgid)]
    except KeyError:
        pass
