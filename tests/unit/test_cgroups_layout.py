"""The one cgroup layout reader (runtime/cgroups/layout.py): recorded mountinfo of the hybrid CI
host, a legacy guest ("cpu,cpuacct" combined) and a unified guest, and fake trees (files only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from isoinspect.runtime.cgroups import layout as layout_mod
from isoinspect.runtime.cgroups.layout import (UNIFIED, Layout, Mount, parse_mounts,
                                               parse_proc_cgroup, read_layout, read_mounts)

_spec = importlib.util.spec_from_file_location(
    "cgroup_trees", Path(__file__).resolve().parents[1] / "fixtures" / "cgroupv2" / "trees.py")
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

HYBRID, LEGACY, UNIFIED_INFO = (str(trees.MOUNTINFO_HYBRID), str(trees.MOUNTINFO_LEGACY),
                                str(trees.MOUNTINFO_UNIFIED))


# ---- from recorded mountinfo -------------------------------------------------------------------

@pytest.mark.parametrize("mountinfo, mode, version", [(HYBRID, "hybrid", 1),
                                                      (LEGACY, "legacy", 1),
                                                      (UNIFIED_INFO, "unified", 2)])
def test_mode_from_recorded_mountinfo(mountinfo, mode, version):
    found = read_layout("/sys/fs/cgroup", mountinfo)
    assert (found.mode, found.version) == (mode, version)


def test_hybrid_host_separate_cpu_and_cpuacct():
    found = read_layout("/sys/fs/cgroup", HYBRID)
    assert found.v2 == "/sys/fs/cgroup/unified"
    assert found.v1["cpu"] == "/sys/fs/cgroup/cpu"
    assert found.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    # named hierarchies (name=systemd) carry no controller: not in v1
    assert set(found.v1) == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
                             "pids"}


def test_legacy_combined_cpu_cpuacct():
    found = read_layout("/sys/fs/cgroup", LEGACY)
    assert found.v1["cpu"] == found.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert found.v1["net_cls"] == found.v1["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio"
    assert found.v2 is None


def test_unified_has_no_v1():
    found = read_layout("/sys/fs/cgroup", UNIFIED_INFO)
    assert found == Layout(mode="unified", root="/sys/fs/cgroup", v2="/sys/fs/cgroup", v1={})


def test_mountinfo_escapes_and_other_roots(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 1 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "31 30 0:29 / /sys/fs/cgroup/cpu\\040x rw,relatime - cgroup cgroup rw,xattr,cpu\n"
        "32 1 0:30 / /elsewhere/memory rw,relatime - cgroup cgroup rw,memory\n")
    assert read_mounts(str(info)) == [
        Mount(fstype="cgroup", point="/sys/fs/cgroup/cpu x", controllers=("cpu",)),
        Mount(fstype="cgroup", point="/elsewhere/memory", controllers=("memory",))]
    assert read_layout("/sys/fs/cgroup", str(info)).v1 == {"cpu": "/sys/fs/cgroup/cpu x"}
    assert read_mounts(str(tmp_path / "missing")) == []
    assert read_mounts(None) == []


def test_parse_mounts_skips_other_filesystems():
    text = ("22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
            "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert parse_mounts(text) == [
        Mount(fstype="cgroup", point="/sys/fs/cgroup/systemd", controllers=()),
        Mount(fstype="cgroup2", point="/sys/fs/cgroup/unified", controllers=())]


def test_own_mountinfo_is_parsed_once(monkeypatch, tmp_path):
    """The start path reads /proc/self/mountinfo once per process, whoever asks first."""
    monkeypatch.setattr(layout_mod, "_HOST_MOUNTS", [])
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    first = read_layout()
    assert read_layout() == first and read_layout("/sys/fs/cgroup/") == first
    assert opened.count(layout_mod.MOUNTINFO) == 1


# ---- from files (fake trees, mountinfo=None) ---------------------------------------------------

def test_from_files(tmp_path):
    v2 = trees.v2_tree(tmp_path / "v2")
    v1 = trees.v1_tree(tmp_path / "v1")
    legacy = trees.v1_tree(tmp_path / "legacy", layout="legacy")
    assert read_layout(v2, None) == Layout(mode="unified", root=v2, v2=v2, v1={})
    hybrid = read_layout(v1, None)
    assert hybrid.mode == "hybrid" and hybrid.v2 == v1 + "/unified"
    assert hybrid.v1["memory"] == v1 + "/memory"
    old = read_layout(legacy, None)
    assert old.mode == "legacy" and old.v2 is None
    assert old.v1["cpu"] == old.v1["cpuacct"] == legacy + "/cpu,cpuacct"
    # a mountinfo with no cgroup mount under this root falls back to the files too
    assert read_layout(v2, UNIFIED_INFO).mode == "unified"


def test_no_hierarchy_is_an_error(tmp_path):
    with pytest.raises(OSError, match="no cgroup hierarchy"):
        read_layout(str(tmp_path), None)


# ---- paths -------------------------------------------------------------------------------------

def test_parse_proc_cgroup_hybrid():
    text = "9:name=systemd:/\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/docker/abc\n"
    assert parse_proc_cgroup(text) == {"name=systemd": "/", "memory": "/docker/abc",
                                       "cpu": "/docker/abc", "cpuacct": "/docker/abc",
                                       UNIFIED: "/docker/abc"}


def test_dir_of_each_hierarchy():
    hybrid = read_layout("/sys/fs/cgroup", HYBRID)
    assert hybrid.dir_of("memory", "/docker/abc") == "/sys/fs/cgroup/memory/docker/abc"
    assert hybrid.dir_of(UNIFIED, "docker/abc") == "/sys/fs/cgroup/unified/docker/abc"
    assert hybrid.dir_of(UNIFIED, "/") == "/sys/fs/cgroup/unified"
    assert hybrid.dir_of("rdma", "/x") is None
    assert read_layout("/sys/fs/cgroup", LEGACY).dir_of(UNIFIED, "/x") is None


def test_layout_is_immutable():
    found = read_layout("/sys/fs/cgroup", HYBRID)
    with pytest.raises(AttributeError):
        found.mode = "unified"
