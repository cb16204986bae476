"""``isoinspect bench density`` for real, at small levels: every figure is there and sane, the
record and ``results show`` read back, and nothing started is left behind (also after SIGINT).

runc, runsc, dockerd and QEMU (TCG) work on this machine and in CI: their absence is a failure
here, not a skip.
"""

from __future__ import annotations

import glob
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from isoinspect.benches import record as record_mod
from isoinspect.benches.density import procmem
from isoinspect.runtime import process as proc_util
from isoinspect.runtime.errors import USAGE_EXIT_CODE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (CI runs as root)")

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")
MIB = 1 << 20
#: per-instance MiB an idle instance of each target must stay under on any sane host
BOUNDS = {"host": 5, "isoinspect": 20, "isoinspect-cli": 40, "runc": 20, "runsc": 80, "docker": 60, "qemu": 1024}


def _boot_ticks() -> int:
    """Now, in /proc/PID/stat start-time ticks (processes started after this are ours)."""
    with open("/proc/uptime") as handle:
        return int(float(handle.read().split()[0]) * os.sysconf("SC_CLK_TCK")) - 1


def _our_vm_dirs() -> set[str]:
    """Run directories of density's detached guests (their job announces itself)."""
    from isoinspect.benches.vm.instance import STARTED

    found = set()
    for path in glob.glob("/tmp/isoinspect-vm-*/job.sh"):
        try:
            with open(path) as handle:
                if STARTED in handle.read():
                    found.add(os.path.dirname(path))
        except OSError:
            continue
    return found


