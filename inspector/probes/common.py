"""What every probe shares: the event record, the cgroup-id / pid-tree filter, and the composer
that turns the probes' pieces into ONE BCC program (one compile, one perf buffer).

A probe module (namespaces, startup, enforcement) contributes:

* ``syscalls(options)``: :class:`Syscall` pairs. sys_enter stores (time, flags, a pointer) per
  thread when the caller is wanted; sys_exit emits one event with the kernel duration of the call
  and its return value when the probe's C condition holds. Two probes asking for the same syscall
  are merged (their conditions OR-ed), since a tracepoint takes one TRACEPOINT_PROBE per program.
* ``fragments(options)``: {(category, event): [C block, ...]} for other tracepoints; the blocks
  of all probes for one tracepoint go into one TRACEPOINT_PROBE, in probe order.
* ``declarations``: file-scope C (a probe's own maps), placed after the shared prelude.

Placeholders (BCC tools' style) are filled from arguments: FILTER_ENABLED (0/1), STR_LEN.
Only TRACEPOINT_PROBE is used: tracefs gives the argument layouts, so headers that do not match
the running kernel are harmless and no kernel struct is walked.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

from isoinspect.runtime.linux import namespaces

STR_LEN = 128

# Event types (the C side uses the EV_* names; keep both in sync through this table).
EVENT_TYPES = {
    1: "unshare", 2: "clone", 3: "clone3", 4: "setns", 5: "newtask", 6: "fork", 7: "vfork",
    10: "mount", 11: "pivot_root", 12: "sethostname", 13: "seccomp", 14: "prctl", 15: "capset",
    16: "exec", 17: "first_run", 18: "exit", 19: "umount",
    20: "cgroup_mkdir", 21: "cgroup_attach", 22: "cgroup_rmdir",
    30: "oom_victim", 31: "oom_death",
}
EV = {name: number for number, name in EVENT_TYPES.items()}

CLONE_THREAD = 0x00010000
EAGAIN = 11

PRELUDE = r"""
#include <uapi/linux/ptrace.h>
#include <linux/capability.h>   /* cap_user_*_t in the capset tracepoint layout */

#define FILTER_ENABLED FILTER_ENABLED_VALUE
#define STR_LEN STR_LEN_VALUE
#define NS_MASK NS_MASK_VALUE   /* every CLONE_NEW* flag */
#define CLONE_THREAD_FLAG 0x00010000ULL
EV_DEFINES

struct event_t {
    u64 ts;          /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) at the start of the event */
    u64 dur;         /* ns: syscall enter->exit, newtask->first run, OOM victim->exit */
    u64 cgroup_id;   /* v2 cgroup id of the current task */
    u64 flags;       /* clone/unshare flags, setns nstype, prctl option, seccomp op ... */
    s64 ret;         /* syscall return value */
    u64 aux;         /* cgroup id of cgroup_* events; anon rss pages of OOM victims ... */
    u32 type;
    u32 pid;         /* tgid of the current task */
    u32 tid;
    u32 target;      /* child pid, attached pid, OOM victim pid */
    s32 level;       /* cgroup hierarchy id (0: cgroup2) / level */
    u32 pad;
    char comm[16];
    char str[STR_LEN];
};

struct start_t {
    u64 ts;
    u64 flags;
    u64 ptr;
    u32 type;
    u32 pad;
};

BPF_PERF_OUTPUT(events);
BPF_HASH(filter_cgroups, u64, u8, 1024);     /* cgroup ids to trace */
BPF_HASH(filter_pids, u32, u8, 8192);        /* tgids to trace (pid trees are followed) */
BPF_HASH(starts, u64, struct start_t, 8192); /* pid_tgid -> pending syscall */
struct born_t {
    u64 ts;          /* task_newtask time */
    u64 cgroup_id;   /* the parent's (the child starts in it) */
};
BPF_HASH(pending_run, u32, struct born_t, 8192);  /* new task -> birth (first run) */
BPF_TABLE("lru_hash", u32, u64, sigkills, 4096);     /* pid -> time of last SIGKILL */
BPF_HASH(oom_victims, u32, u64, 1024);       /* pid -> time marked as OOM victim */
BPF_HASH(runq_queued, u32, u64, 8192);       /* traced pid -> time it became runnable */
BPF_HISTOGRAM(runq_hist, int, 40);           /* run-queue delay, log2(us) */
BPF_ARRAY(runq_sum, u64, 1);                 /* total run-queue delay, us */

