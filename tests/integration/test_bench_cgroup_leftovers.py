"""Issue 18: a Ctrl-C during `bench startup` leaves no isoinspect-bench-<pid>-* cgroups, and
`gc` removes those of a benchmark that died (in every hierarchy), never those of a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import CLI
from isoinspect.runtime.cgroups.leftovers import PARENTS, mount_points, owned_cgroups


def _mine(pid: int) -> list[str]:
    return [c.path for c in owned_cgroups() if c.owner == pid]


@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_ctrl_c_during_bench_leaves_no_cgroups(tmp_path, delay):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) once a peer's
    container cgroup exists, then ``delay`` seconds later."""
    bench = subprocess.Popen(
        [CLI, "bench", "startup", "--quick", "--trace-runs", "0", "--targets",
         "isoinspect-cli,runc,runsc", "--results-dir", str(tmp_path / "results"),
         "--workdir", str(tmp_path / "work")],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not _mine(bench.pid):
            assert bench.poll() is None, bench.communicate()[0][-2000:]
            assert time.monotonic() < deadline, "no container cgroup within 300 s"
            time.sleep(0.005)
        time.sleep(delay)
        os.killpg(bench.pid, signal.SIGINT)
        out, _ = bench.communicate(timeout=300)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    assert bench.returncode == 130, out[-2000:]
    assert "Traceback" not in out
    assert _mine(bench.pid) == []


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_gc_removes_cgroups_of_dead_benchmarks_only(iso):
    dead, live = _dead_pid(), os.getpid()
    made_parents, made = [], []
    try:
        for point in mount_points():
            parent = os.path.join(point, PARENTS[0])
            if not os.path.isdir(parent):
                os.mkdir(parent)
                made_parents.append(parent)
            for owner in (dead, live):
                path = os.path.join(parent, f"isoinspect-bench-{owner}-0")
                os.mkdir(path)
                made.append(path)
        assert len(_mine(dead)) == len(mount_points()) >= 1
        done = iso("gc", check=True)
        assert _mine(dead) == [], done.stdout
        assert "of a dead benchmark" in done.stdout
        assert len(_mine(live)) == len(mount_points())
    finally:
        for path in reversed(made + made_parents):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # a parent another run uses
