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


def _own_cgroup_procs(proc_self_cgroup: str = "/proc/self/cgroup",
                      cgroup_root: str = "/sys/fs/cgroup") -> str | None:
    """cgroup.procs of a hierarchy this process is in, preferring cgroup v2, then pids."""
    try:
        with open(proc_self_cgroup) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        hierarchy_id, controllers, path = line.split(":", 2)
        if hierarchy_id == "0":
            candidates.append((0, f"{cgroup_root}/unified{path}", f"{cgroup_root}{path}"))
        elif controllers == "pids":
            candidates.append((1, f"{cgroup_root}/pids{path}", None))
    for _, first, second in sorted(candidates):
        for base in (first, second):
            if base and os.path.exists(f"{base.rstrip('/')}/cgroup.procs"):
                return f"{base.rstrip('/')}/cgroup.procs"
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
    procs = _own_cgroup_procs()
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
