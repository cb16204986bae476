"""The workload's own view when it does not run on the host kernel: inside a gVisor sandbox
(read with ``runsc exec``) or a QEMU guest (the guest job runs the probe itself).

The host's /proc shows only the Sentry or QEMU there, whose privileges are the sandbox's, not
the workload's: a scorecard of the Sentry says "SYS_ADMIN", which no workload process has. So
the probe (busybox sh) prints the workload's status, mounts, namespaces, which of Docker's
masked paths exist and which read-only ones are writable, and its kernel's boot id; the card is
built from that, and the host-side processes are summarised apart as ``sandbox_privileges``.

    card = unit_card(pid)     # any host pid: a container's, a runsc sandbox's, QEMU's
"""

from __future__ import annotations

import os
import subprocess

from isoinspect.runtime.linux.namespaces import PROC_NAMES
from isoinspect.runtime.linux.paths_policy import MASKED_PATHS, READONLY_PATHS

from .scorecard import (build_card, judged, mount_table, parse_status, path_facts,
                        scorecard, _cgroup)

END = "@@end"
PROBE_TIMEOUT_S = 30.0


def probe_script(pid: str) -> str:
    """Shell text printing the sections :func:`parse_probe` reads about process ``pid`` ("1",
    or "$$" for the shell itself, which then execs the workload)."""
    return "\n".join([
        f"p={pid}",
        "echo @@status; cat /proc/$p/status",
        "echo @@mountinfo; cat /proc/$p/mountinfo",
        f"echo @@ns; for n in {' '.join(PROC_NAMES)}; do "
        "echo \"$n $(readlink /proc/$p/ns/$n 2>/dev/null)\"; done",
        "echo @@uid_map; cat /proc/$p/uid_map 2>/dev/null",
        f"echo @@exists; for f in {' '.join(MASKED_PATHS + READONLY_PATHS)}; do "
        "[ -e \"$f\" ] && echo \"$f\"; done",
        f"echo @@writable; for f in {' '.join(READONLY_PATHS)}; do "
        "[ -e \"$f\" ] && [ -w \"$f\" ] && echo \"$f\"; done",
        "echo @@boot_id; cat /proc/sys/kernel/random/boot_id 2>/dev/null",
        "echo @@version; cat /proc/version 2>/dev/null",
        f"echo {END}",
    ])


