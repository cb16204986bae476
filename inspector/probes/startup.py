"""The start-up timeline of a container, as the kernel saw it.

cgroup_mkdir -> cgroup_attach_task -> clone/unshare -> mount ... pivot_root -> sethostname ->
capset/prctl/seccomp -> sched_process_exec -> first sched_switch-in of each new task ->
sched_process_exit -> cgroup_rmdir. Events carry the cgroup id and pid so the timeline of one
container is picked out by ``isoinspect.inspector.timeline``.

cgroup_* events are emitted when the task doing them is traced (our runtime process is, from
before it creates the cgroup), or the cgroup or attached pid is; without a filter, for every
cgroup (they are rare): their paths are how Docker and runc containers are named.
"""

from __future__ import annotations

from .common import Parts, Syscall, newtask_emitter

NAME = "startup"
TRACEPOINTS = ("syscalls:sys_enter_unshare", "syscalls:sys_exit_unshare",
               "syscalls:sys_enter_clone", "syscalls:sys_exit_clone", "cgroup:cgroup_mkdir", "cgroup:cgroup_rmdir", "cgroup:cgroup_attach_task",
               "syscalls:sys_enter_mount", "syscalls:sys_exit_mount",
               "syscalls:sys_enter_pivot_root", "syscalls:sys_exit_pivot_root",
               "syscalls:sys_enter_sethostname", "syscalls:sys_exit_sethostname",
               "syscalls:sys_enter_seccomp", "syscalls:sys_exit_seccomp",
               "syscalls:sys_enter_prctl", "syscalls:sys_exit_prctl",
               "syscalls:sys_enter_capset", "syscalls:sys_exit_capset",
               "sched:sched_process_exec", "sched:sched_switch", "sched:sched_process_exit",
               "task:task_newtask")

CGROUP_DIR = r"""
        if (cgroup_wanted(args->id, 0)) {
            struct event_t ev = {};
            fill(&ev, EV_TYPE, bpf_ktime_get_ns());
            ev.aux = args->id;
            ev.level = args->root;
            ev.flags = args->level;
            TP_DATA_LOC_READ_STR(&ev.str, path, sizeof(ev.str));
            events.perf_submit(args, &ev, sizeof(ev));
        }
"""

CGROUP_ATTACH = r"""
        if (cgroup_wanted(args->dst_id, args->pid)) {
            struct event_t ev = {};
            fill(&ev, EV_CGROUP_ATTACH, bpf_ktime_get_ns());
            ev.aux = args->dst_id;
            ev.level = args->dst_root;
            ev.flags = args->dst_level;
            ev.target = args->pid;
            TP_DATA_LOC_READ_STR(&ev.str, dst_path, sizeof(ev.str));
            events.perf_submit(args, &ev, sizeof(ev));
        }
"""

EXEC = r"""
        if (is_wanted()) {
            struct event_t ev = {};
            fill(&ev, EV_EXEC, bpf_ktime_get_ns());
            ev.target = args->pid;
            ev.aux = args->old_pid;
            TP_DATA_LOC_READ_STR(&ev.str, filename, sizeof(ev.str));
            events.perf_submit(args, &ev, sizeof(ev));
        }
"""

# First time a new task gets a CPU: the scheduler's view of "the container started running".
FIRST_RUN = r"""
        u32 next = args->next_pid;
        struct born_t *born = pending_run.lookup(&next);
        if (born) {
            struct event_t ev = {};
            u64 now = bpf_ktime_get_ns();
            ev.type = EV_FIRST_RUN;
            ev.ts = now;
            ev.dur = now - born->ts;
            ev.cgroup_id = born->cgroup_id;
            ev.pid = next;
            ev.tid = next;
            ev.target = next;
            bpf_probe_read_kernel(&ev.comm, sizeof(ev.comm), args->next_comm);
            events.perf_submit(args, &ev, sizeof(ev));
            pending_run.delete(&next);
        }
"""

EXIT = r"""
        if (args->group_dead && is_wanted()) {
            struct event_t ev = {};
            fill(&ev, EV_EXIT, bpf_ktime_get_ns());
            ev.target = args->pid;
            ev.flags = args->group_dead;
            events.perf_submit(args, &ev, sizeof(ev));
        }
        u32 dead = args->pid;
        pending_run.delete(&dead);
"""


# prctl calls worth an event: PR_SET_SECCOMP (22), PR_SET_NO_NEW_PRIVS (38). Runtimes make dozens
# of others (PR_CAPBSET_DROP per capability, PR_CAP_AMBIENT ...) and each emitted event costs
# ~7 us of BPF time here; ``all_prctl`` reports them too.
PRCTL_OF_INTEREST = "(s->flags == 22 || s->flags == 38)"


def parts(all_prctl: bool = False) -> Parts:
    out = Parts()
    out.syscalls = [
        Syscall("unshare", flags="args->unshare_flags"),
        Syscall("clone", flags="args->clone_flags", condition="(s->flags & NS_MASK)"),
        Syscall("mount", flags="args->flags", ptr="args->dir_name"),
        Syscall("pivot_root", ptr="args->new_root"),
        Syscall("sethostname", ptr="args->name"),
        Syscall("capset"),
        Syscall("prctl", flags="args->option",
                condition="1" if all_prctl else PRCTL_OF_INTEREST),
        Syscall("seccomp", flags="args->op"),
    ]
    out.add("cgroup", "cgroup_mkdir", CGROUP_DIR.replace("EV_TYPE", "EV_CGROUP_MKDIR"))
    out.add("cgroup", "cgroup_rmdir", CGROUP_DIR.replace("EV_TYPE", "EV_CGROUP_RMDIR"))
    out.add("cgroup", "cgroup_attach_task", CGROUP_ATTACH)
    out.add("sched", "sched_process_exec", EXEC)
    out.add("sched", "sched_switch", FIRST_RUN)
    out.add("sched", "sched_process_exit", EXIT)
    out.emitters = [newtask_emitter("1", first_run=True)]
    return out
