"""cgroup v2 driver against fake trees built from files recorded in a Linux 6.1 guest."""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from isoinspect.runtime.cgroups import fs, manager
from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources, make_manager
from isoinspect.runtime.cgroups.manager import list_children
from isoinspect.runtime.cgroups.v2.manager import V2Manager, enable_controllers

_spec = importlib.util.spec_from_file_location(
    "cgroup_trees", Path(__file__).resolve().parents[1] / "fixtures" / "cgroupv2" / "trees.py")
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

CONTAINER = trees.CONTAINER


@pytest.fixture
def root(tmp_path):
    return trees.v2_tree(tmp_path)


@pytest.fixture
def recorded(tmp_path):
    return trees.v2_tree(tmp_path, fresh=False)


@pytest.fixture
def writes(monkeypatch):
    return trees.record_writes(monkeypatch)


def read(root, name, where=CONTAINER):
    return Path(root, where, name).read_text().strip()


def manager_for(root) -> V2Manager:
    cg = make_manager(CONTAINER, root=root, mountinfo=None)
    assert isinstance(cg, V2Manager)
    return cg


# ---- create: controllers enabled top-down ------------------------------------------------------

def test_create_enables_controllers_in_root_and_parent(root):
    manager_for(root).create()
    assert read(root, "cgroup.subtree_control", "") == "+cpuset +cpu +io +memory +pids"
    assert read(root, "cgroup.subtree_control", "isoinspect") == "+cpuset +cpu +io +memory +pids"
    assert read(root, "cgroup.subtree_control") == ""  # the leaf enables nothing


def test_create_writes_nothing_when_already_enabled(recorded, writes):
    manager_for(recorded).create()
    assert writes == []


def test_enable_only_offered_and_missing_controllers(root):
    Path(root, "cgroup.controllers").write_text("cpu memory hugetlb pids\n")
    Path(root, "cgroup.subtree_control").write_text("memory\n")
    assert enable_controllers(root) == ["cpu", "pids"]
    assert read(root, "cgroup.subtree_control", "") == "+cpu +pids"


def test_create_makes_missing_dirs(root):
    cg = make_manager("isoinspect/new-one", root=root, mountinfo=None)
    assert not cg.exists()
    cg.create()
    assert cg.exists() and os.path.isdir(os.path.join(root, "isoinspect", "new-one"))


def test_enable_controllers_ebusy_explains_no_internal_processes(root, monkeypatch):
    def busy(directory, name, value):
        raise OSError(errno.EBUSY, "Device or resource busy", directory + "/" + name)

    monkeypatch.setattr(fs, "write_value", busy)
    with pytest.raises(OSError, match="no internal processes"):
        enable_controllers(os.path.join(root, "isoinspect"))


# ---- apply: exact values in the right files ---------------------------------------------------

def test_apply_writes_expected_values(root):
    cg = manager_for(root)
    warnings = cg.apply(Resources(memory=64 << 20, memory_swap=96 << 20,
                                  memory_reservation=16 << 20, cpus=0.5, cpu_shares=1024,
                                  pids_limit=10, cpuset_cpus="0", cpuset_mems="0"))
    assert warnings == []
    assert read(root, "memory.max") == "67108864"
    assert read(root, "memory.swap.max") == "33554432"  # swap alone = memory_swap - memory
    assert read(root, "memory.low") == "16777216"
    assert read(root, "cpu.max") == "50000 100000"
    assert read(root, "cpu.weight") == "39"
    assert read(root, "pids.max") == "10"
    assert read(root, "cpuset.cpus") == "0" and read(root, "cpuset.mems") == "0"


