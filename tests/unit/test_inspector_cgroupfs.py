"""Inspector cgroup readers against fake trees built from real recorded cgroupfs dumps."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from isoinspect.inspector import cgroupfs
from isoinspect.inspector.cgroupfs import CgroupView, delta

_spec = importlib.util.spec_from_file_location(
    "cgroup_trees", Path(__file__).resolve().parents[1] / "fixtures" / "cgroupv2" / "trees.py")
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

PATH = "/" + trees.CONTAINER


@pytest.fixture
def v2(tmp_path):
    return trees.v2_tree(tmp_path / "v2", fresh=False)


@pytest.fixture
def v1(tmp_path):
    return trees.v1_tree(tmp_path / "v1", fresh=False)


@pytest.fixture
def legacy(tmp_path):
    return trees.v1_tree(tmp_path / "legacy", layout="legacy", fresh=False)


def test_v2_limits_and_usage_recorded_after_oom_and_fork_storm(v2):
    view = CgroupView.for_path(PATH, root=v2, mountinfo=None)
    assert view.version == 2
    limits = view.limits()
    assert limits["memory"]["max"] == 64 << 20
    assert limits["memory"]["swap_max"] == 0
    assert limits["cpu"] == {"quota_us": 50000, "period_us": 100000, "weight": 39}
    assert limits["pids"] == {"max": 10}
    usage = view.usage()
    assert usage["memory"]["current"] == 102400
    assert usage["memory"]["peak"] == 64 << 20
    assert usage["memory"]["events"]["oom_kill"] == 1
    assert usage["memory"]["events"]["max"] == 51
    assert usage["cpu"]["nr_throttled"] == 16 and usage["cpu"]["throttled_usec"] == 789393
    assert usage["pids"]["events"]["max"] == 1
    assert usage["io"] == {"rbytes": 262144, "wbytes": 1048576, "rios": 64, "wios": 256}
    assert usage["psi"]["cpu"]["some"]["total"] == 852881
    assert set(usage["psi"]) == {"cpu", "memory", "io"}


def test_v1_hybrid_same_shape_as_v2(v1):
    view = CgroupView.for_path(PATH, root=v1, mountinfo=None)
    assert view.version == 1
    limits = view.limits()
    assert limits["memory"]["max"] == 64 << 20
    assert limits["memory"]["swap_max"] == 0          # memsw == memory: no swap
    assert limits["cpu"]["quota_us"] == 50000 and limits["cpu"]["period_us"] == 100000
    assert limits["pids"]["max"] == 10
    usage = view.usage()
    assert usage["memory"]["events"]["oom_kill"] == 1
    assert usage["memory"]["peak"] == 64 << 20
    assert usage["cpu"]["usage_usec"] == 361562823 // 1000
    assert usage["cpu"]["nr_throttled"] == 5
    assert usage["cpu"]["throttled_usec"] == 228443
    assert usage["pids"]["peak"] == 10 and usage["pids"]["events"] == {"max": 3}
    assert usage["io"]["rbytes"] == 1191936 and usage["io"]["wios"] == 256
    v2_keys = {"memory", "cpu", "pids", "io"}
    assert v2_keys <= set(usage)
    # the same keys as on v2 for the counters the inspector cross-checks
    for key in ("nr_periods", "nr_throttled", "throttled_usec", "usage_usec"):
        assert key in usage["cpu"]


def test_v1_legacy_combined_cpu_cpuacct(legacy):
    view = CgroupView.for_path(PATH, root=legacy, mountinfo=None)
    assert view.dirs["cpu"] == view.dirs["cpuacct"]
    assert view.limits()["cpu"]["quota_us"] == 50000
    assert "usage_usec" in view.usage()["cpu"]


def test_unlimited_reads_minus_one(tmp_path):
    root = trees.v1_tree(tmp_path, fresh=True)
    limits = CgroupView.for_path(PATH, root=root, mountinfo=None).limits()
    assert limits["memory"]["max"] == -1 and limits["memory"]["swap_max"] == -1
    assert limits["cpu"]["quota_us"] == -1 and limits["pids"]["max"] == -1


def test_missing_controllers_are_left_out(tmp_path):
    root = tmp_path / "cg"
    (root / "a").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "a" / "memory.current").write_text("4096\n")
    view = CgroupView.for_path("/a", root=str(root), mountinfo=None)
    assert view.usage() == {"memory": {"current": 4096, "events": {
        "low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0}}}
    assert view.limits() == {}


def test_for_pid_uses_each_hierarchys_path(tmp_path, v1):
    proc = tmp_path / "proc" / "42"
    proc.mkdir(parents=True)
    proc.joinpath("cgroup").write_text(
        f"4:memory:{PATH}\n8:pids:/\n0::{PATH}\n")
    view = CgroupView.for_pid(42, root=v1, proc=str(tmp_path / "proc"), mountinfo=None)
    assert view.dirs["memory"] == v1 + "/memory" + PATH
    assert view.dirs["pids"] == v1 + "/pids"
    assert view.cgroup_id() == os.stat(v1 + "/unified" + PATH).st_ino
    with pytest.raises(ProcessLookupError):
        CgroupView.for_pid(43, root=v1, proc=str(tmp_path / "proc"), mountinfo=None)


def test_hierarchy_and_snapshot(v2):
    view = CgroupView.for_path(PATH, root=v2, mountinfo=None)
    [entry] = view.hierarchy()
    assert entry["exists"] and entry["ancestors"] == ["/", "/isoinspect"]
    snap = view.snapshot()
    assert snap["setup"] == "unified" and snap["path"] == PATH
    assert snap["cgroup_id"] == os.stat(v2 + PATH).st_ino


def test_delta_of_counters():
    before = {"cpu": {"usage_usec": 10, "nr_throttled": 1}, "memory": {"current": 5,
                                                                         "events": {"oom_kill": 0}}}
    after = {"cpu": {"usage_usec": 25, "nr_throttled": 4}, "memory": {"current": 9,
                                                                        "events": {"oom_kill": 2}}}
    assert delta(before, after) == {"cpu": {"usage_usec": 15, "nr_throttled": 3},
                                    "memory": {"events": {"oom_kill": 2}}}


def test_find_by_id(v2):
    target = os.stat(v2 + PATH).st_ino
    assert cgroupfs.find_by_id(target, root=v2, mountinfo=None) == PATH
    assert cgroupfs.find_by_id(1, root=v2, mountinfo=None) is None


def test_real_host_cgroup_of_this_process():
    """The real cgroupfs of this host, read for our own pid (any setup)."""
    if not os.path.isdir("/sys/fs/cgroup"):
        pytest.skip("no cgroupfs")
    view = CgroupView.for_pid(os.getpid())
    snap = view.snapshot()
    assert snap["setup"] in ("unified", "hybrid", "legacy")
    assert "memory" in snap["usage"] or "cpu" in snap["usage"]
