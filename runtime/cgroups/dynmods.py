"""``doctor``'s line on the cgroup attach grace period and the kernel's opt-in ``favordynmods``.

Moving a process into a cgroup (a write to cgroup.procs, which every container start makes)
write-locks the global cgroup_threadgroup_rwsem. By default that is a per-CPU rwsem whose
writer waits for an RCU grace period (7-15 ms measured on this host) unless another writer
passed within about one. A container start avoids the write lock (CgroupManager.self_join_files:
v1's ``tasks`` for the new process's one thread, clone3 into the v2 directory), but any other
move of a whole process (``exec`` into a container, a user namespace's start) still pays it.
Linux 6.0+ can keep the lock in its slow mode instead (kernel commit 6a010a49b63a): the
``favordynmods`` option of a cgroup2 mount (a cgroup v1 hierarchy takes it only when first
mounted, not on remount), CONFIG_CGROUP_FAVOR_DYNMODS, or from 6.7 the boot option
``cgroup_favordynmods=true`` for both. Attaches then skip the grace period, but every fork and
exit on the host takes the lock's slower path: a host-wide trade-off that isoinspect never
makes behind the user's back. doctor says whether it is on and what an attach costs here.
(On cgroup v2, seeding a cgroup with CLONE_INTO_CGROUP avoids the write lock altogether.)
"""

from __future__ import annotations

import os
import time

from isoinspect.runtime.cgroups.layout import ROOT, UNIFIED, parse_proc_cgroup, read_layout
from isoinspect.runtime.diagnostics import Check, Status

NAME = "cgroup attach latency"
OPTION = "favordynmods"
BOOT_OPTION = "cgroup_favordynmods"


def favordynmods_sources(mountinfo: str, cmdline: str) -> list[str]:
    """Where favordynmods is on: cgroup mounts with it in their super options, and the boot
    option (``cgroup_favordynmods=true``/``1``/``y``)."""
    found = []
    for line in mountinfo.splitlines():
        _, sep, tail = line.partition(" - ")
        fields = tail.split()
        if sep and len(fields) >= 3 and fields[0] in ("cgroup", "cgroup2") and \
                OPTION in fields[2].split(","):
            found.append(line.split()[4])
    for word in cmdline.split():
        key, _, value = word.partition("=")
        if key == BOOT_OPTION and value.lower() in ("1", "y", "yes", "true", "on"):
            found.append(f"boot option {word}")
    return found


def time_attach(procs: str, writes: int = 2) -> list[float]:
    """Seconds taken by ``writes`` back-to-back no-op moves of this process into the cgroup
    it is already in (the same lock a container's attach takes; nothing changes)."""
    took = []
    for _ in range(writes):
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            begin = time.perf_counter()
            os.write(fd, str(os.getpid()).encode())
            took.append(time.perf_counter() - begin)
        finally:
            os.close(fd)
    return took


def own_cgroup_procs(proc_self_cgroup: str = "/proc/self/cgroup",
                      cgroup_root: str = ROOT) -> str | None:
    """cgroup.procs of a hierarchy this process is in, preferring cgroup v2, then pids: where
    time_attach moves this process to the cgroup it is already in (a no-op move that needs
    the same lock)."""
    try:
        with open(proc_self_cgroup) as handle:
            paths = parse_proc_cgroup(handle.read())
        layout = read_layout(cgroup_root)
    except OSError:
        return None
    for key in (UNIFIED, "pids"):
        directory = layout.dir_of(key, paths[key]) if key in paths else None
        if directory and os.path.exists(directory + "/cgroup.procs"):
            return directory + "/cgroup.procs"
    return None


def check(mountinfo_path: str = "/proc/self/mountinfo",
          cmdline_path: str = "/proc/cmdline", procs: str | None = None) -> Check:
    """Whether favordynmods is on, and the measured cost of a first and a second attach."""
    try:
        with open(mountinfo_path) as handle:
            mountinfo = handle.read()
        with open(cmdline_path) as handle:
            cmdline = handle.read()
    except OSError as exc:
        return Check(NAME, Status.ERROR, f"cannot read {exc.filename}: {exc.strerror}")
    sources = favordynmods_sources(mountinfo, cmdline)
    procs = procs or own_cgroup_procs()
    data: dict = {"favordynmods": bool(sources), "sources": sources}
    measured = ""
    if procs and os.geteuid() == 0:
        try:
            first, second = time_attach(procs)
            data.update(first_ms=round(first * 1e3, 3), second_ms=round(second * 1e3, 3))
            measured = f"; a cgroup.procs write took {first * 1e3:.2f} ms, the next " \
                       f"{second * 1e3:.2f} ms"
        except OSError:
            pass
    if sources:
        return Check(NAME, Status.OK, f"{OPTION} on ({', '.join(sources)}){measured}",
                     "attaches skip the RCU grace period; forks and exits host-wide pay for it",
                     data=data)
    return Check(NAME, Status.OK, f"{OPTION} off (the kernel default){measured}",
                 "opt-in tuning, host-wide, never applied by isoinspect: mount cgroup2 with -o "
                 f"{OPTION} (v1: only at mount time) or boot with {BOOT_OPTION}=true (Linux "
                 "6.7+); an exec's attach then skips the RCU grace period (a start needs no "
                 "such attach), but every fork and "
                 "exit gets slower", data=data)