@pytest.mark.parametrize("kwargs, name, expected", [
    ({"memory": 64 << 20, "memory_swap": 64 << 20}, "memory.swap.max", "0"),
    ({"memory": 64 << 20, "memory_swap": -1}, "memory.swap.max", "max"),
    ({"memory": -1}, "memory.max", "max"),
    ({"cpu_quota_us": -1}, "cpu.max", "max 100000"),
    ({"cpu_quota_us": 20000, "cpu_period_us": 50000}, "cpu.max", "20000 50000"),
    ({"cpu_shares": 2}, "cpu.weight", "1"),
    ({"cpu_shares": 262144}, "cpu.weight", "10000"),
    ({"pids_limit": -1}, "pids.max", "max"),
    ({"pids_limit": 0}, "pids.max", "max"),
])
def test_apply_edge_values(root, kwargs, name, expected):
    manager_for(root).apply(Resources(**kwargs))
    assert read(root, name) == expected


def test_apply_io_max_one_line_per_device(root, writes):
    manager_for(root).apply(Resources(blkio_read_bps=[(8, 0, 1048576)],
                                      blkio_write_bps=[(8, 0, 2097152), (8, 16, 0)],
                                      blkio_write_iops=[(8, 16, 100)]))
    assert [(n, v) for _, n, v in writes] == [
        ("io.max", "8:0 rbps=1048576 wbps=2097152"),
        ("io.max", "8:16 wbps=max wiops=100"),
    ]


def test_apply_writes_only_what_is_set(root, writes):
    manager_for(root).apply(Resources(pids_limit=7))
    assert writes == [(os.path.join(root, CONTAINER), "pids.max", "7")]
    manager_for(root).apply(Resources())
    assert len(writes) == 1


def test_apply_validates_before_touching_files(root, writes):
    res = Resources(memory=64 << 20)
    res.cpuset_cpus = "abc"
    with pytest.raises(ValueError, match="cpuset"):
        manager_for(root).apply(res)
    assert writes == []


def test_apply_refuses_limits_of_a_controller_not_enabled(root, writes):
    Path(root, CONTAINER, "cgroup.controllers").write_text("cpu pids\n")
    with pytest.raises(OSError, match="memory.*not enabled.*cgroup.controllers: cpu pids"):
        manager_for(root).apply(Resources(pids_limit=5, memory=64 << 20))
    assert writes == []


def test_swap_without_swap_accounting_is_a_warning(root):
    os.unlink(os.path.join(root, CONTAINER, "memory.swap.max"))
    warnings = manager_for(root).apply(Resources(memory=64 << 20, memory_swap=128 << 20))
    assert len(warnings) == 1 and "memory_swap not enforced" in warnings[0]
    assert read(root, "memory.max") == "67108864"


def test_device_rules_need_a_real_cgroup_and_never_pass_silently(root, writes):
    """v2 enforces device rules with an eBPF program attached to the cgroup (v2/devices.py): on
    a fake tree there is nothing to attach to, which is a refusal, not a warning."""
    from isoinspect.runtime.cgroups.v2.devices import DeviceFilterError

    cg = manager_for(root)
    with pytest.raises(DeviceFilterError, match=r"cgroup v2 devices: cannot .*BPF_PROG_QUERY"):
        cg.apply(Resources(device_rules=DEFAULT_DEVICE_RULES))
    assert writes == []
    assert cg.stats().devices is None


# ---- stats from the recorded files --------------------------------------------------------------

def test_stats_from_recorded_files(recorded):
    stats = manager_for(recorded).stats()
    memory = stats.memory
    assert (memory.current, memory.peak, memory.max) == (102400, 67108864, 67108864)
    assert (memory.swap_max, memory.low) == (0, 16777216)
    assert (memory.events.oom, memory.events.oom_kill, memory.events.max) == (1, 1, 51)
    assert memory.pressure["some"]["total"] == 8188
    cpu = stats.cpu
    assert (cpu.usage_usec, cpu.user_usec, cpu.system_usec) == (928554, 631254, 297300)
    assert (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec) == (29, 16, 789393)
    assert (cpu.quota_us, cpu.period_us, cpu.weight, cpu.shares) == (50000, 100000, 39, None)
    assert stats.to_dict()["pids"] == {"current": 1, "max": 10, "events": {"max": 1}, "peak": 10}
    io = stats.io
    assert (io.rbytes, io.wbytes, io.rios, io.wios) == (262144, 1048576, 64, 256)
    assert stats.to_dict()["cpuset"] == {"cpus": "0", "mems": "0", "cpus_effective": "0",
                                         "mems_effective": "0"}
    assert stats.to_dict()["freezer"] == {"state": "THAWED", "frozen": False, "populated": True}


