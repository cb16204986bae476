"""The update parsers: a linux.resources JSON (runc's `update -r`) and runc's flags -> the
ResourceUpdate; and how a half-given pair is completed from the cgroup's current values."""

from __future__ import annotations

import argparse

import pytest

from isoinspect.runtime.cgroups.figures import Cpu, Figures, Memory
from isoinspect.runtime.cgroups.update import ResourceUpdate, from_oci, resources_for
from isoinspect.runtime.oci import update as oci_update


def test_from_oci_reads_what_docker_update_sends():
    change = from_oci({"memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 0},
                       "cpu": {"shares": 512, "quota": 20000, "period": 0, "cpus": "0",
                               "mems": ""},
                       "pids": {"limit": 33}, "blockIO": {"weight": 300},
                       "devices": [{"allow": True, "access": "rwm"}]})
    assert change == ResourceUpdate(memory=64 << 20, memory_swap=128 << 20, cpu_quota_us=20000,
                                    cpu_shares=512, cpuset_cpus="0", pids_limit=33,
                                    blkio_weight=300)
    assert from_oci({}).changes() == {}
    assert from_oci({"memory": {"limit": -1}}).memory == -1


@pytest.mark.parametrize("section, message", [
    ([], "JSON object"), ({"memory": 5}, "memory must be an object"),
    ({"memory": {"limit": "64m"}}, "memory.limit must be an integer"),
    ({"pids": {"limit": True}}, "pids.limit must be an integer"),
    ({"cpu": {"cpus": 3}}, "cpu.cpus must be a string"),
])
def test_from_oci_refuses_bad_values(section, message):
    with pytest.raises(ValueError, match=message):
        from_oci(section)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    oci_update.add_arguments(parser)
    return parser.parse_args([*argv, "cid"])


def test_runc_flags():
    change, warnings = oci_update.from_args(_args("--memory", "64m", "--memory-swap", "-1",
                                                  "--cpu-shares", "100", "--pids-limit", "7",
                                                  "--cpu-rt-runtime", "1000"))
    assert change == ResourceUpdate(memory=64 << 20, memory_swap=-1, cpu_shares=100,
                                    pids_limit=7, cpu_rt_runtime_us=1000)
    assert warnings == []
    assert oci_update.from_args(_args("--cpu-share", "3"))[0].cpu_shares == 3
    # runc 1.1.5: kernel memory is ignored with a warning; RDT schemas are refused.
    change, warnings = oci_update.from_args(_args("--kernel-memory", "100m"))
    assert change.changes() == {} and warnings == [oci_update.KERNEL_MEMORY_IGNORED]
    with pytest.raises(oci_update.oc.OciError, match="l3 cache schema is not enabled"):
        oci_update.from_args(_args("--l3-cache-schema", "L3:0=f"))
    with pytest.raises(ValueError, match="invalid value 'x' for --pids-limit"):
        oci_update.from_args(_args("--pids-limit", "x"))


class _Manager:
    """Just what resources_for reads: the current figures."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def stats(self) -> Figures:
        return self.figures


def test_a_half_given_pair_is_completed_from_the_cgroup():
    manager = _Manager(Figures(cpu=Cpu(quota_us=20000, period_us=50000),
                               memory=Memory(current=1, max=64 << 20)))
    res = resources_for(manager, ResourceUpdate(cpu_quota_us=30000))
    assert (res.cpu_quota_us, res.cpu_period_us) == (30000, 50000)
    res = resources_for(manager, ResourceUpdate(cpu_period_us=40000))
    assert (res.cpu_quota_us, res.cpu_period_us) == (20000, 40000)
    res = resources_for(manager, ResourceUpdate(memory_swap=128 << 20))
    assert (res.memory, res.memory_swap) == (64 << 20, 128 << 20)
    res = resources_for(manager, ResourceUpdate(pids_limit=5))
    assert res.pids_limit == 5 and res.cpu_quota_us is None and res.memory is None
