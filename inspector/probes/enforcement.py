"""Enforcement events: OOM kills and pids-limit hits.

* ``oom:mark_victim``: the victim pid, its memory, the current task's cgroup (the allocating
  task, charged in the container's memory cgroup); the SIGKILL that preceded it
  (``signal:signal_generate``) and the victim's ``sched_process_exit`` give the OOM->death
  latency. Emitted when the OOM-ing task or the victim is traced (everything without a filter).
* pids limit: fork, vfork, clone and clone3 returning -EAGAIN (pids.max reached, or
  RLIMIT_NPROC), cross-checked with pids.events by the caller.
* run-queue delay of traced tasks: from wakeup (``sched_wakeup``/``sched_wakeup_new``) or
  preemption while runnable (``sched_switch``, prev_state R or R+) to the next switch-in, as a
  log2 histogram in microseconds. A task of a cgroup out of CPU quota waits here until the next
  period, so throttling shows as long delays; cpu.stat (``cgroupfs``) counts the periods.
  Only with a filter (traced pid trees: tasks whose pid is a traced tgid, i.e. main threads).
CPU throttling itself has no tracepoint: read cpu.stat deltas (``runtime.cgroups.figures.delta``).
"""

from __future__ import annotations

from .common import Parts, Syscall
from .namespaces import CLONE3_FLAGS

NAME = "enforcement"
TRACEPOINTS = ("sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_switch",
               "oom:mark_victim", "signal:signal_generate", "sched:sched_process_exit",
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
        u32 victim = args->pid;
        /* the OOM-ing task (a memcg OOM is raised by an allocation inside the container) or
           the victim is traced */
        if (cgroup_wanted(0, victim)) {
            struct event_t ev = {};
            u64 now = bpf_ktime_get_ns();
            fill(&ev, EV_OOM_VICTIM, now);
            ev.target = victim;
            ev.flags = args->total_vm;
            ev.aux = args->anon_rss;
            u64 *killed = sigkills.lookup(&victim);
            if (killed && *killed <= now)
                ev.dur = now - *killed;     /* SIGKILL -> marked as victim */
            TP_DATA_LOC_READ_STR(&ev.str, comm, sizeof(ev.str));
            events.perf_submit(args, &ev, sizeof(ev));
            oom_victims.update(&victim, &now);
        }
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


RUNQ_WAKEUP = r"""
#if FILTER_ENABLED
        u32 woken = args->pid;
        if (filter_pids.lookup(&woken)) {
            u64 when = bpf_ktime_get_ns();
            runq_queued.update(&woken, &when);
        }
#endif
"""

RUNQ_SWITCH = r"""
#if FILTER_ENABLED
        u32 prev = args->prev_pid;
        /* still runnable: 0 (R), or TASK_REPORT_MAX (R+, preempted) on recent kernels */
        if ((args->prev_state & 0xFF) == 0 && filter_pids.lookup(&prev)) {
            u64 when = bpf_ktime_get_ns();
            runq_queued.update(&prev, &when);
        }
        u32 in = args->next_pid;
        u64 *queued = runq_queued.lookup(&in);
        if (queued) {
            u64 delta_us = (bpf_ktime_get_ns() - *queued) / 1000;
            runq_hist.increment(bpf_log2l(delta_us));
            int zero = 0;
            u64 *sum = runq_sum.lookup(&zero);
            if (sum)
                __sync_fetch_and_add(sum, delta_us);
            runq_queued.delete(&in);
        }
#endif
"""


def parts() -> Parts:
    out = Parts()
    out.add("sched", "sched_wakeup", RUNQ_WAKEUP)
    out.add("sched", "sched_wakeup_new", RUNQ_WAKEUP)
    out.add("sched", "sched_switch", RUNQ_SWITCH)
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