def test_stats_skip_controllers_whose_files_are_missing(recorded):
    directory = Path(recorded, CONTAINER)
    for path in directory.iterdir():
        if path.name.startswith(("memory.", "io.")):
            path.unlink()
    stats = manager_for(recorded).stats()
    assert stats.memory is None and stats.io is None
    assert stats.pids.max == 10


def test_stats_unlimited_values(root):
    stats = manager_for(root).stats()
    assert stats.memory.max == -1 and stats.pids.max == -1
    assert stats.cpu.quota_us == -1 and stats.memory.swap_max == -1


# ---- tasks, freezer, kill, remove --------------------------------------------------------------

def test_procs_files_add_task_pids(recorded):
    cg = manager_for(recorded)
    procs = os.path.join(recorded, CONTAINER, "cgroup.procs")
    assert cg.procs_files() == [procs] == cg.self_join_files()
    assert cg.pids() == [95]
    cg.add_task(4242)
    assert Path(procs).read_text() == "4242"
    assert cg.cgroup_id() == os.stat(os.path.join(recorded, CONTAINER)).st_ino


def test_freeze_writes_cgroup_freeze_and_waits_for_events(tmp_path):
    root = trees.v2_tree(tmp_path, fresh=False, variant="frozen")  # cgroup.events says frozen 1
    Path(root, CONTAINER, "cgroup.freeze").write_text("0\n")
    cg = manager_for(root)
    cg.freeze(timeout=0.5)
    assert read(root, "cgroup.freeze") == "1"
    assert cg.stats().freezer.frozen is True
    with pytest.raises(TimeoutError, match="cgroup.events to show frozen 0"):
        cg.thaw(timeout=0.05)  # the fake events file never changes
    assert read(root, "cgroup.freeze") == "0"


def test_kill_all_uses_cgroup_kill(recorded):
    Path(recorded, CONTAINER, "cgroup.events").write_text("populated 0\nfrozen 0\n")
    assert manager_for(recorded).kill_all() == 1
    assert read(recorded, "cgroup.kill") == "1"


def test_kill_all_other_signal_signals_each_process(root):
    os.unlink(os.path.join(root, CONTAINER, "cgroup.freeze"))  # no freezer: plain iteration
    child = subprocess.Popen(["sleep", "30"])
    try:
        Path(root, CONTAINER, "cgroup.procs").write_text(f"{child.pid}\n")
        assert manager_for(root).kill_all(15) == 1
        assert child.wait(timeout=5) == -15
    finally:
        child.kill()
        child.wait()
    assert read(root, "cgroup.kill") == ""  # SIGTERM does not go through cgroup.kill


def test_remove_and_list_children(recorded):
    cg = manager_for(recorded)
    assert list_children(root=recorded, mountinfo=None) == ["test"]
    cg.remove()
    assert not cg.exists()
    assert os.path.isdir(os.path.join(recorded, "isoinspect"))  # the shared parent stays
    assert list_children(root=recorded, mountinfo=None) == []
    cg.remove()  # already gone: no error


@pytest.mark.parametrize("path", ["", "/isoinspect/x", "isoinspect/../x", "isoinspect//x", "."])
def test_bad_paths_are_refused(root, path):
    with pytest.raises(ValueError, match="relative"):
        make_manager(path, root=root, mountinfo=None)


def test_manager_base_is_a_plain_class():
    assert manager.CgroupManager.__mro__ == (manager.CgroupManager, object)
    with pytest.raises(NotImplementedError):
        manager.CgroupManager("isoinspect/x").dirs()
