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
from isoinspect.runtime.linux.paths_policy import MASKED_PATHS

from .cgroupfs import CgroupView

DANGEROUS = ("SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "NET_ADMIN", "BPF",
             "PERFMON", "SYS_BOOT", "MAC_ADMIN", "DAC_READ_SEARCH")
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}


def decode_caps(mask: int) -> list[str]:
    """Names (no CAP_ prefix) of the capabilities set in a /proc status mask, lowest first."""
    return [name for bit, name in enumerate(CAPABILITY_NAMES) if mask & (1 << bit)]


def _status(pid: int, proc: str) -> dict[str, str]:
    out = {}
    with open(f"{proc}/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _ns(pid, proc: str) -> dict[str, str | None]:
    out = {}
    for name in PROC_NAMES:
        try:
            out[name] = os.readlink(f"{proc}/{pid}/ns/{name}")
        except OSError:
            out[name] = None
    return out


def _root_mount(pid: int, proc: str) -> dict | None:
    try:
        with open(f"{proc}/{pid}/mountinfo") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    found = None
    masked = []
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) < 6:
            continue
        point, options = fields[4], fields[5].split(",")
        if point == "/":
            found = {"read_only": "ro" in options, "fstype": after.split()[0] if after else ""}
        if point in MASKED_PATHS:
            masked.append(point)
    if found is not None:
        found["masked_paths"] = masked
    return found


def scorecard(pid: int, reference: int | None = None, proc: str = "/proc",
              cgroup_root: str = "/sys/fs/cgroup") -> dict:
    """The isolation facts of process ``pid``, compared with ``reference`` (default: self)."""
    reference = os.getpid() if reference is None else reference
    mine, host = _ns(pid, proc), _ns(reference, proc)
    namespaces = {}
    for name in PROC_NAMES:
        if mine[name] is None:
            namespaces[name] = "unknown"
        else:
            namespaces[name] = "shared with host" if mine[name] == host[name] else "own"
    status = _status(pid, proc)
    caps = {key: decode_caps(int(status.get(field, "0"), 16))
            for key, field in (("effective", "CapEff"), ("bounding", "CapBnd"),
                               ("ambient", "CapAmb"))}
    card = {
        "pid": pid,
        "namespaces": namespaces,
        "capabilities": {**caps, "dangerous": [c for c in caps["effective"] if c in DANGEROUS],
                         "all": len(caps["bounding"]) == len(CAPABILITY_NAMES)},
        "seccomp": SECCOMP_MODES.get(int(status.get("Seccomp", "0")), status.get("Seccomp")),
        "seccomp_filters": int(status.get("Seccomp_filters", "0") or 0),
        "no_new_privs": status.get("NoNewPrivs") == "1",
        "uid_map": status.get("Uid", ""),
        "rootfs": _root_mount(pid, proc),
    }
    try:
        view = CgroupView.for_pid(pid, root=cgroup_root, proc=proc)
        card["cgroup"] = {"path": view.path, "cgroup_id": view.cgroup_id(),
                          "limits": view.figures().limits()}
    except (OSError, ProcessLookupError):
        card["cgroup"] = None
    own = sum(1 for v in namespaces.values() if v == "own")
    card["score"] = {
        "own_namespaces": own,
        "confined": own >= 5 and card["seccomp"] == "filter" and card["no_new_privs"]
        and not card["capabilities"]["dangerous"],
    }
    return card


def format_card(card: dict) -> str:
    lines = [f"isolation scorecard of pid {card['pid']}"]
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
    lines.append(f"  confined      {'yes' if card['score']['confined'] else 'NO'} "
                 f"({card['score']['own_namespaces']}/8 own namespaces)")
    return "\n".join(lines)
