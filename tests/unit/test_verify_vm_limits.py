"""verify's VM runtime without booting: limits -> guest size, host cgroup and QEMU drive; the
guest's job; the guest's memory report; the runner's per-target checks and evidence."""

from __future__ import annotations

import subprocess

import pytest

from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets.base import Target
from isoinspect.benches.verify import verify, vm_memory
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.memory import LIMIT
from isoinspect.benches.vm import limits as vml
from isoinspect.benches.vm.verify_target import GO, QemuVerifyTarget, guest_job
from isoinspect.runtime.diagnostics import Entry

MIB = 1 << 20


def test_memory_becomes_guest_ram_and_a_host_hard_limit():
    small = vml.plan(Limits(memory=32 * MIB), host_cpus=2, floor_mb=96)
    assert small.memory_mb == 96 and "raised from the 32 MiB limit to 96 MiB" in small.memory_note
    assert small.hard_limit == (96 + vml.OVERHEAD_MB["tcg"]) * MIB
    assert small.live is None and small.drive is None and small.qemu_extra() == []
    big = vml.plan(Limits(memory=512 * MIB), host_cpus=2, floor_mb=96, accel="kvm")
    assert big.memory_mb == 512 and big.memory_note == ""
    assert big.hard_limit == (512 + vml.OVERHEAD_MB["kvm"]) * MIB
    assert big.to_dict()["host_cgroup_at_start"] == {"memory": big.hard_limit}
    none = vml.plan(Limits(), host_cpus=2, floor_mb=96)
    assert none.memory_mb == vml.DEFAULT_MEMORY_MB and none.hard_limit is None
    assert none.vcpus == 2


def test_cpu_limits_become_live_cgroup_settings_and_vcpus():
    quota = vml.plan(Limits(cpus=0.5), host_cpus=2, floor_mb=96)
    assert quota.vcpus == 2  # one per host CPU: the quota, not the vCPU count, limits
    assert quota.live.cpu_quota_us == 50000 and quota.live.cpu_period_us == 100000
    assert quota.to_dict()["host_cgroup_live"] == {"cpu_quota_us": 50000,
                                                   "cpu_period_us": 100000}
    pinned = vml.plan(Limits(cpu_shares=256, cpuset_cpus="1"), host_cpus=2, floor_mb=96)
    assert pinned.vcpus == 1
    assert pinned.to_dict()["host_cgroup_live"] == {"cpu_shares": 256, "cpuset_cpus": "1"}
    assert vml.plan(Limits(cpuset_cpus="0-2,5"), host_cpus=8, floor_mb=96).vcpus == 4


def test_io_limits_become_a_throttled_virtual_disk():
    write = vml.plan(Limits(device_write_bps=[("/dev/loop0", 2 * MIB)]), host_cpus=2,
                     floor_mb=96, disk="/tmp/x.img")
    assert write.qemu_extra() == [
        "-drive", "file=/tmp/x.img,if=virtio,format=raw,cache=none,aio=threads,"
                  f"throttling.bps-write={2 * MIB}"]
    read = vml.plan(Limits(device_read_bps=[("/dev/loop0", 1000)]), host_cpus=2, floor_mb=96,
                    disk="/tmp/y.img")
    assert read.drive.bps_read == 1000 and read.drive.bps_write is None
    assert "throttling.bps-read=1000" in read.qemu_extra()[1]
    with pytest.raises(ValueError, match="disk image"):
        vml.plan(Limits(device_read_bps=[("/dev/loop0", 1000)]), host_cpus=2, floor_mb=96)


def test_pids_and_swap_have_no_vm_equivalent():
    assert set(vml.unmapped(Limits(pids_limit=16, memory_swap=64 * MIB))) == {
        "pids_limit", "memory_swap"}
    assert vml.unmapped(Limits(memory=MIB, cpus=1)) == {}
    target = QemuVerifyTarget()
    assert "guest kernel's tasks" in target.check_unsupported("pids-limit")
    assert target.check_unsupported("memory-swap")
    assert target.check_unsupported("cpu-shares") == ""
    assert set(target.verify_checks) == {"memory-oom", "memory-under-limit"}


