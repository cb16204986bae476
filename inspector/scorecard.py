"""Isolation scorecard of a running process (any runtime's container): what it shares with the
host and what confines it, read from /proc and cgroupfs.

    card = scorecard(pid)          # {"namespaces": {...}, "capabilities": {...}, "seccomp": ...}
    print(format_card(card))

"The host" is the reference process (default: this process, which runs on the host; /proc/1 may
be unreadable in a sandbox). Every path takes a ``proc`` root so tests can use a fake tree.
"""

from __future__ import annotations

import os

from isoinspect.runtime.linux.capabilities import CAPABILITY_NAMES
from isoinspect.runtime.linux.namespaces import PROC_NAMES
from isoinspect.runtime.linux.paths_policy import MASKED_PATHS, READONLY_PATHS

from .cgroupfs import CgroupView
from .verdict import DANGEROUS, Facts, judge, shares_host_kernel

SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}


def decode_caps(mask: int) -> list[str]:
    """Names (no CAP_ prefix) of the capabilities set in a /proc status mask, lowest first."""
    return [name for bit, name in enumerate(CAPABILITY_NAMES) if mask & (1 << bit)]


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as key -> value."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _ns(pid, proc: str) -> dict[str, str | None]:
    out = {}
    for name in PROC_NAMES:
        try:
            out[name] = os.readlink(f"{proc}/{pid}/ns/{name}")
        except OSError:
            out[name] = None
    return out


def mount_table(text: str) -> list[tuple[str, list[str], str]]:
    """(mount point, options, fstype) of each mountinfo line."""
    out = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) >= 6:
            out.append((fields[4], fields[5].split(","), after.split()[0] if after else ""))
    return out


def _root_mount(mounts: list[tuple[str, list[str], str]]) -> dict | None:
    found = None
    for point, options, fstype in mounts:
        if point == "/":
            found = {"read_only": "ro" in options, "fstype": fstype}
    if found is not None:
        found["masked_paths"] = [p for p, _o, _f in mounts if p in MASKED_PATHS]
    return found


def path_facts(mounts: list[tuple[str, list[str], str]], exists, writable) -> dict:
    """Docker's masked paths hidden from the unit (mounted over, or absent) or visible, and
    its read-only paths that are read-only (or absent) or writable; ``exists``/``writable``
    test a path as the unit sees it."""
    points = {p for p, _o, _f in mounts}
    visible = [p for p in MASKED_PATHS if p not in points and exists(p)]
    open_ = [p for p in READONLY_PATHS if exists(p) and writable(p)]
    return {"masked": [p for p in MASKED_PATHS if p not in visible], "visible": visible,
            "read_only": [p for p in READONLY_PATHS if p not in open_], "writable": open_}


def inside_uid(host_uid: int, uid_map: str) -> int:
    """The uid a process has inside its user namespace, from its host uid and uid_map."""
    for line in uid_map.splitlines():
        parts = line.split()
        if len(parts) == 3:
            inner, outer, count = (int(x) for x in parts)
            if outer <= host_uid < outer + count:
                return inner + host_uid - outer
    return host_uid


def _effective_uid(status: dict[str, str]) -> int:
    fields = status.get("Uid", "").split()
    return int(fields[1]) if len(fields) > 1 else -1


def build_card(pid: int, status: dict[str, str], mounts, namespaces: dict[str, str],
               paths: dict, uid_map: str = "", kernel: str = "host") -> dict:
    """The card of one workload from its status, mounts and namespaces (own or shared)."""
    caps = {key: decode_caps(int(status.get(field, "0") or "0", 16))
            for key, field in (("effective", "CapEff"), ("bounding", "CapBnd"),
                               ("ambient", "CapAmb"))}
    uid = _effective_uid(status)
    user_ns = namespaces.get("user") == "own"
    inside = inside_uid(uid, uid_map) if user_ns and kernel == "host" else uid
    card = {
        "pid": pid,
        "namespaces": namespaces,
        "capabilities": {**caps, "dangerous": [c for c in caps["effective"] if c in DANGEROUS],
                         "all": len(caps["bounding"]) == len(CAPABILITY_NAMES)},
        "seccomp": SECCOMP_MODES.get(int(status.get("Seccomp", "0") or 0),
                                     status.get("Seccomp")),
        "seccomp_filters": int(status.get("Seccomp_filters", "0") or 0),
        "no_new_privs": status.get("NoNewPrivs") == "1",
        "uid_map": status.get("Uid", ""),
        "uid": {"inside": inside, "host": uid if kernel == "host" else None},
        "runs_as_root": inside == 0,
        "user_namespace": user_ns,
        "rootfs": _root_mount(mounts),
        "paths": paths,
        "kernel": kernel,
        "shares_host_kernel": shares_host_kernel(kernel),
        "cgroup": None,
        "sandbox_privileges": None,
    }
    return card


def facts_of(card: dict) -> Facts:
    from isoinspect.runtime.cgroups.layout import read_layout

    try:
        v2_only = read_layout().mode == "unified"
    except OSError:
        v2_only = False
    return Facts({n: "own" if s == "own" else "shared" for n, s in card["namespaces"].items()},
                 card["capabilities"]["effective"], card["seccomp"], card["no_new_privs"],
                 card["paths"]["visible"], card["paths"]["writable"], card["runs_as_root"],
                 card["user_namespace"], card["kernel"], v2_only)


