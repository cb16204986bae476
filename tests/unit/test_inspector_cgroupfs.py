"""Inspector cgroup readers against fake trees built from real recorded cgroupfs dumps."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from isoinspect.inspector import cgroupfs
from isoinspect.inspector.cgroupfs import CgroupView
from isoinspect.runtime.cgroups.figures import Cpu, Figures, Memory, MemoryEvents, delta

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


def test_v2_figures_recorded_after_oom_and_fork_storm(v2):
    view = CgroupView.for_path(PATH, root=v2, mountinfo=None)
    assert view.version == 2
    figures = view.figures()
    limits = figures.limits()
    assert limits["memory"]["max"] == 64 << 20
    assert limits["memory"]["swap_max"] == 0
    assert limits["cpu"] == {"quota_us": 50000, "period_us": 100000, "weight": 39}
    assert limits["pids"] == {"max": 10}
    memory = figures.memory
    assert memory.current == 102400 and memory.peak == 64 << 20
    assert memory.events.oom_kill == 1 and memory.events.max == 51
    assert figures.cpu.nr_throttled == 16 and figures.cpu.throttled_usec == 789393
    assert figures.pids.events.max == 1
    assert (figures.io.rbytes, figures.io.wbytes, figures.io.rios, figures.io.wios) == \
        (262144, 1048576, 64, 256)
    assert figures.cpu.pressure["some"]["total"] == 852881
    assert figures.memory.pressure and figures.io.pressure


def test_v1_hybrid_same_shape_as_v2(v1):
    view = CgroupView.for_path(PATH, root=v1, mountinfo=None)
    assert view.version == 1
    figures = view.figures()
    assert figures.memory.max == 64 << 20
    assert figures.memory.swap_max == 0          # memsw == memory: no swap
    assert figures.cpu.quota_us == 50000 and figures.cpu.period_us == 100000
    assert figures.pids.max == 10
    assert figures.memory.events.oom_kill == 1 and figures.memory.peak == 64 << 20
    assert figures.cpu.usage_usec == 361562823 // 1000
    assert figures.cpu.nr_throttled == 5 and figures.cpu.throttled_usec == 228443
    assert figures.pids.peak == 10 and figures.pids.events.max == 3
    assert figures.io.rbytes == 1191936 and figures.io.wios == 256
    # the same names as on v2 for the counters the inspector cross-checks
    v2_names = CgroupView.for_path(PATH, root=trees.v2_tree(Path(v1).parent / "v2", fresh=False),
                                   mountinfo=None).figures().to_dict()
    expected = {"memory": {"current", "peak", "max", "events"},
                "pids": {"current", "max", "events"},
                "cpu": {"usage_usec", "nr_throttled", "throttled_usec", "quota_us"},
                "io": {"rbytes", "wbytes", "rios", "wios"}}
    for section, names in expected.items():
        assert names <= set(v2_names[section]) & set(figures.to_dict()[section]), section


@pytest.mark.parametrize("tree", ["v1", "v2", "legacy"])
def test_inspect_and_trace_read_the_same_figures(tree, tmp_path):
    """One reader: the runtime's manager (``inspect``'s Stats) and the inspector's view
    (``trace``) give the same record, hence the same names, for the same cgroup."""
    from isoinspect.runtime.cgroups import make_manager

    root = (trees.v2_tree(tmp_path, fresh=False) if tree == "v2" else
            trees.v1_tree(tmp_path, layout="legacy" if tree == "legacy" else "hybrid",
                          fresh=False))
    ours = make_manager(trees.CONTAINER, root=root, mountinfo=None).stats()
    theirs = CgroupView.for_path(PATH, root=root, mountinfo=None).figures()
    assert ours == theirs and ours.memory is not None and ours.pids is not None
    assert CgroupView.for_path(PATH, root=root, mountinfo=None).snapshot()["stats"] == \
        ours.to_dict()


def test_v1_legacy_combined_cpu_cpuacct(legacy):
    view = CgroupView.for_path(PATH, root=legacy, mountinfo=None)
    assert view.dirs["cpu"] == view.dirs["cpuacct"]
    assert view.figures().cpu.quota_us == 50000
    assert view.figures().cpu.usage_usec is not None


def test_unlimited_reads_minus_one(tmp_path):
    root = trees.v1_tree(tmp_path, fresh=True)
    limits = CgroupView.for_path(PATH, root=root, mountinfo=None).figures().limits()
    assert limits["memory"]["max"] == -1 and limits["memory"]["swap_max"] == -1
    assert limits["cpu"]["quota_us"] == -1 and limits["pids"]["max"] == -1


def test_missing_controllers_are_left_out(tmp_path):
    root = tmp_path / "cg"
    (root / "a").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "a" / "memory.current").write_text("4096\n")
    view = CgroupView.for_path("/a", root=str(root), mountinfo=None)
    assert view.figures().to_dict() == {"memory": {"current": 4096, "events": {}}}
    assert view.figures().limits() == {}


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
    before = Figures(cpu=Cpu(usage_usec=10, nr_throttled=1, quota_us=50000),
                     memory=Memory(current=5, max=100, events=MemoryEvents(oom_kill=0)))
    after = Figures(cpu=Cpu(usage_usec=25, nr_throttled=4, quota_us=50000),
                    memory=Memory(current=9, max=100, events=MemoryEvents(oom_kill=2)))
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
    assert "memory" in snap["stats"] or "cpu" in snap["stats"]
