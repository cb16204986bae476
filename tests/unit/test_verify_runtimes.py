"""verify: how limits become OCI resources, Docker flags and isoinspect specs; selection."""

from __future__ import annotations

import os
import stat

import pytest

from isoinspect.benches import bundle
from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets import base, box, docker, isoinspect, runc
from isoinspect.benches.verify import runtimes, verify
from isoinspect.runtime.diagnostics import REGISTRY, Entry
from isoinspect.runtime.errors import UsageError


def _block_device() -> str:
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        if name.startswith(("loop", "vd", "sd", "nvme")) and stat.S_ISBLK(os.stat(path).st_mode):
            return path
    pytest.skip("no block device node in /dev")


def test_oci_resources():
    res = bundle.oci_resources(Limits(memory=64 << 20, cpus=0.5, cpu_shares=256,
                                        cpuset_cpus="1", pids_limit=16))
    assert res == {"memory": {"limit": 64 << 20},
                   "cpu": {"quota": 50000, "period": 100000, "shares": 256, "cpus": "1"},
                   "pids": {"limit": 16}}
    assert bundle.oci_resources(Limits()) == {}


def test_oci_block_io_by_device_numbers():
    device = _block_device()
    major, minor = bundle.device_numbers(device)
    res = bundle.oci_resources(Limits(device_write_bps=[(device, 1024)]))
    assert res == {"blockIO": {"throttleWriteBpsDevice": [
        {"major": major, "minor": minor, "rate": 1024}]}}


def test_docker_flags():
    assert docker.docker_flags(Limits(memory=1 << 26, cpus=1.5, pids_limit=16)) == [
        "--memory", str(1 << 26), "--cpus", "1.5", "--pids-limit", "16"]
    assert docker.docker_flags(Limits(device_read_bps=[("/dev/loop7", 10)])) == [
        "--device-read-bps", "/dev/loop7:10"]


def test_isoinspect_spec_limits_and_control_drops_them():
    limits = isoinspect.spec_limits(Limits(memory=64 << 20, cpus=0.2, pids_limit=16))
    assert limits["memory"] == 64 << 20 and limits["cpu_quota_us"] == 20000
    assert limits["pids_limit"] == 16 and limits["blkio_write_bps"] is None
    control, iso = runtimes.select("control,isoinspect")
    assert control.control and not iso.control


def test_select_runtimes_and_checks():
    assert [rt.name for rt in runtimes.select("all")] == [
        "isoinspect", "runc", "runsc", "docker", "qemu", "control"]
    assert [rt.name for rt in runtimes.select("runc,control")] == ["runc", "control"]
    with pytest.raises(UsageError, match="unknown runtime"):
        runtimes.select("crunx")
    names = [c.name for c in verify.select_checks("cpu,pids-limit")]
    assert names == ["cpu-quota-0.5", "cpu-quota-0.2", "cpu-quota-1.5", "cpu-shares",
                     "pids-limit"]
    with pytest.raises(UsageError, match="unknown check"):
        verify.select_checks("disk")
    assert verify.select_checks(None) == REGISTRY.entries("verify")
    assert {(c.name, c.family) for c in verify.select_checks("pids,cpuset")} == {
        ("pids-limit", "pids"), ("cpuset", "cpuset")}


def test_runsc_explains_its_own_way_and_others_do_not():
    error = box.CheckError("runsc run failed: cannot create sandbox: EOF")
    assert "Sentry" in runc.RunscTarget().explain("pids-limit", error)
    assert runc.RuncTarget().explain("pids-limit", error) == ""


def test_run_check_turns_exceptions_into_error_results():
    class Broken(base.Target):
        name = "broken"

    def boom(rt, ctx):
        raise box.CheckError("no marker")

    check = Entry("verify", "pids-limit", boom, "pids", 5)
    [res] = verify.run_check(Broken(), check, None)
    assert res["status"] == "ERROR" and "no marker" in res["why"]
    assert res["limit"] == "pids"


def test_run_flags_for_device_bandwidth():
    from isoinspect.cli.options import parse_run_args
    from isoinspect.runtime.errors import IsoinspectError
    from isoinspect.runtime.spec import ContainerSpec

    device = _block_device()
    options, image, _ = parse_run_args(["--device-write-bps", f"{device}:2mb",
                                        "--device-read-bps", f"{device}:1k", "busybox", "true"])
    spec = ContainerSpec.from_flags(image, ["true"], device_read_bps=options["device_read_bps"],
                                    device_write_bps=options["device_write_bps"])
    major, minor = bundle.device_numbers(device)
    assert spec.blkio_write_bps == [(major, minor, 2 << 20)]
    assert spec.blkio_read_bps == [(major, minor, 1024)]
    assert ContainerSpec("busybox", ["true"]).blkio_write_bps is None
    with pytest.raises(IsoinspectError, match="not a block device"):
        ContainerSpec.from_flags("busybox", [], device_write_bps=["/dev/null:1mb"])
    with pytest.raises(IsoinspectError, match="DEVICE:RATE"):
        ContainerSpec.from_flags("busybox", [], device_write_bps=["2mb"])