static __always_inline int is_wanted(void) {
#if FILTER_ENABLED
    u64 cg = bpf_get_current_cgroup_id();
    if (filter_cgroups.lookup(&cg))
        return 1;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (filter_pids.lookup(&tgid))
        return 1;
    return 0;
#else
    return 1;
#endif
}

/* cgroup_* events: the task doing it is traced, or the cgroup / attached pid is. */
static __always_inline int cgroup_wanted(u64 id, u32 pid) {
#if FILTER_ENABLED
    if (is_wanted())
        return 1;
    if (filter_cgroups.lookup(&id))
        return 1;
    if (pid && filter_pids.lookup(&pid))
        return 1;
    return 0;
#else
    return 1;
#endif
}

static __always_inline void fill(struct event_t *ev, u32 type, u64 ts) {
    u64 id = bpf_get_current_pid_tgid();
    ev->type = type;
    ev->ts = ts;
    ev->pid = id >> 32;
    ev->tid = (u32)id;
    ev->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
}
"""

ENTER_TEMPLATE = r"""
    if (is_wanted()) {
        struct start_t s = {};
        s.ts = bpf_ktime_get_ns();
        s.type = EV_TYPE;
        FLAGS_CODE
        PTR_CODE
        u64 key = bpf_get_current_pid_tgid();
        starts.update(&key, &s);
    }
"""

EXIT_TEMPLATE = r"""
    {
        u64 key = bpf_get_current_pid_tgid();
        struct start_t *s = starts.lookup(&key);
        if (s && s->type == EV_TYPE) {
            long ret = args->ret;
            if (EMIT_CONDITION) {
                struct event_t ev = {};
                fill(&ev, EV_TYPE, s->ts);
                ev.dur = bpf_ktime_get_ns() - s->ts;
                ev.flags = s->flags;
                ev.ret = ret;
                if (ret > 0 && (EV_TYPE == EV_CLONE || EV_TYPE == EV_CLONE3 ||
                                EV_TYPE == EV_FORK || EV_TYPE == EV_VFORK))
                    ev.target = ret;
                STR_CODE
                events.perf_submit(args, &ev, sizeof(ev));
            }
            starts.delete(&key);
        }
    }