def judged(card: dict) -> dict:
    """``card`` with its verdict."""
    card["verdict"] = judge(facts_of(card)).to_dict()
    return card


def _cgroup(pid: int, proc: str, cgroup_root: str) -> dict | None:
    try:
        view = CgroupView.for_pid(pid, root=cgroup_root, proc=proc)
        return {"path": view.path, "cgroup_id": view.cgroup_id(),
                "limits": view.figures().limits()}
    except (OSError, ProcessLookupError):
        return None


def scorecard(pid: int, reference: int | None = None, proc: str = "/proc",
              cgroup_root: str = "/sys/fs/cgroup") -> dict:
    """The isolation facts of host process ``pid`` (a container's: its processes reach the
    host kernel), compared with ``reference`` (default: self), with its verdict."""
    reference = os.getpid() if reference is None else reference
    mine, host = _ns(pid, proc), _ns(reference, proc)
    namespaces = {}
    for name in PROC_NAMES:
        if mine[name] is None:
            namespaces[name] = "unknown"
        else:
            namespaces[name] = "shared with host" if mine[name] == host[name] else "own"
    status = parse_status(_read(f"{proc}/{pid}/status"))
    try:
        mounts = mount_table(_read(f"{proc}/{pid}/mountinfo"))
    except OSError:
        mounts = []
    root = f"{proc}/{pid}/root"
    paths = path_facts(mounts, lambda p: os.path.lexists(root + p),
                       lambda p: os.access(root + p, os.W_OK))
    try:
        uid_map = _read(f"{proc}/{pid}/uid_map")
    except OSError:
        uid_map = ""
    card = build_card(pid, status, mounts, namespaces, paths, uid_map)
    card["cgroup"] = _cgroup(pid, proc, cgroup_root)
    return judged(card)


def format_card(card: dict) -> str:
    lines = [f"isolation scorecard of pid {card['pid']}"]
    if card.get("workload_unread"):      # a QEMU process: its guest is not readable from here
        lines.append("  workload      in the guest, not readable from the host "
                     "(`isoinspect isolation` runs a probe in its own guest)")
        lines += _tail_lines(card)
        return "\n".join(lines)
    for name, state in card["namespaces"].items():
        lines.append(f"  ns {name:<7} {state}")
    caps = card["capabilities"]
    lines.append(f"  capabilities  {len(caps['effective'])} effective"
                 + (f" (dangerous: {', '.join(caps['dangerous'])})" if caps["dangerous"] else ""))
    lines.append(f"  seccomp       {card['seccomp']}")
    lines.append(f"  no_new_privs  {'yes' if card['no_new_privs'] else 'no'}")
    root = card.get("rootfs") or {}
    if root:
        lines.append(f"  rootfs        {'read-only' if root['read_only'] else 'read-write'} "
                     f"{root['fstype']}; masked: {', '.join(root['masked_paths']) or 'none'}")
    paths = card["paths"]
    lines.append(f"  paths         {len(paths['masked'])}/{len(MASKED_PATHS)} of Docker's masked "
                 f"hidden, {len(paths['read_only'])}/{len(READONLY_PATHS)} read-only"
                 + (f"; visible: {', '.join(paths['visible'])}" if paths["visible"] else "")
                 + (f"; writable: {', '.join(paths['writable'])}" if paths["writable"] else ""))
    lines.append(f"  runs as root  {_root_text(card)}")
    lines += _tail_lines(card)
    return "\n".join(lines)


def _tail_lines(card: dict) -> list[str]:
    """Cgroup, host kernel, the sandbox's own host processes and the verdict."""
    lines = []
    cgroup = card.get("cgroup")
    if cgroup:
        limits = cgroup["limits"]
        mem = limits.get("memory", {}).get("max")
        pids = limits.get("pids", {}).get("max")
        cpu = limits.get("cpu", {})
        quota = (f"{cpu['quota_us'] / cpu['period_us']:.2f} CPU" if cpu.get("quota_us", -1) > 0
                 else "no CPU quota")
        lines.append(f"  cgroup        {cgroup['path']}: memory "
                     f"{'unlimited' if mem in (None, -1) else f'{mem >> 20} MiB'}, pids "
                     f"{'unlimited' if pids in (None, -1) else pids}, {quota}")
    lines.append(f"  host kernel   {card['shares_host_kernel']}")
    privileges = card.get("sandbox_privileges") or {}
    for role, facts in privileges.items():
        lines.append(f"  {role:<13} host pid {facts['pid']}: {facts['summary']}")
    lines.append(f"  verdict       {card['verdict']['text']}")
    return lines


def _root_text(card: dict) -> str:
    if not card["runs_as_root"]:
        return f"no (uid {card['uid']['inside']})"
    if card["kernel"] == "sentry":
        return "yes, in the sandbox (the Sentry's root, not the host's)"
    if card["user_namespace"] and card["kernel"] == "host":
        return f"yes, in a user namespace (host uid {card['uid']['host']})"
    return "yes" + (" (uid 0 is the host's root)" if card["kernel"] == "host" else
                    " (in the guest kernel)")
