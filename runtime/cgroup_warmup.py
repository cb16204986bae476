"""Overlap the kernel's cgroup-attach grace period with the CLI's own start-up.

The first write to any cgroup.procs takes the global cgroup_threadgroup_rwsem for writing,
which waits for an RCU grace period (~7-10 ms measured on this host); writes that follow while
the kernel's rcu_sync is still out of its idle state (until one to two grace periods after the
last write) are fast (~0.05 ms). A container's first process must make such a write before
exec. The CLI therefore starts, as early as possible, a thread that re-writes its own pid into
the cgroup it is already in (a no-op move that needs the same lock), so the grace period passes
while Python imports the runtime, and then keeps re-writing it every KEEP_ALIVE_EVERY_S until
just before the clone, so that the container's own write still finds the lock warm. One
write only was not enough: the CLI's start takes longer than the window, and the container's
write paid a full grace period again (5.8-15.5 ms under strace).
"""

from __future__ import annotations

import os
import time

from isoinspect.runtime.cgroups.layout import ROOT, UNIFIED, parse_proc_cgroup, read_layout


def own_cgroup_procs(proc_self_cgroup: str = "/proc/self/cgroup",
                      cgroup_root: str = ROOT) -> str | None:
    """cgroup.procs of a hierarchy this process is in, preferring cgroup v2, then pids. The
    layout read here is the one the runtime's cgroup manager reuses (read once per process)."""
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


#: between two no-op re-writes: well inside one grace period, so the lock never cools down
KEEP_ALIVE_EVERY_S = 0.002
#: a start that never reaches its clone (an error, a pull) stops re-writing after this long
KEEP_ALIVE_MAX_S = 2.0

_done = None  # a _thread lock held while the warm-up runs
_stop = None  # a _thread lock held until wait_warmup() asks the warm-up to stop


def _forget_in_child() -> None:
    """A forked child has no warm-up thread, so nothing would ever release its copy of the
    lock: a ``run -d`` monitor forked mid warm-up then blocked forever in wait_warmup()."""
    global _done, _stop
    _done = _stop = None


os.register_at_fork(after_in_child=_forget_in_child)


def _rewrite_own_pid(procs: str, stop, done) -> None:
    """Re-write our pid into ``procs`` until ``stop`` is released (or KEEP_ALIVE_MAX_S)."""
    deadline = time.monotonic() + KEEP_ALIVE_MAX_S
    try:
        fd = os.open(procs, os.O_WRONLY)
        try:
            pid = str(os.getpid()).encode()
            while True:
                os.write(fd, pid)
                if stop.acquire(timeout=KEEP_ALIVE_EVERY_S) or time.monotonic() > deadline:
                    break
        finally:
            os.close(fd)
    except OSError:
        pass  # only an optimisation: the container start makes its own write anyway
    finally:
        done.release()


def start_warmup() -> None:
    """Start the no-op cgroup moves in a background thread (root only; cheap to call)."""
    if os.geteuid() != 0:
        return
    procs = own_cgroup_procs()
    if procs is None:
        return
    import _thread

    global _done, _stop
    _done, _stop = _thread.allocate_lock(), _thread.allocate_lock()
    _done.acquire()
    _stop.acquire()
    _thread.start_new_thread(_rewrite_own_pid, (procs, _stop, _done))


def wait_warmup() -> None:
    """Stop the warm-up and block until its thread is gone. Must be called before clone(): a
    raw clone copies only the calling thread, and a child cloned while another thread exists
    could find the interpreter lock held by a thread that does not exist in it. Called just
    before the clone, so the container's cgroup write follows the last no-op one closely."""
    global _done, _stop
    if _done is not None:
        if _stop is not None:
            _stop.release()
        _done.acquire()
        _done = _stop = None
