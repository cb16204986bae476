"""cgroup v1 driver against fake trees built from files recorded on the hybrid CI host and in a
legacy ("cpu,cpuacct" combined) guest (layout detection: test_cgroups_layout.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from isoinspect.runtime.cgroups import fs
from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources, make_manager
from isoinspect.runtime.cgroups.manager import list_children
from isoinspect.runtime.cgroups.v1.manager import V1Manager

_spec = importlib.util.spec_from_file_location(
    "cgroup_trees", Path(__file__).resolve().parents[1] / "fixtures" / "cgroupv2" / "trees.py")
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

CONTAINER = trees.CONTAINER


@pytest.fixture
def root(tmp_path):
    return trees.v1_tree(tmp_path)


@pytest.fixture
def recorded(tmp_path):
    return trees.v1_tree(tmp_path, fresh=False)


@pytest.fixture
def legacy(tmp_path):
    return trees.v1_tree(tmp_path / "legacy", layout="legacy", fresh=False)


@pytest.fixture
def writes(monkeypatch):
    return trees.record_writes(monkeypatch)


def read(root, controller, name, where=CONTAINER):
    return Path(root, controller, where, name).read_text().strip()


def manager_for(root) -> V1Manager:
    cg = make_manager(CONTAINER, root=root, mountinfo=None)
    assert isinstance(cg, V1Manager)
    return cg


# ---- manager layout ----------------------------------------------------------------------------

def test_hybrid_dirs_include_unified_for_a_cgroup_id(root):
    cg = manager_for(root)
    assert cg.dirs() == [os.path.join(root, c, CONTAINER) for c in trees.V1_CONTROLLERS] + \
        [os.path.join(root, "unified", CONTAINER)]
    assert cg.cgroup_id() == os.stat(os.path.join(root, "unified", CONTAINER)).st_ino
    plain = make_manager(CONTAINER, root=root, mountinfo=None, join_unified=False)
    assert len(plain.procs_files()) == 8 and plain.cgroup_id() is None


def test_a_first_process_joins_v1_through_tasks_and_is_cloned_into_unified(root):
    """v1's ``tasks`` (moving the one thread needs no global lock, so no RCU grace period),
    the unified hierarchy's cgroup.procs: the one directory clone3 is given."""
    from isoinspect.runtime.launch import clone_target

    cg = manager_for(root)
    files = cg.self_join_files()
    unified = os.path.join(root, "unified", CONTAINER)
    assert files == [os.path.join(d, "tasks") for d in cg.dirs()[:-1]] + \
        [unified + "/cgroup.procs"]
    assert clone_target(files) == unified
    plain = make_manager(CONTAINER, root=root, mountinfo=None, join_unified=False)
    assert all(f.endswith("/tasks") for f in plain.self_join_files())
    assert clone_target(plain.self_join_files()) is None


def test_legacy_combined_mount_is_one_dir(legacy):
    cg = manager_for(legacy)
    combined = os.path.join(legacy, "cpu,cpuacct", CONTAINER)
    assert cg.controller_dir("cpu") == cg.controller_dir("cpuacct") == combined
    assert cg.dirs().count(combined) == 1 and len(cg.dirs()) == 7
    assert cg.procs_files()[0] == combined + "/cgroup.procs"


def test_create_copies_cpuset_down_every_level(root):
    manager_for(root).create()
    for where in ("isoinspect", CONTAINER):
        assert read(root, "cpuset", "cpuset.cpus", where) == "0-1"
        assert read(root, "cpuset", "cpuset.mems", where) == "0"


def test_create_keeps_existing_cpuset_and_makes_missing_dirs(root, writes):
    Path(root, "cpuset", "isoinspect", "cpuset.cpus").write_text("1\n")
    Path(root, "cpuset", "isoinspect", "cpuset.mems").write_text("0\n")
    cg = make_manager("isoinspect/other", root=root, mountinfo=None)
    Path(root, "cpuset", "isoinspect", "other").mkdir()  # cgroupfs would fill these in
    Path(root, "cpuset", "isoinspect", "other", "cpuset.cpus").write_text("")
    Path(root, "cpuset", "isoinspect", "other", "cpuset.mems").write_text("")
    cg.create()
    assert all(os.path.isdir(d) for d in cg.dirs())
    assert read(root, "cpuset", "cpuset.cpus", "isoinspect/other") == "1"  # from its parent
    assert [(n, v) for _, n, v in writes] == [("cpuset.cpus", "1"), ("cpuset.mems", "0")]


# ---- apply -------------------------------------------------------------------------------------