def _leftovers(data: dict, bench_pid: int, since: int, vm_dirs_before: set[str]) -> list[str]:
    """Containers, cgroups, processes and temp dirs of this run still on the host."""
    from isoinspect.runtime.roots import Roots

    workdir = data["config"]["workdir"]
    found = [f"work dir {workdir}"] if os.path.exists(workdir) else []
    prefix = f"isoinspect-verify-{bench_pid}-"
    found += glob.glob(f"/sys/fs/cgroup/*/isoinspect-peers/{prefix}*")
    parent = Roots(os.path.join(workdir, "isoroot-isoinspect-lib")).cgroup_parent
    found += [d for d in glob.glob(f"/sys/fs/cgroup/*/{parent}/*") if os.path.isdir(d)]
    docker = subprocess.run(["/usr/bin/docker", "ps", "-aq", "--filter", f"name={prefix}"],
                            capture_output=True, text=True, timeout=60)
    found += [f"docker container {c}" for c in docker.stdout.split()]
    for info in procmem.process_table().values():
        ticks = proc_util.start_ticks(info.pid)     # None for a zombie (pid 1 reaps it)
        if ticks is None or ticks < since:
            continue
        try:
            with open(f"/proc/{info.pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if b"3600" in argv and any(a.endswith(b"sleep") for a in argv) or workdir in text:
            found.append(f"process {info.pid} {text[:120]}")
    for result in data["results"]:
        for name in result.get("names") or []:
            if name.startswith("qemu-") and proc_util.start_ticks(int(name[5:])):
                found.append(f"QEMU {name}")
    found += sorted(_our_vm_dirs() - vm_dirs_before)
    return found


class Run:
    """``isoinspect bench density ...`` as a subprocess, stderr read line by line."""

    def __init__(self, *args: str) -> None:
        self.since = _boot_ticks()
        self.vm_dirs = _our_vm_dirs()
        self.proc = subprocess.Popen([CLI, "bench", "density", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []

    def wait_line(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.proc.stderr], [], [], 0.5)[0]:
                line = self.proc.stderr.readline()
                if not line:
                    break
                self.stderr.append(line)
                if needle in line:
                    return line
        raise AssertionError(f"no {needle!r} on stderr: {''.join(self.stderr)[-2000:]}")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, stdout, "".join(self.stderr) + stderr


def _record(path) -> dict:
    return record_mod.load(str(path))


def _levels(data: dict) -> dict[tuple[str, int], dict]:
    return {(r["target"], r["level"]): r for r in data["results"]
            if r["kind"] == "density" and r["level"] is not None}


def test_containers_at_1_and_4_measured_recorded_shown_and_removed(tmp_path):
    out = tmp_path / "record.json"
    run = Run("--targets", "host,isoinspect,isoinspect-cli,runc", "--levels", "1,4", "--json",
              str(out),
              "--results-dir", str(tmp_path / "results"))
    code, stdout, stderr = run.finish(timeout=180)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    data = _record(out)
    assert data["command"] == "bench density" and data["finished"] and not data["interrupted"]
    levels = _levels(data)
    for target in ("host", "isoinspect", "isoinspect-cli", "runc"):
        for level in (1, 4):
            result = levels[(target, level)]
            assert result["status"] == "ok", result
            assert result["instances"] == level and len(result["samples"]) == level
            assert all(s > 0 for s in result["samples"])
            assert result["nth_start_seconds"] == result["samples"][-1]
            estimate = result["per_instance_bytes"]
            low, high = estimate["ci"]
            assert 0 < low <= estimate["estimate"] <= high < BOUNDS[target] * MIB, result
            assert result["host_used_bytes"] is not None and result["accounting"]
            assert result["total_bytes"] == pytest.approx(estimate["estimate"] * level)
        assert levels[(target, 4)]["marginal_bytes_per_instance"] is not None
    # the library's and runc's inits have no monitor: the cgroup charge is the whole cost
    for target in ("isoinspect", "runc"):
        result = levels[(target, 4)]
        assert result["runtime_pss_bytes"] == 0 and result["cgroup_bytes"] > 0
        assert result["processes"]["sleep"]["count"] == 4
    # `run -d` leaves its monitor (the static C program, not Python: under 1 MiB PSS each)
    # per container: the runtime's share
    cli = levels[("isoinspect-cli", 4)]
    assert 0 < cli["runtime_pss_bytes"] < 4 * MIB and cli["processes"]["sleep"]["count"] == 4
    assert cli["processes"]["isoinspect-monitor"]["count"] == 4
    assert levels[("host", 4)]["cgroup_bytes"] is None
    assert levels[("host", 4)]["processes"] == {
        "busybox": levels[("host", 4)]["processes"]["busybox"]}
    assert "MiB/inst" in stdout and "runc" in stdout
    assert stderr.count("density runc: level ") == 2     # one line per batch
    show = subprocess.run([CLI, "results", "show", str(out)], capture_output=True, text=True,
                          timeout=60)
    assert show.returncode == 0, show.stderr
    lines = [line for line in show.stdout.splitlines() if line.startswith("density")]
    assert len(lines) == 8 and all("MiB/instance" in line and "Nth start" in line
                                   for line in lines), show.stdout
    assert not _leftovers(data, run.proc.pid, run.since, run.vm_dirs)


def test_sigint_mid_level_exits_130_keeps_the_first_level_and_removes_everything(tmp_path):
    out = tmp_path / "record.json"
    results = tmp_path / "results"
    run = Run("--targets", "isoinspect,runc", "--levels", "1,25", "--json", str(out),
              "--results-dir", str(results))
    run.wait_line("density runc: level 1:", timeout=120)
    time.sleep(0.3)                      # into level 25's starts
    run.proc.send_signal(signal.SIGINT)
    code, stdout, stderr = run.finish(timeout=120)
    assert code == 130, stdout[-2000:] + stderr[-3000:]
    assert "[INTERRUPTED]" in stdout and "interrupted" in stderr
    (path,) = glob.glob(os.path.join(results, "*.json"))
    data = _record(path)
    assert data["interrupted"] and data["finished"]
    levels = _levels(data)
    assert levels[("isoinspect", 25)]["status"] == "ok"
    assert levels[("runc", 1)]["status"] == "ok"
    assert levels[("runc", 1)]["per_instance_bytes"]["estimate"] > 0
    if ("runc", 25) in levels:           # the signal landed in the starts, not the measuring
        assert levels[("runc", 25)]["status"] == "interrupted"
        assert 1 <= levels[("runc", 25)]["instances"] < 25
    assert not _leftovers(data, run.proc.pid, run.since, run.vm_dirs)


def test_runsc_docker_and_qemu_count_their_own_processes(tmp_path):
    out = tmp_path / "record.json"
    begin = time.monotonic()
    run = Run("--targets", "runsc,docker,qemu", "--levels", "1,2", "--json", str(out),
              "--results-dir", str(tmp_path / "results"))
    code, stdout, stderr = run.finish(timeout=240)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    data = _record(out)
    levels = _levels(data)
    for target in ("runsc", "docker", "qemu"):
        result = levels[(target, 2)]
        assert result["status"] == "ok", result
        estimate = result["per_instance_bytes"]["estimate"]
        assert 0 < estimate < BOUNDS[target] * MIB, result
    runsc = levels[("runsc", 2)]["processes"]
    assert runsc["runsc-sandbox"]["count"] == 2 and runsc["runsc-gofer"]["count"] == 2
    assert runsc["runsc-sandbox"]["role"] == "runtime" and runsc["runsc-sandbox"]["in_cgroup"]
    assert "sleep" not in runsc                      # a Sentry task, not a host process
    assert levels[("runsc", 2)]["runtime_pss_bytes"] > 0
    docker = levels[("docker", 2)]
    assert docker["processes"]["containerd-shim-runc-v2"]["count"] == 2
    assert docker["processes"]["sleep"]["role"] == "workload"
    assert docker["daemon_growth_bytes"] is not None and docker["daemons"]
    qemu = levels[("qemu", 2)]
    assert qemu["processes"]["qemu-system-x86_64"]["count"] == 2
    assert qemu["labels"]["accelerator"] in ("kvm", "tcg")
    guest_mb = qemu["setup"]["guest_memory_mb"]
    assert guest_mb and any(t["ok"] and t["memory_mb"] == guest_mb
                            for t in qemu["setup"]["memory_probe"]["tried"])
    # the QEMU process holds at least the part of its guest's RAM that booted Linux
    assert qemu["runtime_pss_bytes"] / 2 > guest_mb * MIB / 4
    assert f"{guest_mb} MiB guest RAM" in stdout
    assert not _leftovers(data, run.proc.pid, run.since, run.vm_dirs)
    print(f"runsc+docker+qemu at 1,2: {time.monotonic() - begin:.1f} s")


def test_a_failed_start_is_recorded_with_its_instance_and_ends_the_sweep(tmp_path):
    from isoinspect.benches.density.instances import HostLauncher
    from isoinspect.benches.density.sweep import TargetSweep
    from isoinspect.benches.targets import TargetError

    class ThirdFails(HostLauncher):
        def start(self, index):
            if index == 3:
                raise TargetError("no room for a third")
            return super().start(index)

    sweep = TargetSweep(ThirdFails(), [1, 2, 4, 8], settle=0.0)
    done = sweep.run(str(tmp_path))
    assert [(r["level"], r["status"]) for r in done.results] == [(1, "ok"), (2, "ok"),
                                                                  (4, "failed")]
    failed = done.results[-1]
    assert failed["failure"] == {"instance": 3, "error": "no room for a third"}
    assert "instance 3" in failed["reason"] and failed["instances"] == 2
    assert failed["per_instance_bytes"]["n"] == 2           # what still ran was measured
    for name in failed["names"]:
        assert proc_util.start_ticks(int(name.split("-")[1])) is None   # stopped and reaped


@pytest.mark.parametrize("args", [["--levels", "1,x"], ["--targets", "runc,nope"],
                                  ["--max", "0"]])
def test_bad_arguments_are_one_line_and_the_usage_code(args, tmp_path):
    run = subprocess.run([CLI, "bench", "density", *args, "--results-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == USAGE_EXIT_CODE, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not os.listdir(tmp_path)                          # refused before any record