def parse_probe(text: str) -> dict[str, str]:
    """Section name -> its text."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@") and line != END:
            current = line[2:].strip()
            sections[current] = []
        elif current is not None and line != END:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def host_boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()


def guest_card(text: str, runner: str) -> dict:
    """The card of the workload from the probe's output; ``runner``: "sentry" or "guest" (what
    stands between it and the host kernel). A boot id equal to the host's means the probe ran
    on the host kernel after all."""
    sections = parse_probe(text)
    if "status" not in sections or "version" not in sections:
        raise OSError(f"the probe printed no status: {text[-300:]!r}")
    same_kernel = sections.get("boot_id", "").strip() == host_boot_id()
    kernel = "host" if same_kernel else runner
    guest_ns = dict(line.split(" ", 1) for line in sections.get("ns", "").splitlines()
                    if " " in line)
    # a separate kernel: none of its namespaces is one of the host's, whatever their numbers
    namespaces = {name: "own" for name in PROC_NAMES}
    exists = set(sections.get("exists", "").split())
    writable = set(sections.get("writable", "").split())
    mounts = mount_table(sections.get("mountinfo", ""))
    paths = path_facts(mounts, exists.__contains__, writable.__contains__)
    card = build_card(1, parse_status(sections["status"]), mounts, namespaces, paths,
                      sections.get("uid_map", ""), kernel)
    card["guest"] = {"namespaces": {n: l.strip() or None for n, l in guest_ns.items()},
                     "kernel_version": sections["version"].strip()[:200],
                     "boot_id": sections.get("boot_id", "").strip() or None}
    return card


def privileges(pid: int) -> dict:
    """A host process of the sandbox (the Sentry, the Gofer, QEMU) summarised: its host-side
    privileges, what a break-out from the guest kernel would start from."""
    card = scorecard(pid)
    caps = card["capabilities"]
    shared = sorted(n for n, s in card["namespaces"].items() if s != "own")
    summary = (f"{'root' if card['runs_as_root'] else 'uid ' + str(card['uid']['inside'])}"
               f"{' in a user namespace' if card['user_namespace'] else ''}, "
               f"{len(caps['effective'])} capabilities"
               f"{' (' + ', '.join(caps['dangerous']) + ')' if caps['dangerous'] else ''}, "
               f"seccomp {card['seccomp']}, no_new_privs {'yes' if card['no_new_privs'] else 'no'}"
               f", host namespaces shared: {', '.join(shared) or 'none'}")
    return {"pid": pid, "process": _comm(pid), "runs_as_root": card["runs_as_root"],
            "user_namespace": card["user_namespace"],
            "capabilities": len(caps["effective"]), "dangerous_capabilities": caps["dangerous"],
            "seccomp": card["seccomp"], "no_new_privs": card["no_new_privs"],
            "namespaces_shared": shared, "summary": summary}


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def runsc_sandbox(pid: int) -> dict | None:
    """runsc's state root, container id, bundle and binary when ``pid`` is a sandbox (Sentry)
    process (``runsc-sandbox --root=R ... boot ... --bundle=B ... <id>``), else None."""
    argv = _argv(pid)
    if not argv or argv[0] != "runsc-sandbox" or "boot" not in argv:
        return None
    root = next((a.split("=", 1)[1] for a in argv if a.startswith("--root=")), None)
    bundle = next((a.split("=", 1)[1] for a in argv if a.startswith("--bundle=")), None)
    try:
        binary = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        binary = "runsc"
    return {"root": root, "id": argv[-1], "bundle": bundle, "binary": binary}


def _gofer_of(sandbox: dict) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = _argv(int(entry))
            if argv and argv[0] == "runsc-gofer" and sandbox["bundle"] in argv:
                return int(entry)
    return None


def runsc_card(pid: int, sandbox: dict | None = None) -> dict:
    """The gVisor workload's card (``runsc exec`` of the probe about the container's PID 1),
    with the Sentry's and Gofer's host privileges and the sandbox's host cgroup."""
    sandbox = sandbox or runsc_sandbox(pid)
    argv = [sandbox["binary"], *([f"--root={sandbox['root']}"] if sandbox["root"] else []),
            "exec", sandbox["id"], "/bin/sh", "-c", probe_script("1")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    if END not in result.stdout:
        raise OSError(f"runsc exec of the probe failed (exit {result.returncode}): "
                      f"{result.stderr.strip()[-300:]}")
    card = guest_card(result.stdout, "sentry")
    card["pid"] = pid
    card["cgroup"] = _cgroup(pid, "/proc", "/sys/fs/cgroup")
    roles = {"sentry": pid}
    gofer = _gofer_of(sandbox) if sandbox["bundle"] else None
    if gofer:
        roles["gofer"] = gofer
    card["sandbox_privileges"] = {role: privileges(p) for role, p in roles.items()}
    return judged(card)


def qemu_card(pid: int, probe_output: str | None) -> dict:
    """A QEMU guest's workload card from the probe the guest job printed; without it (a QEMU
    process found on the host, its guest not reachable from here) only the verdict and
    QEMU's own host privileges are known."""
    if probe_output:
        card = guest_card(probe_output, "guest")
    else:
        card = build_card(pid, {}, [], {n: "own" for n in PROC_NAMES},
                          path_facts([], lambda _p: False, lambda _p: False), kernel="guest")
        card["guest"] = None
        card["workload_unread"] = True
    card["pid"] = pid
    card["cgroup"] = _cgroup(pid, "/proc", "/sys/fs/cgroup")
    card["sandbox_privileges"] = {"qemu": privileges(pid)}
    return judged(card)


def unit_card(pid: int) -> dict:
    """The card of whatever unit host process ``pid`` belongs to: a runsc sandbox is judged
    by its workload's view, a QEMU process as a separate kernel, anything else directly."""
    sandbox = runsc_sandbox(pid)
    if sandbox:
        return runsc_card(pid, sandbox)
    if _comm(pid).startswith("qemu-system"):
        return qemu_card(pid, None)
    return scorecard(pid)
