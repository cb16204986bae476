"""``isoinspect verify`` on a pure cgroup v2 kernel (the QEMU guest): the same active checks as
on the hybrid host, now through memory.events, cpu.max/cpu.stat, pids.max, cpuset and io.max;
the control target (limits left out) must FAIL them. --no-trace: compiling the eBPF probes under
TCG would double the guest's run; tests/guest/test_inspector_guest.py covers them there."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")
DISK = "/dev/vda"  # the guest's scratch disk (GuestVM(disk_mb=64)); raw, nothing on it
CHECKS = "memory-oom,cpu-quota-0.5,cpu-shares,cpuset,pids-limit,io-write-bps"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One work dir for the module: the busybox root is prepared once (slow under TCG)."""
    return tmp_path_factory.mktemp("verify-work")


def _verify(tmp_path, workdir, checks: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    env = dict(os.environ, ISOINSPECT_RESULTS=str(tmp_path / "results"))
    result = subprocess.run([CLI, "verify", "--runtime", "isoinspect,control", "--checks",
                             checks, "--quick", "--json", "--no-trace", "--workdir", str(workdir)],
                            capture_output=True, text=True, timeout=500, env=env)
    assert result.stdout, result.stderr[-3000:]
    return result, json.loads(result.stdout), str(workdir)


def test_verify_isoinspect_and_control_on_cgroup_v2(tmp_path, workdir):
    result, payload, workdir = _verify(tmp_path, workdir, CHECKS)
    with open(payload["path"]) as handle:
        assert json.load(handle)["machine"]["cgroup_mode"] == "unified"
    by = {(r["runtime"], r["check"]): r for r in payload["results"]}
    for (runtime, check), r in by.items():  # shown with -s / on failure
        print(runtime, check, r["status"], r["measured"], r["expected"], r["tolerance"],
              r.get("duration_s"))
    for check in CHECKS.split(","):
        mine, control = by[("isoinspect", check)], by[("control", check)]
        if check == "cpuset" and mine["status"] == "UNSUPPORTED":
            assert "at least 2 CPUs" in mine["why"]  # a one-CPU guest
            continue
        if check.startswith("io-") and mine["status"] == "UNSUPPORTED":
            # the guest kernel's initramfs loads no loop driver; io.max itself is checked on
            # the guest's disk by test_cgroups_v2_guest.py
            assert "no loop device driver" in mine["why"] and control["status"] == "UNSUPPORTED"
            continue
        if check.startswith("cpu-quota") and mine["status"] == "ERROR":
            assert mine["why"].startswith("inconclusive"), mine
            continue
        assert mine["status"] == "PASS", (check, mine["why"], mine["evidence"])
        assert control["status"] == "FAIL", (check, control["why"])
    assert result.returncode == 0, result.stderr[-3000:]
    with open("/proc/self/mountinfo") as handle:
        assert workdir not in handle.read()


def test_verify_memory_swap_with_swap_on(tmp_path, workdir):
    """The host has no swap, so memory-swap is UNSUPPORTED there; the guest is disposable:
    swap on its scratch disk for this test, and memory+swap (memory.swap.max) is checked."""
    try:
        is_disk = stat.S_ISBLK(os.stat(DISK).st_mode)
    except FileNotFoundError:
        is_disk = False
    if not is_disk:
        pytest.skip(f"no {DISK} in the guest (boot it with a disk: GuestVM(disk_mb=...))")
    subprocess.run(["mkswap", DISK], check=True, capture_output=True)
    subprocess.run(["swapon", DISK], check=True, capture_output=True)
    try:
        result, payload, _ = _verify(tmp_path, workdir, "memory-swap")
    finally:
        subprocess.run(["swapoff", DISK], check=True, capture_output=True)
    by = {r["runtime"]: r for r in payload["results"]}
    print({name: (r["why"], r.get("duration_s")) for name, r in by.items()})
    assert by["isoinspect"]["status"] == "PASS", by["isoinspect"]
    inside, past = by["isoinspect"]["evidence"]["inside"], by["isoinspect"]["evidence"]["past"]
    assert inside["hog_exit"] == 0 and past["hog_exit"] == 137
    assert by["control"]["status"] == "FAIL", by["control"]["why"]
    assert result.returncode == 0, result.stderr[-3000:]