"""


@dataclass
class Syscall:
    """A syscall traced from sys_enter to sys_exit.

    ``flags``: C expression for the flags at enter (``args->...``); ``ptr``: C expression of a
    user string pointer read at exit into ``str``; ``condition``: C expression (over ``ret`` and
    ``s->flags``) deciding whether the exit emits an event.
    """

    name: str
    flags: str = ""
    ptr: str = ""
    condition: str = "1"
    flags_code: str = ""           # full C statements setting s.flags (e.g. clone3's user read)


@dataclass
class Emitter:
    """A C block (containing EMIT_CONDITION) that several probes may want with different
    conditions: merged by ``key`` into one block with the conditions OR-ed."""

    key: str
    category: str
    event: str
    template: str
    condition: str = "1"


@dataclass
class Parts:
    syscalls: list[Syscall] = field(default_factory=list)
    fragments: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    emitters: list[Emitter] = field(default_factory=list)
    declarations: list[str] = field(default_factory=list)

    def add(self, category: str, event: str, code: str) -> None:
        self.fragments.setdefault((category, event), []).append(code)


def _or(first: str, second: str) -> str:
    if "1" in (first, second):
        return "1"
    if second in first:
        return first
    return f"({first}) || ({second})"


def merge(parts: list[Parts]) -> Parts:
    """One Parts from several probes: syscalls merged by name (conditions OR-ed)."""
    out = Parts()
    by_name: dict[str, Syscall] = {}
    emitters: dict[str, Emitter] = {}
    for part in parts:
        for call in part.syscalls:
            known = by_name.get(call.name)
            if known is None:
                known = by_name[call.name] = Syscall(call.name, call.flags, call.ptr,
                                                     call.condition, call.flags_code)
                out.syscalls.append(known)
                continue
            known.flags = known.flags or call.flags
            known.flags_code = known.flags_code or call.flags_code
            known.ptr = known.ptr or call.ptr
            known.condition = _or(known.condition, call.condition)
        for emitter in part.emitters:
            known_emitter = emitters.get(emitter.key)
            if known_emitter is None:
                emitters[emitter.key] = Emitter(emitter.key, emitter.category, emitter.event,
                                                emitter.template, emitter.condition)
            else:
                known_emitter.condition = _or(known_emitter.condition, emitter.condition)
                if len(emitter.template) > len(known_emitter.template):  # the richer variant
                    known_emitter.template = emitter.template
        for key, blocks in part.fragments.items():
            for block in blocks:
                if block not in out.fragments.get(key, []):
                    out.add(key[0], key[1], block)
        out.declarations += [d for d in part.declarations if d not in out.declarations]
    for emitter in emitters.values():
        out.add(emitter.category, emitter.event,
                emitter.template.replace("EMIT_CONDITION", emitter.condition))
    out.emitters = list(emitters.values())
    return out


def _syscall_probes(call: Syscall, available) -> list[str]:
    ev_name = "EV_" + call.name.upper()
    out = []
    if not (available("syscalls", f"sys_enter_{call.name}")
            and available("syscalls", f"sys_exit_{call.name}")):
        return out
    flags_code = call.flags_code or (f"s.flags = {call.flags};" if call.flags else "")
    ptr_code = f"s.ptr = (u64){call.ptr};" if call.ptr else ""
    enter = (ENTER_TEMPLATE.replace("EV_TYPE", ev_name).replace("FLAGS_CODE", flags_code)
             .replace("PTR_CODE", ptr_code))
    str_code = ("if (s->ptr) bpf_probe_read_user_str(&ev.str, sizeof(ev.str), "
                "(void *)s->ptr);") if call.ptr else ""
    exit_ = (EXIT_TEMPLATE.replace("EMIT_CONDITION", call.condition or "1")
             .replace("EV_TYPE", ev_name).replace("STR_CODE", str_code))
    out.append(f"TRACEPOINT_PROBE(syscalls, sys_enter_{call.name})\n{{{enter}    return 0;\n}}\n")
    out.append(f"TRACEPOINT_PROBE(syscalls, sys_exit_{call.name})\n{{{exit_}    return 0;\n}}\n")
    return out


PERF_SUBMIT = "events.perf_submit(args, &ev, sizeof(ev));"
RING_SUBMIT = "if (events.ringbuf_output(&ev, sizeof(ev), 0)) dropped.increment(0);"
RING_DECLARE = ("BPF_RINGBUF_OUTPUT(events, RING_PAGES);\n"
                "BPF_ARRAY(dropped, u64, 1);                 /* ring buffer full: events lost */")


def compose(parts: list[Parts], filter_enabled: bool = True, available=None,
            buffer: str = "ring", ring_pages: int = 1024) -> str:
    """The BCC program text of the given probes' parts.

    ``available(category, event) -> bool`` drops tracepoints the kernel lacks (default: keep all,
    so the text can be generated and checked on any machine).
    """
    available = available or (lambda category, event: True)
    merged = merge([*parts, base_parts()])
    defines = "\n".join(f"#define EV_{name.upper()} {number}" for name, number in EV.items())
    text = (PRELUDE.replace("FILTER_ENABLED_VALUE", "1" if filter_enabled else "0")
            .replace("STR_LEN_VALUE", str(STR_LEN))
            .replace("NS_MASK_VALUE", f"0x{namespaces.ALL_FLAGS:08X}ULL")
            .replace("EV_DEFINES", defines))
    pieces = [text, *merged.declarations]
    for call in merged.syscalls:
        pieces.extend(_syscall_probes(call, available))
    for (category, event), blocks in merged.fragments.items():
        if not available(category, event):
            continue
        body = "\n".join("    {\n" + block.strip("\n") + "\n    }" for block in blocks)
        pieces.append(f"TRACEPOINT_PROBE({category}, {event})\n{{\n{body}\n    return 0;\n}}\n")
    text = "\n".join(pieces)
    if buffer == "ring":      # one buffer for all CPUs: cheaper per event, and in time order
        text = text.replace("BPF_PERF_OUTPUT(events);",
                            RING_DECLARE.replace("RING_PAGES", str(int(ring_pages))))
        text = text.replace(PERF_SUBMIT, RING_SUBMIT)
    elif buffer != "perf":
        raise ValueError(f"buffer must be 'ring' or 'perf', not {buffer!r}")
    return text


# Always present: the pid-tree filter follows forks of traced processes; exited pids are dropped
# (after every probe's sched_process_exit blocks have run: base parts are merged last).
FOLLOW_FORK = r"""
        u32 parent = bpf_get_current_pid_tgid() >> 32;
        u32 child = args->pid;
        if (!(args->clone_flags & CLONE_THREAD_FLAG) && filter_pids.lookup(&parent)) {
            u8 one = 1;
            filter_pids.update(&child, &one);
        }
