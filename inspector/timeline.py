"""A container's start-up timeline from kernel events (any runtime).

``build(events, cgroup_path=..., cgroup_id=..., init_pid=...)`` picks the container's events and
returns its phases in kernel-time order, each with a timestamp (bpf_ktime_get_ns, CLOCK_MONOTONIC),
its own duration where the kernel measured one (syscalls, scheduling delay) and the offset from
the first phase, so the same phases can be compared between runtimes.
"""

from __future__ import annotations

PHASES = (  # (phase, description) in the order a runtime normally goes through them
    ("cgroup_created", "cgroup_mkdir of the container's cgroup"),
    ("clone", "clone/clone3 creating the container's first process (namespaces)"),
    ("first_run", "the new process first on a CPU"),
    ("cgroup_joined", "cgroup_attach_task of the first process"),
    ("unshare", "unshare calls of the container process (e.g. cgroup ns)"),
    ("setns", "setns calls of the container process"),
    ("mounts", "mount calls, first to last"),
    ("pivot_root", "pivot_root into the container's rootfs"),
    ("hostname", "sethostname"),
    ("capabilities", "capset"),
    ("no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS)"),
    ("seccomp", "seccomp filter installed"),
    ("exec", "exec of the user's command"),
    ("oom_kill", "first OOM kill in the container (oom:mark_victim)"),
    ("pids_limit", "first fork refused by the pids limit (EAGAIN)"),
    ("exit", "the container's first process exits"),
    ("cgroup_removed", "cgroup_rmdir of the container's cgroup"),
)


def _norm(path: str | None) -> str:
    return "/" + (path or "").strip("/")


def infer_init_pid(events, cgroup_path: str | None, cgroup_id: int | None) -> int | None:
    """The container's first process: the first pid attached to its cgroup, else the first
    process that exec'd inside it."""
    path = _norm(cgroup_path) if cgroup_path else None
    for event in sorted(events, key=lambda e: e["ts_ns"]):
        if event["event"] == "cgroup_attach" and path and _norm(event.get("path")) == path:
            return event.get("target_pid")
    for event in sorted(events, key=lambda e: e["ts_ns"]):
        if event["event"] == "exec" and cgroup_id and event.get("cgroup_id") == cgroup_id:
            return event["pid"]
    return None


def container_events(events, cgroup_path=None, cgroup_id=None, init_pid=None,
                     container_id=None) -> list[dict]:
    """The events of one container, sorted by kernel time."""
    path = _norm(cgroup_path) if cgroup_path else None
    out = []
    for event in events:
        name = event["event"]
        if container_id and event.get("container_id") == container_id:
            out.append(event)
        elif name.startswith("cgroup_") and path and _norm(event.get("path")) == path:
            out.append(event)
        elif cgroup_id and event.get("cgroup_id") == cgroup_id:
            out.append(event)
        elif init_pid and (event.get("pid") == init_pid or event.get("target_pid") == init_pid):
            out.append(event)
    unique = {id(e): e for e in out}
    return sorted(unique.values(), key=lambda e: e["ts_ns"])


