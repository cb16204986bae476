"""Enforcement events: OOM kills and pids-limit hits.

* ``oom:mark_victim``: the victim pid, its memory, the current task's cgroup (the allocating
  task, charged in the container's memory cgroup); the SIGKILL that preceded it
  (``signal:signal_generate``) and the victim's ``sched_process_exit`` give the OOM->death
  latency. Emitted unfiltered: OOM kills are rare and must not be missed.
* pids limit: fork, vfork, clone and clone3 returning -EAGAIN (pids.max reached, or
  RLIMIT_NPROC), cross-checked with pids.events by the caller.
CPU throttling has no tracepoint: read cpu.stat deltas (``cgroupfs.delta``).
"""

from __future__ import annotations

from .common import Parts, Syscall
from .namespaces import CLONE3_FLAGS

NAME = "enforcement"
TRACEPOINTS = ("oom:mark_victim", "signal:signal_generate", "sched:sched_process_exit",
               "syscalls:sys_enter_fork", "syscalls:sys_exit_fork",
               "syscalls:sys_enter_vfork", "syscalls:sys_exit_vfork",
               "syscalls:sys_enter_clone", "syscalls:sys_exit_clone",
               "syscalls:sys_enter_clone3", "syscalls:sys_exit_clone3")

EAGAIN_CONDITION = "ret == -11"

SIGKILL = r"""
        if (args->sig == 9) {
            u32 killed = args->pid;
            u64 when = bpf_ktime_get_ns();
            sigkills.update(&killed, &when);
        }
"""

MARK_VICTIM = r"""
        struct event_t ev = {};
        u64 now = bpf_ktime_get_ns();
        fill(&ev, EV_OOM_VICTIM, now);
        u32 victim = args->pid;
        ev.target = victim;
        ev.flags = args->total_vm;
        ev.aux = args->anon_rss;
        u64 *killed = sigkills.lookup(&victim);
        if (killed && *killed <= now)
            ev.dur = now - *killed;     /* SIGKILL -> marked as victim */
        TP_DATA_LOC_READ_STR(&ev.str, comm, sizeof(ev.str));
        events.perf_submit(args, &ev, sizeof(ev));
        oom_victims.update(&victim, &now);
"""

OOM_DEATH = r"""
        u32 exiting = args->pid;
        u64 *marked = oom_victims.lookup(&exiting);
        if (marked) {
            struct event_t ev = {};
            u64 now = bpf_ktime_get_ns();
            fill(&ev, EV_OOM_DEATH, *marked);
            ev.dur = now - *marked;     /* marked as victim -> exit */
            ev.target = exiting;
            events.perf_submit(args, &ev, sizeof(ev));
            oom_victims.delete(&exiting);
        }
"""


def parts() -> Parts:
    out = Parts()
    out.syscalls = [
        Syscall("fork", condition=EAGAIN_CONDITION),
        Syscall("vfork", condition=EAGAIN_CONDITION),
        Syscall("clone", flags="args->clone_flags", condition=EAGAIN_CONDITION),
        Syscall("clone3", flags_code=CLONE3_FLAGS, condition=EAGAIN_CONDITION),
    ]
    out.add("signal", "signal_generate", SIGKILL)
    out.add("oom", "mark_victim", MARK_VICTIM)
    out.add("sched", "sched_process_exit", OOM_DEATH)
    return out
