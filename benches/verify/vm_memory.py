"""Memory in a VM: judged from the guest, where a VM enforces it.

A VM manager limits memory by the guest's RAM (``-m``); inside, the guest kernel is all the
workload has, and past it the guest's OOM killer (or an allocation failure) stops the
workload. The host cgroup around QEMU (libvirt ``hard_limit``: guest RAM + QEMU's overhead)
only holds QEMU as a whole. The hogs are the containers' own (memory.HOG_PIPE, same sizes),
run by busybox in the guest; the guest reports its RAM, its OOM kills and the kernel's OOM
report around them.

PASS, memory-oom (hog of 3 x LIMIT): the hog is SIGKILLed (exit 137), the guest's
/proc/vmstat oom_kill went up, the largest victim's RSS in the guest kernel's OOM report
(anon + file + shmem) is at most LIMIT (what the workload got, measured, against the limit
asked for), QEMU is still running afterwards (the guest, not the host, stopped the hog) and the host's
OOM killer never acted in QEMU's cgroup (its hard limit held QEMU; failcnt, peak and limit are
in the evidence).
PASS, memory-under-limit (hog of LIMIT / 4): it runs to the end (exit 0), the guest counted no
OOM kill, and the guest offers its workload at most LIMIT (MemAvailable at the job's start:
the limit is in force; it is the figure measured).
"""

from __future__ import annotations

import re

from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets.base import Target
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.memory import HOG_PIPE, LIMIT
from isoinspect.benches.verify.result import make_result
from isoinspect.runtime.diagnostics import Status

DONE = "guest-report-done"
JOB = ("grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; grep -w oom_kill /proc/vmstat; "
       f"{HOG_PIPE}; "
       "grep -w oom_kill /proc/vmstat | sed 's/^/after-/'; dmesg | grep -i 'killed process'; "
       f"echo {DONE}; sleep 60")
KILLED = re.compile(r"Killed process \d+ \((?P<comm>[^)]*)\).*?anon-rss:(?P<anon>\d+)kB, "
                    r"file-rss:(?P<file>\d+)kB, shmem-rss:(?P<shmem>\d+)kB")


def parse_report(text: str) -> dict:
    """The guest's report: hog exit, RAM (bytes), oom_kill before/after, OOM victims."""
    seen: dict = {"victims": []}
    for line in text.splitlines():
        words = line.split()
        if line.startswith(("MemTotal:", "MemAvailable:")) and len(words) >= 2:
            seen[words[0].rstrip(":")] = int(words[1]) * 1024
        elif words[:1] == ["oom_kill"] and len(words) == 2:
            seen["oom_kill_before"] = int(words[1])
        elif words[:1] == ["after-oom_kill"] and len(words) == 2:
            seen["oom_kill_after"] = int(words[1])
        elif line.startswith("hog-exit="):
            seen["hog_exit"] = int(line.split("=", 1)[1].split()[0])
        match = KILLED.search(line)
        if match:
            seen["victims"].append({
                "comm": match["comm"],
                "rss": 1024 * (int(match["anon"]) + int(match["file"]) + int(match["shmem"]))})
    seen["guest_oom_kills"] = seen.get("oom_kill_after", 0) - seen.get("oom_kill_before", 0)
    return seen


def run_guest_hog(rt: Target, size: int, ctx: Context) -> tuple[dict, dict]:
    """The hog in a guest sized for LIMIT: (the guest's report, the host's view of QEMU)."""
    box = rt.start(["sh", "-c", JOB.format(size=size)], Limits(memory=LIMIT))
    try:
        text = box.wait_for(DONE, timeout=80)
        host = {"qemu_alive": box.alive(),
                "memory": box.view.figures().to_dict().get("memory") or {}}
    finally:
        box.stop()
    return parse_report(text), host


def _host_problems(host: dict) -> list[str]:
    problems = []
    if not host["qemu_alive"]:
        problems.append("QEMU died: the host, not the guest, stopped the workload")
    events = host["memory"].get("events") or {}
    if events.get("oom_kill"):
        problems.append(f"the host's OOM killer acted in QEMU's cgroup (hard limit "
                        f"{host['memory'].get('max')}, {events['oom_kill']} oom_kill)")
    return problems


def check_oom(rt: Target, ctx: Context) -> list[dict]:
    size = 3 * LIMIT
    seen, host = run_guest_hog(rt, size, ctx)
    victim = max((v["rss"] for v in seen["victims"]), default=None)
    problems = []
    if seen.get("hog_exit") != 137:
        problems.append(f"the hog was not killed (exit {seen.get('hog_exit')})")
    if seen["guest_oom_kills"] < 1:
        problems.append("the guest's /proc/vmstat counted no oom_kill")
    if victim is None:
        problems.append("no OOM report (Killed process) in the guest kernel's log")
    elif victim > LIMIT:
        problems.append(f"the OOM victim held {victim >> 20} MiB, more than the "
                        f"{LIMIT >> 20} MiB limit (the guest's RAM left it that much)")
    return _result(rt, "memory-oom", problems, victim, seen, host, size, lambda: (
        f"hog of {size >> 20} MiB killed by the guest's OOM killer at "
        f"{victim / (1 << 20):.1f} MiB RSS ({seen['guest_oom_kills']} guest oom_kill), "
        "QEMU unharmed within its host hard limit"))


def check_under_limit(rt: Target, ctx: Context) -> list[dict]:
    size = LIMIT // 4
    seen, host = run_guest_hog(rt, size, ctx)
    available = seen.get("MemAvailable")
    problems = []
    if available is None or available > LIMIT:
        problems.append(f"the guest offers its workload {available} bytes, more than the "
                        f"{LIMIT >> 20} MiB limit")
    if seen.get("hog_exit") != 0 or seen["guest_oom_kills"]:
        problems.append(f"a {size >> 20} MiB process was killed (exit {seen.get('hog_exit')}, "
                        f"{seen['guest_oom_kills']} guest oom_kill)")
    return _result(rt, "memory-under-limit", problems, available, seen, host, size, lambda: (
        f"{size >> 20} MiB ran to the end in a guest offering "
        f"{available / (1 << 20):.1f} MiB (MemAvailable) of its "
        f"{seen.get('MemTotal', 0) / (1 << 20):.1f} MiB, no oom_kill"))


def _result(rt: Target, check: str, problems: list[str], measured, seen: dict, host: dict,
            size: int, passed) -> list[dict]:
    """The check's result against LIMIT; ``passed()`` says why when nothing went wrong."""
    problems = problems + _host_problems(host)
    return [make_result(rt.name, check, "memory", Status.judge(not problems),
                        measured=measured, expected=LIMIT, tolerance=0, unit="bytes",
                        why="; ".join(problems) or passed(),
                        evidence={"guest": seen, "host_qemu": host, "hog_bytes": size})]