def build(events, cgroup_path: str | None = None, cgroup_id: int | None = None,
          init_pid: int | None = None, container_id: str | None = None) -> dict:
    """{"init_pid", "phases": [...], "total_ns", "events": n} for one container."""
    init_pid = init_pid or infer_init_pid(events, cgroup_path, cgroup_id)
    mine = container_events(events, cgroup_path, cgroup_id, init_pid, container_id)
    path = _norm(cgroup_path) if cgroup_path else None
    phases: dict[str, dict] = {}

    def put(phase: str, event: dict, dur: int = 0, detail: str = "", first: bool = True):
        if first and phase in phases:
            return
        phases[phase] = {"phase": phase, "ts_ns": event["ts_ns"], "dur_ns": int(dur or 0),
                         "detail": detail}

    mounts = []
    execs = []
    exits = []
    for event in mine:
        # Every event here is the container's (its cgroup, pid tree or attribution): runtimes
        # differ in which process does what (runc: PARENT clones CHILD, CHILD unshares, INIT
        # pivots and execs; ours: one process), so set-up phases come from any of them.
        name = event["event"]
        if name == "cgroup_mkdir" and (path is None or _norm(event.get("path")) == path):
            put("cgroup_created", event, detail=f"hierarchy {event['hierarchy']}")
        elif name == "cgroup_rmdir" and (path is None or _norm(event.get("path")) == path):
            put("cgroup_removed", event, first=False, detail=f"hierarchy {event['hierarchy']}")
        elif name == "cgroup_attach" and event.get("target_pid") == init_pid:
            put("cgroup_joined", event, detail=f"pid {init_pid}")
        elif name in ("clone", "clone3") and event.get("target_pid") == init_pid \
                and init_pid is not None:
            put("clone", event, event.get("dur_ns", 0),
                "+".join(event.get("namespaces") or []) or "no new namespaces")
        elif name == "newtask" and event.get("target_pid") == init_pid and "clone" not in phases:
            put("clone", event, 0, "+".join(event.get("namespaces") or []))
        elif name == "first_run" and event.get("target_pid") == init_pid:
            put("first_run", event, event.get("delay_ns", 0), "scheduling delay")
        elif name == "unshare" and event.get("ret", 0) == 0:
            put("unshare", event, event.get("dur_ns", 0),
                "+".join(event.get("namespaces") or []))
        elif name == "setns":
            put("setns", event, event.get("dur_ns", 0), "+".join(event.get("namespaces") or []))
        elif name == "mount":
            mounts.append(event)
        elif name == "pivot_root":
            put("pivot_root", event, event.get("dur_ns", 0), event.get("path", ""))
        elif name == "sethostname":
            put("hostname", event, event.get("dur_ns", 0), event.get("hostname", ""))
        elif name == "capset":
            put("capabilities", event, event.get("dur_ns", 0), "", first=False)
        elif name == "prctl" and event.get("option") == "PR_SET_NO_NEW_PRIVS":
            put("no_new_privs", event, event.get("dur_ns", 0))
        elif name == "prctl" and event.get("option") == "PR_SET_SECCOMP":
            put("seccomp", event, event.get("dur_ns", 0), "prctl(PR_SET_SECCOMP)", first=False)
        elif name == "seccomp" and event.get("op") == "SET_MODE_FILTER":
            put("seccomp", event, event.get("dur_ns", 0), "seccomp(SET_MODE_FILTER)",
                first=False)
        elif name == "oom_victim":
            put("oom_kill", event, event.get("kill_to_mark_ns", 0),
                f"victim {event.get('target_pid')} ({event.get('victim_comm', '')})")
        elif name == "pids_limit":
            put("pids_limit", event, event.get("dur_ns", 0), f"{event.get('syscall')} -> EAGAIN")
        elif name == "exec":
            execs.append(event)
        elif name == "exit":
            exits.append(event)
    # exec of the user's command: the first exec after the last set-up step (a runtime may exec
    # itself before, e.g. runc init; the command may exec others after). An exec of a
    # descriptor (/dev/fd/N: a sealed memfd stub, as ours and runc's) is the runtime's own hop.
    setup = [phases[p]["ts_ns"] for p in ("pivot_root", "hostname", "capabilities",
                                           "no_new_privs", "seccomp") if p in phases]
    after = [e for e in execs if (not setup or e["ts_ns"] >= max(setup))
             and not _is_descriptor_exec(e.get("filename", ""))]
    chosen = (after or execs or [None])[0]
    if chosen is not None:
        put("exec", chosen, 0, chosen.get("filename", ""))
        for event in exits:
            if event.get("target_pid") == chosen["pid"]:
                put("exit", event, detail=f"pid {chosen['pid']}")
                break
    if "exit" not in phases:
        for event in exits:
            if event.get("target_pid") == init_pid and init_pid:
                put("exit", event, detail=f"pid {init_pid}")
                break
    if mounts:
        first, last = mounts[0], mounts[-1]
        phases["mounts"] = {"phase": "mounts", "ts_ns": first["ts_ns"],
                            "dur_ns": last["ts_ns"] + last.get("dur_ns", 0) - first["ts_ns"],
                            "detail": f"{len(mounts)} mounts, "
                                      f"{sum(m.get('dur_ns', 0) for m in mounts) / 1e3:.0f}us "
                                      "in the kernel"}
    ordered = sorted(phases.values(), key=lambda p: p["ts_ns"])
    origin = ordered[0]["ts_ns"] if ordered else 0
    previous = origin
    for phase in ordered:
        phase["offset_ms"] = round((phase["ts_ns"] - origin) / 1e6, 3)
        phase["since_previous_ms"] = round((phase["ts_ns"] - previous) / 1e6, 3)
        previous = phase["ts_ns"]
    by_name = {p["phase"]: p for p in ordered}
    summary = {}
    if "exec" in by_name and ordered:
        summary["to_exec_ms"] = round((by_name["exec"]["ts_ns"] - origin) / 1e6, 3)
    if "clone" in by_name and "exec" in by_name:
        summary["clone_to_exec_ms"] = round(
            (by_name["exec"]["ts_ns"] - by_name["clone"]["ts_ns"]) / 1e6, 3)
    if "exec" in by_name and "exit" in by_name:
        summary["exec_to_exit_ms"] = round(
            (by_name["exit"]["ts_ns"] - by_name["exec"]["ts_ns"]) / 1e6, 3)
    total = (ordered[-1]["ts_ns"] - origin) if ordered else 0
    return {"init_pid": init_pid, "phases": ordered, "total_ms": round(total / 1e6, 3),
            "summary": summary, "events": len(mine)}


def format_table(timeline: dict) -> str:
    lines = [f"{'PHASE':<16}{'KERNEL TS (ns)':>18}{'OFFSET ms':>11}{'STEP ms':>9}"
             f"{'DUR us':>10}  DETAIL"]
    for phase in timeline["phases"]:
        lines.append(f"{phase['phase']:<16}{phase['ts_ns']:>18}{phase['offset_ms']:>11.3f}"
                     f"{phase['since_previous_ms']:>9.3f}{phase['dur_ns'] / 1e3:>10.1f}  "
                     f"{phase['detail']}")
    summary = ", ".join(f"{k} {v}" for k, v in timeline.get("summary", {}).items())
    lines.append(f"total {timeline['total_ms']} ms over {timeline['events']} events"
                 + (f"; {summary}" if summary else ""))
    return "\n".join(lines)


def _is_descriptor_exec(filename: str) -> bool:
    """fexecve/execveat of a descriptor: the kernel names the binary /dev/fd/N."""
    return filename.startswith(("/dev/fd/", "/proc/self/fd/"))
