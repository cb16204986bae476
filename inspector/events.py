"""Kernel events as plain dicts (JSON lines, tables, timelines)."""

from __future__ import annotations

from isoinspect.runtime.linux import namespaces

from . import nsflags
from .probes.common import EAGAIN, EVENT_TYPES

FORK_LIKE = ("clone", "clone3", "fork", "vfork")
PRCTL_NAMES = {1: "PR_SET_PDEATHSIG", 8: "PR_SET_KEEPCAPS", 22: "PR_SET_SECCOMP",
               24: "PR_CAPBSET_DROP", 38: "PR_SET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT",
               15: "PR_SET_NAME"}
SECCOMP_OPS = {0: "SET_MODE_STRICT", 1: "SET_MODE_FILTER", 2: "GET_ACTION_AVAIL",
               3: "GET_NOTIF_SIZES"}


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def decode(raw) -> dict:
    """A ctypes Event (probes.common.Event) -> dict with the fields that matter for its type."""
    name = EVENT_TYPES.get(raw.type, f"type{raw.type}")
    event = {"ts_ns": raw.ts, "event": name, "pid": raw.pid, "tid": raw.tid,
             "comm": _text(raw.comm), "cgroup_id": raw.cgroup_id}
    text = _text(raw.str)
    if name in ("unshare", "clone", "clone3", "newtask"):
        event["flags"] = hex(raw.flags)
        event["namespaces"] = namespaces.decode(raw.flags)
    if name == "setns":
        event["nstype"] = hex(raw.flags)
        event["namespaces"] = nsflags.decode_setns(raw.flags)
    if name in ("unshare", "clone", "clone3", "setns", "fork", "vfork", "mount", "pivot_root",
                "sethostname", "capset", "prctl", "seccomp"):
        event["dur_ns"] = raw.dur
        event["ret"] = raw.ret
    if name in FORK_LIKE and raw.ret == -EAGAIN:
        event["syscall"] = name
        event["event"] = name = "pids_limit"
    if name in ("clone", "clone3", "fork", "vfork", "newtask", "exec", "exit", "first_run",
                "cgroup_attach", "oom_victim", "oom_death") and raw.target:
        event["target_pid"] = raw.target
    if name == "newtask":
        event["child_comm"] = text
    elif name in ("mount", "pivot_root"):
        event["path"] = text
        if name == "mount":
            event["mount_flags"] = hex(raw.flags)
    elif name == "sethostname":
        event["hostname"] = text
    elif name == "prctl":
        event["option"] = PRCTL_NAMES.get(raw.flags, raw.flags)
    elif name == "seccomp":
        event["op"] = SECCOMP_OPS.get(raw.flags, raw.flags)
    elif name == "exec":
        event["filename"] = text
        event["old_pid"] = raw.aux
    elif name in ("cgroup_mkdir", "cgroup_rmdir", "cgroup_attach"):
        event["path"] = text
        event["hierarchy"] = raw.level        # 0: cgroup2 (its ids are bpf cgroup ids)
        event["level"] = raw.flags
        event["id"] = raw.aux
    elif name == "first_run":
        event["delay_ns"] = raw.dur
    elif name == "oom_victim":
        event["victim_comm"] = text
        event["total_vm_pages"] = raw.flags
        event["anon_rss_pages"] = raw.aux
        event["kill_to_mark_ns"] = raw.dur
    elif name == "oom_death":
        event["mark_to_exit_ns"] = raw.dur
    return event


def describe(event: dict) -> str:
    """One human line for the table view."""
    name = event["event"]
    if name in ("unshare", "clone", "clone3", "setns", "newtask"):
        parts = ["+".join(event.get("namespaces") or []) or "-"]
        if "dur_ns" in event:
            parts.append(f"{event['dur_ns'] / 1000:.1f}us ret={event['ret']}")
        if event.get("target_pid"):
            parts.append(f"child={event['target_pid']}")
        return " ".join(parts)
    if name == "pids_limit":
        return f"{event['syscall']} -> EAGAIN (pids limit)"
    if name in ("mount", "pivot_root"):
        return f"{event.get('path', '')} {event['dur_ns'] / 1000:.1f}us ret={event['ret']}"
    if name == "sethostname":
        return f"{event.get('hostname')} ret={event['ret']}"
    if name == "prctl":
        return f"{event.get('option')} ret={event['ret']}"
    if name == "seccomp":
        return f"{event.get('op')} ret={event['ret']}"
    if name == "exec":
        return event.get("filename", "")
    if name.startswith("cgroup_"):
        extra = f" pid={event['target_pid']}" if event.get("target_pid") else ""
        return f"h{event['hierarchy']} id={event['id']} {event['path']}{extra}"
    if name == "first_run":
        return f"pid {event.get('target_pid')} on cpu after {event['delay_ns'] / 1000:.1f}us"
    if name == "oom_victim":
        return (f"victim {event.get('target_pid')} ({event.get('victim_comm')}) "
                f"anon_rss={event['anon_rss_pages'] * 4}KiB")
    if name == "oom_death":
        return f"victim {event.get('target_pid')} exited {event['mark_to_exit_ns'] / 1e6:.2f}ms " \
               "after OOM mark"
    if name == "exit":
        return f"pid {event.get('target_pid')}"
    return ""
