"""The cgroup warm-up thread must never leave a forked child waiting for it."""

import os
import time

from isoinspect.runtime import cgroup_warmup


def test_a_child_forked_during_warm_up_does_not_wait_for_a_thread_it_lacks():
    import _thread

    held = _thread.allocate_lock()
    held.acquire()  # as while the warm-up thread still runs in the parent
    cgroup_warmup._done = held
    try:
        child = os.fork()
        if child == 0:
            cgroup_warmup.wait_warmup()  # blocked forever before the at-fork reset
            os._exit(0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                assert os.waitstatus_to_exitcode(status) == 0
                return
            time.sleep(0.01)
        os.kill(child, 9)
        os.waitpid(child, 0)
        raise AssertionError("the forked child blocked in wait_warmup()")
    finally:
        held.release()
        cgroup_warmup._done = None


def test_warm_up_keeps_rewriting_until_asked_to_stop(tmp_path, monkeypatch):
    """The no-op move is repeated (the lock must still be warm at the container's own write,
    which comes later than one grace period after the first) and stops at wait_warmup()."""
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    writes = []
    real_write = os.write

    def counting_write(fd, data):
        writes.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(cgroup_warmup.os, "write", counting_write)
    import _thread

    cgroup_warmup._done, cgroup_warmup._stop = _thread.allocate_lock(), _thread.allocate_lock()
    cgroup_warmup._done.acquire()
    cgroup_warmup._stop.acquire()
    _thread.start_new_thread(cgroup_warmup._rewrite_own_pid,
                             (str(procs), cgroup_warmup._stop, cgroup_warmup._done))
    time.sleep(20 * cgroup_warmup.KEEP_ALIVE_EVERY_S)
    cgroup_warmup.wait_warmup()
    stopped_at = len(writes)
    time.sleep(5 * cgroup_warmup.KEEP_ALIVE_EVERY_S)
    assert stopped_at >= 3 and len(writes) == stopped_at
    assert set(writes) == {str(os.getpid()).encode()}
    assert cgroup_warmup._done is None and cgroup_warmup._stop is None


def test_warm_up_stops_by_itself_when_no_start_follows(tmp_path, monkeypatch):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    monkeypatch.setattr(cgroup_warmup, "KEEP_ALIVE_MAX_S", 0.05)
    import _thread

    stop, done = _thread.allocate_lock(), _thread.allocate_lock()
    stop.acquire()
    done.acquire()
    _thread.start_new_thread(cgroup_warmup._rewrite_own_pid, (str(procs), stop, done))
    assert done.acquire(timeout=5), "the warm-up thread did not stop at its deadline"


def test_own_cgroup_procs_prefers_cgroup2_then_pids(tmp_path):
    """The warm-up finds its own cgroup through the one layout reader (a hybrid fake tree)."""
    root = tmp_path / "cg"
    for directory in ("unified/a", "pids/b"):
        (root / directory).mkdir(parents=True)
        (root / directory / "cgroup.procs").write_text("")
    (root / "pids" / "cgroup.procs").write_text("")
    (root / "unified" / "cgroup.controllers").write_text("")
    own = tmp_path / "cgroup"
    own.write_text("9:name=systemd:/\n8:pids:/b\n0::/a\n")
    assert cgroup_warmup.own_cgroup_procs(str(own), str(root)) == \
        str(root / "unified" / "a" / "cgroup.procs")
    (root / "unified" / "a" / "cgroup.procs").unlink()
    assert cgroup_warmup.own_cgroup_procs(str(own), str(root)) == \
        str(root / "pids" / "b" / "cgroup.procs")
    assert cgroup_warmup.own_cgroup_procs(str(tmp_path / "missing"), str(root)) is None
