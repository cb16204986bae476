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


def test_warm_up_finishes_and_wait_returns(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    import _thread

    cgroup_warmup._done = _thread.allocate_lock()
    cgroup_warmup._done.acquire()
    _thread.start_new_thread(cgroup_warmup._rewrite_own_pid, (str(procs),))
    cgroup_warmup.wait_warmup()
    assert procs.read_text() == str(os.getpid()) and cgroup_warmup._done is None


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
