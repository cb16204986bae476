"""Overlap the kernel's cgroup-attach grace period with the CLI's own start-up.

The first write to any cgroup.procs takes the global cgroup_threadgroup_rwsem for writing,
which waits for an RCU grace period (~10 ms measured on this host); writes that follow within
about one grace period are fast (~0.05 ms). A container's first process must make such a write
before exec. The CLI therefore starts, as early as possible, a thread that re-writes its own pid
into the cgroup it is already in (a no-op move that needs the same lock), so the grace period
passes while Python imports the runtime instead of on the container's critical path.
"""

from __future__ import annotations

import os

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


_done = None  # a _thread lock held while the warm-up runs


def _forget_in_child() -> None:
    """A forked child has no warm-up thread, so nothing would ever release its copy of the
    lock: a ``run -d`` monitor forked mid warm-up then blocked forever in wait_warmup()."""
    global _done
    _done = None


os.register_at_fork(after_in_child=_forget_in_child)


def _rewrite_own_pid(procs: str) -> None:
    try:
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # only an optimisation: the container start makes its own write anyway
    finally:
        _done.release()


def start_warmup() -> None:
    """Start the no-op cgroup move in a background thread (root only; cheap to call)."""
    if os.geteuid() != 0:
        return
    procs = own_cgroup_procs()
    if procs is None:
        return
    import _thread

    global _done
    _done = _thread.allocate_lock()
    _done.acquire()
    _thread.start_new_thread(_rewrite_own_pid, (procs,))


def wait_warmup() -> None:
    """Block until the warm-up thread is gone. Must be called before clone(): a raw clone
    copies only the calling thread, and a child cloned while another thread exists could find
    the interpreter lock held by a thread that does not exist in it."""
    global _done
    if _done is not None:
        _done.acquire()
        _done = None