"""

# The last thread of a group need not be its leader (Go runtimes: runc, dockerd), so the
# watched entry is the exiting task's tgid, not args->pid (that thread's id).
FORGET_EXITED = r"""
        u32 gone = bpf_get_current_pid_tgid() >> 32;
        if (args->group_dead)
            filter_pids.delete(&gone);
"""

# newtask events: one block for every probe that wants them (conditions OR-ed).
NEWTASK_TEMPLATE = r"""
        if (!(args->clone_flags & CLONE_THREAD_FLAG) && is_wanted() && (EMIT_CONDITION)) {
            struct event_t ev = {};
            fill(&ev, EV_NEWTASK, bpf_ktime_get_ns());
            ev.target = args->pid;
            ev.flags = args->clone_flags;
            bpf_probe_read_kernel(&ev.str, sizeof(args->comm), args->comm);
            events.perf_submit(args, &ev, sizeof(ev));
            FIRST_RUN_CODE
        }
"""


def base_parts() -> Parts:
    parts = Parts()
    parts.fragments[("task", "task_newtask")] = [FOLLOW_FORK]
    parts.fragments[("sched", "sched_process_exit")] = [FORGET_EXITED]
    return parts


def newtask_emitter(condition: str, first_run: bool = False) -> Emitter:
    code = ("u32 newpid = args->pid; struct born_t born = {ev.ts, ev.cgroup_id}; "
            "pending_run.update(&newpid, &born);" if first_run else "")
    return Emitter("newtask", "task", "task_newtask", NEWTASK_TEMPLATE.replace("FIRST_RUN_CODE", code),
                   condition)


def tracepoints_used(text: str) -> list[str]:
    """category:event of every TRACEPOINT_PROBE in a program text."""
    import re

    return [f"{c}:{e}" for c, e in re.findall(r"TRACEPOINT_PROBE\((\w+), (\w+)\)", text)]


class Event(ctypes.Structure):
    """The C ``struct event_t`` (keep in sync with PRELUDE)."""

    _fields_ = [
        ("ts", ctypes.c_uint64), ("dur", ctypes.c_uint64), ("cgroup_id", ctypes.c_uint64),
        ("flags", ctypes.c_uint64), ("ret", ctypes.c_int64), ("aux", ctypes.c_uint64),
        ("type", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("tid", ctypes.c_uint32),
        ("target", ctypes.c_uint32), ("level", ctypes.c_int32), ("pad", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16), ("str", ctypes.c_char * STR_LEN),
    ]
