"""bench density's pure parts: smaps_rollup parsing, the per-instance estimate, level plans and
which processes count for an instance (a fake /proc and a recorded cgroup v1 tree)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from isoinspect.benches.density import procmem
from isoinspect.benches.density.accounting import (Accountant, marginal_bytes,
                                                   per_instance_estimate)
from isoinspect.benches.density.command import parse_targets, plan_levels
from isoinspect.benches.density.instances import Instance
from isoinspect.inspector.cgroupfs import CgroupView
from isoinspect.runtime.errors import UsageError

_spec = importlib.util.spec_from_file_location(
    "cgroup_trees", Path(__file__).resolve().parents[1] / "fixtures" / "cgroupv2" / "trees.py")
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

# /proc/PID/smaps_rollup of a runsc Sentry on this host (Linux 6.18)
ROLLUP = """558676d11000-7ffc93868000 ---p 00000000 00:00 0                          [rollup]
Rss:               24296 kB
Pss:               16969 kB
Pss_Dirty:          6127 kB
Pss_Anon:           5575 kB
Pss_File:          11394 kB
Pss_Shmem:             0 kB
Shared_Clean:      11580 kB
Private_Dirty:      6127 kB
Swap:                  0 kB
SwapPss:               0 kB
"""


def test_smaps_rollup_parsed_to_bytes():
    rollup = procmem.parse_smaps_rollup(ROLLUP)
    assert rollup == procmem.Rollup(rss=24296 * 1024, pss=16969 * 1024,
                                    pss_anon=5575 * 1024, pss_file=11394 * 1024, pss_shmem=0)
    assert (rollup + rollup).pss == 2 * 16969 * 1024


def test_smaps_rollup_of_an_old_kernel_has_pss_only():
    rollup = procmem.parse_smaps_rollup("Rss: 8 kB\nPss: 4 kB\n")
    assert (rollup.pss, rollup.pss_anon, rollup.rss) == (4096, 0, 8192)


@pytest.mark.parametrize("text", ["", "Rss: 8 kB\n", "Pss: 4 MB\n"])
def test_smaps_rollup_without_a_pss_in_kb_is_refused(text):
    with pytest.raises(ValueError):
        procmem.parse_smaps_rollup(text)


def test_mem_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  24683840 kB\nMemFree:   22222 kB\nMemAvailable:   1000 kB\n")
    assert procmem.mem_available(str(meminfo)) == 1024000
    meminfo.write_text("MemTotal:  1 kB\n")
    with pytest.raises(ValueError):
        procmem.mem_available(str(meminfo))


def test_estimate_is_the_mean_with_a_bootstrap_interval():
    values = [10.0, 12.0, 11.0, 13.0, 9.0, 11.0, 12.0, 10.0]
    estimate = per_instance_estimate(values)
    assert estimate.estimate == pytest.approx(11.0)
    low, high = estimate.ci
    assert 9.0 <= low < 11.0 < high <= 13.0
    assert estimate.n == 8
    assert per_instance_estimate(values).ci == estimate.ci      # fixed seed: reproducible


def test_estimate_of_identical_or_single_values_has_no_width():
    assert per_instance_estimate([5.0]).ci == (5.0, 5.0)
    assert per_instance_estimate([7.0, 7.0, 7.0]).ci == (7.0, 7.0)
    with pytest.raises(ValueError):
        per_instance_estimate([])


def test_marginal_cost_between_levels():
    assert marginal_bytes((1, 100.0), (8, 800.0)) == pytest.approx(100.0)
    assert marginal_bytes(None, (8, 800.0)) is None
    assert marginal_bytes((8, 800.0), (8, 900.0)) is None


def test_level_plans():
    assert plan_levels(None, None, False) == ([1, 8, 32], [1, 8, 32])
    assert plan_levels(None, None, True) == ([1, 8], [1, 2])
    assert plan_levels([32, 1, 8], 10, False) == ([1, 8, 10], [1, 8, 10])
    assert plan_levels([4], 1, True) == ([1], [1])
    with pytest.raises(UsageError):
        plan_levels(None, 0, False)


def test_target_names():
    assert parse_targets(None)[0] == "host"
    assert parse_targets("runc, host") == ["runc", "host"]
    for bad in ("runc,nope", "runc,runc", ","):
        with pytest.raises(UsageError):
            parse_targets(bad)


# -- which processes count ----------------------------------------------------------------

def fake_proc(root: Path, processes: list[tuple[int, int, str, str, int]]) -> str:
    """(pid, ppid, comm, argv0, pss kB) -> a /proc with stat, cmdline, cgroup, smaps_rollup."""
    for pid, ppid, comm, argv0, pss in processes:
        directory = root / str(pid)
        directory.mkdir(parents=True)
        (directory / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1\n")
        (directory / "cmdline").write_bytes(argv0.encode() + b"\0arg\0")
        (directory / "cgroup").write_text("4:memory:/\n3:pids:/\n0::/\n")
        (directory / "smaps_rollup").write_text(
            f"Rss: {2 * pss} kB\nPss: {pss} kB\nPss_Anon: {pss // 2} kB\n")
    return str(root)


@pytest.fixture
def host(tmp_path):
    cgroups = trees.v1_tree(tmp_path / "v1", fresh=False)
    proc = fake_proc(tmp_path / "proc", [
        (1, 0, "init", "/sbin/init", 100),
        (50, 1, "dockerd", "/usr/sbin/dockerd", 40000),
        (51, 50, "containerd", "containerd", 30000),
        (100, 1, "python", "/usr/bin/python3", 50000),        # the bench
        (200, 1, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", 5000),
        (201, 200, "sleep", "sleep", 300),                   # in the container cgroup
        (202, 201, "sh", "/bin/sh", 100),                    # its child
        (300, 51, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", 4000),
        (301, 300, "sleep", "sleep", 300),
        (400, 100, "sleep", "/bin/busybox", 200),            # the host target's sleep
        (500, 1, "exe", "runsc-sandbox", 9000),
        (501, 500, "exe", "", 10),                          # a Sentry stub: no argv
    ])
    memory = Path(cgroups) / "memory" / trees.CONTAINER
    return cgroups, proc, memory


def accountant(host) -> Accountant:
    cgroups, proc, _ = host
    return Accountant(("dockerd", "containerd"), proc=proc, bench_pid=100,
                      cgroup_root=cgroups, mountinfo=None)


def view(cgroups: str) -> CgroupView:
    return CgroupView.for_path("/" + trees.CONTAINER, root=cgroups, mountinfo=None)


def test_docker_like_instance_counts_its_shim_not_the_daemons(host):
    cgroups, _, memory = host
    (memory / "cgroup.procs").write_text("201\n202\n")
    charge = int((memory / "memory.usage_in_bytes").read_text())
    [measured], daemons = accountant(host).measure(
        [Instance(1, "c1", 0.1, lambda: None, cgroup=view(cgroups), workload_pid=201)])
    found = {p.pid: (p.name, p.role, p.in_cgroup) for p in measured.processes}
    assert found == {200: ("containerd-shim-runc-v2", "runtime", False),
                     201: ("sleep", "workload", True), 202: ("sh", "workload", True)}
    assert measured.cgroup_bytes == charge
    assert measured.total_bytes == charge + 5000 * 1024       # the shim's PSS, once
    assert measured.pss("runtime") == 5000 * 1024
    assert daemons == (40000 + 30000) * 1024


def test_ancestors_stop_at_a_shared_daemon(host):
    cgroups, _, memory = host
    (memory / "cgroup.procs").write_text("301\n")
    [measured], _ = accountant(host).measure(
        [Instance(1, "c1", 0.1, lambda: None, cgroup=view(cgroups), workload_pid=301)])
    assert sorted(p.pid for p in measured.processes) == [300, 301]


def test_runsc_like_instance_is_all_runtime_inside_its_cgroup(host):
    cgroups, _, memory = host
    (memory / "cgroup.procs").write_text("500\n501\n")
    charge = int((memory / "memory.usage_in_bytes").read_text())
    [measured], _ = accountant(host).measure(
        [Instance(1, "s1", 0.2, lambda: None, cgroup=view(cgroups))])
    assert {p.name for p in measured.processes} == {"runsc-sandbox", "exe"}
    assert all(p.role == "runtime" and p.in_cgroup for p in measured.processes)
    assert measured.total_bytes == charge                     # PSS inside is not added again


def test_a_child_of_the_bench_without_a_cgroup_is_its_own_pss(host):
    cgroups, _, _ = host
    root_view = CgroupView.for_path("/", root=cgroups, mountinfo=None)
    [measured], _ = accountant(host).measure(
        [Instance(1, "h1", 0.001, lambda: None, cgroup=root_view, roots=(400,),
                  workload_pid=400)])
    assert [(p.pid, p.role, p.in_cgroup) for p in measured.processes] == \
        [(400, "workload", False)]
    assert measured.cgroup_bytes is None                      # "/" is nobody's own cgroup
    assert measured.total_bytes == 200 * 1024