def test_apply_writes_expected_values(root):
    cg = manager_for(root)
    warnings = cg.apply(Resources(memory=32 << 20, memory_reservation=16 << 20, cpus=0.5,
                                  cpu_shares=512, pids_limit=10, cpuset_cpus="0",
                                  cpuset_mems="0"))
    assert warnings == []
    assert read(root, "memory", "memory.limit_in_bytes") == "33554432"
    assert read(root, "memory", "memory.memsw.limit_in_bytes") == trees.V1_UNLIMITED  # untouched
    assert read(root, "memory", "memory.soft_limit_in_bytes") == "16777216"
    assert read(root, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(root, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(root, "cpu", "cpu.shares") == "512"
    assert read(root, "pids", "pids.max") == "10"
    assert read(root, "cpuset", "cpuset.cpus") == "0"


def test_memsw_after_limit_when_it_fits(root, writes):
    manager_for(root).apply(Resources(memory=64 << 20, memory_swap=96 << 20))
    assert [(n, v) for _, n, v in writes] == [("memory.limit_in_bytes", "67108864"),
                                              ("memory.memsw.limit_in_bytes", "100663296")]


def test_memsw_first_when_raising_above_current_memsw(recorded, writes):
    # recorded: limit = memsw = 64 MiB; raising memory to 128 MiB needs memsw raised first
    manager_for(recorded).apply(Resources(memory=128 << 20, memory_swap=256 << 20))
    assert [(n, v) for _, n, v in writes] == [("memory.memsw.limit_in_bytes", "268435456"),
                                              ("memory.limit_in_bytes", "134217728")]


def test_unlimited_swap_and_unlimited_memory(recorded, writes):
    manager_for(recorded).apply(Resources(memory=-1))
    assert [(n, v) for _, n, v in writes] == [("memory.memsw.limit_in_bytes", "-1"),
                                              ("memory.limit_in_bytes", "-1")]


def test_swap_unsupported_without_memsw_is_a_warning(root, writes):
    for name in os.listdir(os.path.join(root, "memory", CONTAINER)):
        if name.startswith("memory.memsw."):
            os.unlink(os.path.join(root, "memory", CONTAINER, name))
    cg = manager_for(root)
    warnings = cg.apply(Resources(memory=64 << 20, memory_swap=128 << 20))
    assert len(warnings) == 1 and "swap accounting" in warnings[0]
    assert [(n, v) for _, n, v in writes] == [("memory.limit_in_bytes", "67108864")]
    assert cg.stats().memory.swap_max is None  # no memsw file: no swap accounting


@pytest.mark.parametrize("kwargs, expected", [
    ({"cpu_quota_us": -1}, [("cpu.cfs_quota_us", "-1")]),
    ({"cpu_quota_us": -1, "cpu_period_us": 40000},
     [("cpu.cfs_period_us", "40000"), ("cpu.cfs_quota_us", "-1")]),
    ({"cpu_quota_us": 20000, "cpu_period_us": 50000},
     [("cpu.cfs_period_us", "50000"), ("cpu.cfs_quota_us", "20000")]),
    ({"pids_limit": -1}, [("pids.max", "max")]),
    ({"pids_limit": 0}, [("pids.max", "max")]),
    ({"pids_limit": 7}, [("pids.max", "7")]),
    ({"cpuset_mems": "0"}, [("cpuset.mems", "0")]),
    ({}, []),
])
def test_apply_writes_only_what_is_set(root, writes, kwargs, expected):
    manager_for(root).apply(Resources(**kwargs))
    assert [(n, v) for _, n, v in writes] == expected


def test_device_rules_deny_all_then_allow_in_order(root, writes):
    manager_for(root).apply(Resources(device_rules=DEFAULT_DEVICE_RULES))
    devices_dir = os.path.join(root, "devices", CONTAINER)
    assert all(d == devices_dir for d, _, _ in writes)
    assert [(n, v) for _, n, v in writes] == [
        ("devices.deny", "a *:* rwm"), ("devices.allow", "c *:* m"), ("devices.allow", "b *:* m"),
        ("devices.allow", "c 1:3 rwm"), ("devices.allow", "c 1:5 rwm"),
        ("devices.allow", "c 1:7 rwm"), ("devices.allow", "c 5:0 rwm"),
        ("devices.allow", "c 5:1 rwm"), ("devices.allow", "c 5:2 rwm"),
        ("devices.allow", "c 1:8 rwm"), ("devices.allow", "c 1:9 rwm"),
        ("devices.allow", "c 136:* rwm")]


def test_blkio_one_line_per_write(root, writes):
    manager_for(root).apply(Resources(blkio_read_bps=[(254, 0, 1048576)],
                                      blkio_write_iops=[(254, 0, 100), (8, 0, 0)]))
    assert [(n, v) for _, n, v in writes] == [
        ("blkio.throttle.read_bps_device", "254:0 1048576"),
        ("blkio.throttle.write_iops_device", "254:0 100"),
        ("blkio.throttle.write_iops_device", "8:0 0")]


def test_missing_hierarchy_for_a_requested_limit_is_an_error(tmp_path, writes):
    root = trees.v1_tree(tmp_path)
    os.rename(os.path.join(root, "blkio"), os.path.join(root, "not-a-controller"))
    cg = manager_for(root)
    assert cg.controller_dir("blkio") is None
    with pytest.raises(OSError, match="need the blkio hierarchy, which is not mounted"):
        cg.apply(Resources(pids_limit=5, blkio_read_bps=[(8, 0, 1)]))
    assert writes == []
    cg.apply(Resources(pids_limit=5))  # limits of mounted controllers still work
    assert cg.stats().io is None and cg.stats().pids.max == 5


def test_bad_values_raise_before_writing(root, writes):
    res = Resources()
    res.pids_limit = -2
    with pytest.raises(ValueError, match="pids_limit"):
        manager_for(root).apply(res)
    assert writes == []


# ---- stats from recorded files: the v2 names (figures.py) on v1 -------------------------------

def test_stats_from_recorded_hybrid_host(recorded):
    stats = manager_for(recorded).stats()
    memory = stats.memory
    assert (memory.current, memory.peak, memory.max) == (409600, 67108864, 67108864)
    assert (memory.swap_max, memory.low) == (0, 16777216)
    assert (memory.events.oom_kill, memory.events.max) == (1, 0)   # max: memory.failcnt
    assert memory.events.oom is None and memory.high is None       # no v1 file for these
    cpu = stats.cpu
    assert (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec) == (27, 5, 228443)
    assert (cpu.quota_us, cpu.period_us, cpu.shares, cpu.weight) == (50000, 100000, 1024, None)
    assert (cpu.usage_usec, cpu.user_usec, cpu.system_usec) == (361562, 243969, 103947)
    assert stats.to_dict()["pids"] == {"current": 1, "max": 10, "events": {"max": 3}, "peak": 10}
    io = stats.io
    assert (io.rbytes, io.wbytes, io.rios, io.wios) == (1191936, 1048576, 271, 256)
    assert io.devices["254:0"]["rios"] == 271
    assert stats.devices.list == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 136:* rwm"]
    assert stats.cpuset.cpus == "0"
    assert stats.to_dict()["freezer"] == {"state": "THAWED", "frozen": False}


def test_stats_legacy_combined_cpu_cpuacct(legacy):
    cpu = manager_for(legacy).stats().cpu
    assert (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec) == (8, 7, 348883)
    assert (cpu.usage_usec, cpu.user_usec, cpu.system_usec) == (411478, 412000, 0)


def test_stats_missing_files_and_old_kernels(recorded):
    memory_dir = os.path.join(recorded, "memory", CONTAINER)
    Path(memory_dir, "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    assert manager_for(recorded).stats().memory.events.oom_kill is None  # before Linux 4.13
    for name in os.listdir(memory_dir):
        os.unlink(os.path.join(memory_dir, name))
    os.unlink(os.path.join(recorded, "cpuacct", CONTAINER, "cpuacct.usage"))
    stats = manager_for(recorded).stats()
    assert stats.memory is None
    assert stats.cpu.usage_usec is None and stats.cpu.nr_throttled == 5


# ---- freezer, tasks, kill, remove --------------------------------------------------------------

def test_freeze_and_thaw_write_freezer_state(root):
    cg = manager_for(root)
    cg.freeze(timeout=0.5)
    assert read(root, "freezer", "freezer.state") == "FROZEN"
    assert cg.stats().freezer.frozen is True
    cg.thaw(timeout=0.5)
    assert read(root, "freezer", "freezer.state") == "THAWED"


def test_freeze_waits_while_freezing(root, monkeypatch):
    state = Path(root, "freezer", CONTAINER, "freezer.state")
    reads = []
    real = fs.read_value

    def freezing_twice(directory, name):
        if name == "freezer.state":
            reads.append(name)
            if len(reads) <= 2:
                return "FREEZING"
        return real(directory, name)

    monkeypatch.setattr(fs, "read_value", freezing_twice)
    manager_for(root).freeze(timeout=1)
    assert len(reads) == 3 and state.read_text() == "FROZEN"


def test_add_task_joins_every_hierarchy(root):
    cg = manager_for(root)
    cg.add_task(4242)
    for procs in cg.procs_files():
        assert Path(procs).read_text() == "4242"
    assert cg.pids() == [4242]


def test_pids_is_the_union_over_hierarchies(recorded):
    Path(recorded, "pids", CONTAINER, "cgroup.procs").write_text("16352\n777\n")
    assert manager_for(recorded).pids() == [777, 16352]


def test_kill_all_freezes_signals_and_thaws(root, writes):
    child = subprocess.Popen(["sleep", "30"])
    try:
        Path(root, "memory", CONTAINER, "cgroup.procs").write_text(f"{child.pid}\n")
        assert manager_for(root).kill_all(15) == 1
        assert child.wait(timeout=5) == -15
    finally:
        child.kill()
        child.wait()
    assert [v for _, n, v in writes if n == "freezer.state"] == ["FROZEN", "THAWED"]


def test_remove_all_hierarchies_and_list_children(root):
    cg = manager_for(root)
    assert list_children(root=root, mountinfo=None) == ["test"]
    cg.remove()
    assert not cg.exists()
    assert all(os.path.isdir(os.path.dirname(d)) for d in cg.dirs())  # parents stay
    assert list_children(root=root, mountinfo=None) == []
    cg.remove()  # already gone: no error


def test_controller_names_follow_the_modules():
    """The names the driver keys its hierarchies by (without importing the controllers) are
    the controller modules' own, in the order limits are applied."""
    from isoinspect.runtime.cgroups.v1.manager import CONTROLLER_NAMES, controllers

    assert CONTROLLER_NAMES == tuple(c.NAME for c in controllers())
