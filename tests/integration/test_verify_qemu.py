"""``isoinspect verify --runtime qemu`` for real: a QEMU guest configured like libvirt enforces
memory (guest RAM, the guest's OOM killer), CPU quota and shares (the host cgroup around QEMU),
the cpuset (vCPUs + pinning) and I/O bps (QEMU's disk throttle); pids is UNSUPPORTED with why;
every result names the accelerator and carries the host cgroup's figures; no QEMU process,
host cgroup, loop device or mount is left behind.

One CLI run with --quick windows, one guest boot per check (two for cpu-shares): 40 s on a quiet
2-CPU host under TCG, up to about 2.5 minutes while other sessions load it.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")
CHECKS = ("memory-oom,memory-under-limit,cpu-quota-0.5,cpu-shares,cpuset,pids-limit,"
          "io-write-bps")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="verify needs root")


def _qemu_pids() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().startswith("qemu-system"):
                    found.add(int(entry))
        except (OSError, ValueError):
            pass
    return found


def test_qemu_enforces_what_a_vm_manager_can(tmp_path):
    if not os.path.exists("/usr/bin/qemu-system-x86_64"):
        pytest.skip("qemu-system-x86 is not installed")
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = dict(os.environ, ISOINSPECT_RESULTS=str(tmp_path / "results"))
    result = subprocess.run([CLI, "verify", "--runtime", "qemu", "--checks", CHECKS, "--quick",
                             "--json", "--no-trace", "--workdir", str(workdir)],
                            capture_output=True, text=True, timeout=400, env=env)
    assert result.stdout, result.stderr
    payload = json.loads(result.stdout)
    results = {r["check"]: r for r in payload["results"]}
    assert sorted(results) == sorted(CHECKS.split(",")), result.stderr

    for check, res in results.items():
        evidence = res["evidence"]
        assert evidence["accelerator"] in ("tcg", "kvm"), (check, evidence)
        assert res["labels"] == {"accelerator": evidence["accelerator"]}
        if check == "pids-limit":
            assert res["status"] == "UNSUPPORTED" and "guest kernel's tasks" in res["why"]
            assert "vms" not in evidence  # nothing was booted for it
            continue
        if check.startswith("cpu-quota") and res["status"] == "ERROR":
            # other work on this 2-CPU host can starve the guest below its quota
            assert res["why"].startswith("inconclusive"), res
        else:
            assert res["status"] == "PASS", (check, res["why"], evidence)
        for vm in evidence["vms"]:
            assert vm["host_cgroup"].startswith("isoinspect-verify-")
            assert vm["qemu_alive_at_stop"] and vm["host_figures_at_stop"]["cpu"], vm
            assert vm["boot_s"] > 0 and vm["qemu_pid"] > 0

    def vm_of(check: str, index: int = 0) -> dict:
        return results[check]["evidence"]["vms"][index]

    # memory: the guest's RAM (raised to what its kernel boots in) and its OOM killer
    oom = results["memory-oom"]
    assert oom["evidence"]["guest"]["hog_exit"] == 137
    assert oom["evidence"]["guest"]["guest_oom_kills"] >= 1
    assert 0 < oom["measured"] <= oom["expected"]
    config = vm_of("memory-oom")["config"]
    assert config["guest_memory_mb"] >= 32 and config["host_cgroup_at_start"]["memory"] > 0
    host_memory = vm_of("memory-oom")["host_figures_at_stop"]["memory"]
    assert host_memory["max"] == config["host_cgroup_at_start"]["memory"]
    assert host_memory["peak"] <= host_memory["max"] and not host_memory["events"]["oom_kill"]
    assert results["memory-under-limit"]["evidence"]["guest"]["hog_exit"] == 0
    # cpu: quota and shares live on the host cgroup around QEMU
    quota = vm_of("cpu-quota-0.5")
    assert quota["host_figures_at_stop"]["cpu"]["quota_us"] == 50000
    assert quota["config"]["vcpus"] == os.cpu_count()
    shares = [vm_of("cpu-shares", i)["host_figures_at_stop"]["cpu"]["shares"] for i in (0, 1)]
    assert shares == [1024, 256]
    pinned = vm_of("cpuset")
    assert pinned["config"]["vcpus"] == 1
    assert pinned["host_figures_at_stop"]["cpuset"]["cpus"] == str(os.cpu_count() - 1)
    # io: the virtual disk QEMU throttles (libvirt iotune); bytes counted at the host device
    drive = vm_of("io-write-bps")["config"]["drive"]
    assert drive["bps_write"] == 2 << 20 and "throttling.bps-write" in drive["qemu"]
    assert results["io-write-bps"]["evidence"]["series"]["value"][-1] > 0
    assert result.returncode == 0, result.stderr

    # nothing left behind: the guests' QEMUs, the host cgroups, loop devices, mounts
    started = {vm["qemu_pid"] for r in results.values() for vm in r["evidence"].get("vms", [])}
    assert not started & _qemu_pids(), "QEMU processes left behind"
    names = {vm["host_cgroup"] for r in results.values() for vm in r["evidence"].get("vms", [])}
    stems = {name.rsplit("-", 1)[0] for name in names}
    left = [path for stem in stems for path in glob.glob(f"/sys/fs/cgroup/*/{stem}*")]
    assert not left, f"host cgroups left behind: {left}"
    with open("/proc/self/mountinfo") as handle:
        assert not [line for line in handle if str(workdir) in line]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(workdir) not in loops
    with open(payload["path"]) as handle:
        record = json.load(handle)
    assert record["finished"] and "QEMU" in record["versions"]["qemu"]