def test_guest_job_is_valid_shell_and_waits_for_go():
    job = guest_job(["sh", "-c", "echo 'a b'; echo $HOME"], "/data")
    assert job.startswith("sh -c ")
    script = subprocess.run(["sh", "-c", "printf %s " + job[len("sh -c "):]],
                            capture_output=True, text=True, check=True).stdout
    assert f"$G/{GO}" in script and "/bin/busybox --install -s" in script
    assert script.rstrip().endswith("exec sh -c 'echo '\"'\"'a b'\"'\"'; echo $HOME' 2>&1")
    subprocess.run(["sh", "-n", "-c", script], check=True)


GUEST_REPORT = """MemTotal:          48904 kB
MemAvailable:      26708 kB
oom_kill 0
hog-exit=137
after-oom_kill 1
[    9.1] Out of memory: Killed process 231 (tail) total-vm:21900kB, anon-rss:19500kB, \
file-rss:100kB, shmem-rss:0kB, UID:0 pgtables:80kB oom_score_adj:1000
guest-report-done
"""


def test_guest_memory_report():
    seen = vm_memory.parse_report(GUEST_REPORT)
    assert seen["MemTotal"] == 48904 * 1024 and seen["MemAvailable"] == 26708 * 1024
    assert seen["hog_exit"] == 137 and seen["guest_oom_kills"] == 1
    assert seen["victims"] == [{"comm": "tail", "rss": (19500 + 100) * 1024}]
    assert vm_memory.JOB.format(size=3 * LIMIT).count(str(3 * LIMIT)) == 1


class _Fake(Target):
    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.taken = 0

    @property
    def verify_checks(self) -> dict:
        return {"c": lambda rt, ctx: [{"runtime": rt.name, "check": "c", "status": "PASS",
                                       "evidence": {"own": 1}}]}

    def check_unsupported(self, check: str) -> str:
        return "no" if check == "u" else ""

    def take_evidence(self) -> dict:
        self.taken += 1
        return {"accelerator": "tcg"}


def test_runner_uses_a_targets_own_check_and_adds_its_evidence(tmp_path):
    def generic(rt, ctx):
        raise AssertionError("the target's own check must run instead")

    ctx = Context(str(tmp_path), quick=True)
    fake = _Fake()
    fake.labels = {"accelerator": "tcg"}
    [own] = verify.run_check(fake, Entry("verify", "c", generic, "x", 5), ctx)
    assert own["evidence"] == {"accelerator": "tcg", "own": 1}
    assert own["labels"] == {"accelerator": "tcg"}
    [skipped] = verify.run_check(fake, Entry("verify", "u", generic, "x", 5), ctx)
    assert skipped["status"] == "UNSUPPORTED" and skipped["evidence"] == {"accelerator": "tcg"}
    assert fake.taken == 2
    assert Target().take_evidence() == {} and Target().verify_checks == {}


class _Unbootable(Target):
    name = "unbootable"

    def prepare(self, workdir: str) -> None:
        from isoinspect.benches.targets.base import TargetError

        raise TargetError("the guest did not boot")


def test_a_target_that_cannot_be_prepared_does_not_stop_the_others(tmp_path):
    ran = []
    check = Entry("verify", "c", lambda rt, ctx: ran.append(rt.name) or [
        {"runtime": rt.name, "check": "c", "status": "PASS", "evidence": {}}], "x", 5)
    results = verify.run_all([_Unbootable(), _Fake()], [check], Context(str(tmp_path)))
    assert [(r["runtime"], r["status"]) for r in results] == [("unbootable", "ERROR"),
                                                              ("fake", "PASS")]
    assert "did not boot" in results[0]["why"] and ran == []
