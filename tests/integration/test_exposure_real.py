"""exposure for real: the kernel's syscall counts of containers, runsc's sandbox and the BPF
programs' own cost (root, BCC, runc, runsc; quick-sized).

A static C helper calls getppid(2) N times; under runc the container's host processes must make
N getppid calls (within 3%: nothing else in the window calls getppid; the shell's own start-up
is before the window), under runsc none (its processes are Sentry tasks: the Sentry answers
getppid itself), and an idle container makes almost none.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from isoinspect.benches import exposure

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="eBPF and containers need root")

N = 10_000
HELPER = "/isoinspect-getppid"
SOURCE = r"""
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return 0;
}
"""
#: an idle container (``sleep`` blocked in clock_nanosleep) makes no syscall until it wakes;
#: a handful may come from the shell's exec of sleep finishing after the ready line and from
#: a signal or timer slack, so 1 s of idle must stay under this
IDLE_MAX_CALLS = 20


@pytest.fixture(scope="module")
def counter():
    from isoinspect.inspector.exposure import SyscallCounter

    with SyscallCounter() as loaded:
        yield loaded


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build the static getppid helper (make setup installs it)")
    folder = tmp_path_factory.mktemp("isoinspect-exposure-helper")
    (folder / "getppid.c").write_text(SOURCE)
    binary = folder / "getppid"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(folder / "getppid.c")],
                   check=True)
    return str(binary)


def _prepared(runtime: str, workdir: str, helper: str):
    target = exposure.make_target(runtime)
    ok, why = target.available()
    assert ok, why
    target.prepare(workdir)
    if helper:
        shutil.copy2(helper, target.rootfs + HELPER)
    return target


def _run(counter, runtime, workload, tmp_path, helper="", duration=1.0):
    target = _prepared(runtime, str(tmp_path), helper)
    try:
        result = exposure.run_one(counter, runtime, workload, duration, str(tmp_path),
                                  target=target)
    finally:
        target.cleanup()
    assert result.status == "ok", result.reason
    return result


def test_runc_container_makes_the_getppid_calls_it_must(counter, helper, tmp_path):
    result = _run(counter, "runc", exposure.Workload("command", f"{HELPER} {N}"), tmp_path,
                  helper)
    calls = result.figures["calls_by_name"].get("getppid", 0)
    assert N <= calls <= N * 1.03, result.figures["top"]
    by_process = result.figures["calls_by_process"]
    assert by_process.get(os.path.basename(HELPER)[:15], 0) >= N, by_process  # comm: 15 chars
    assert result.allowed["shares_host_kernel"] is True
    assert result.allowed["seccomp"] == "filter"
    assert result.allowed["seccomp_allowed_syscalls"] > 250
    cost = result.bpf
    assert cost["run_cnt"] > N and cost["run_time_ns"] > 0 and cost["lost_events"] == 0


def test_runsc_workload_shows_up_as_sentry_and_gofer_syscalls(counter, helper, tmp_path):
    result = _run(counter, "runsc", exposure.Workload("command", f"{HELPER} {N}"), tmp_path,
                  helper)
    figures = result.figures
    assert figures["calls_by_name"].get("getppid", 0) < N * 0.01, figures["top"]
    names = set(figures["calls_by_process"])
    assert names and all(name.startswith("runsc") or name == "exe" for name in names), names
    assert any("sandbox" in name for name in names), names
    assert result.watched["non_sandbox_processes"] == []
    assert figures["total"] > 0           # the Sentry did work for the workload on the host
    assert result.allowed["shares_host_kernel"] == "via the Sentry"


def test_idle_container_makes_almost_no_syscalls(counter, tmp_path):
    result = _run(counter, "runc", exposure.make_workload("idle", None), tmp_path)
    assert result.work_seconds >= 1.0
    assert result.figures["total"] <= IDLE_MAX_CALLS, result.figures["top"]


def test_cli_writes_json_a_record_and_the_table(tmp_path):
    import json
    import sys

    out_file = tmp_path / "exposure.json"
    out = subprocess.run([sys.executable, "-m", "isoinspect", "exposure", "--runtime", "runc",
                          "--workload", "idle", "--duration", "0.5", "--json", str(out_file),
                          "--results-dir", str(tmp_path / "records")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "runc" in out.stdout and "BPF cost:" in out.stdout and "lost events 0" in out.stdout
    document = json.loads(out_file.read_text())
    (result,) = document["results"]
    assert result["kind"] == "exposure" and result["status"] == "ok"
    assert result["bpf"]["run_cnt"] > 0 and result["bpf"]["lost_events"] == 0
    record = json.loads(open(document["path"]).read())
    assert record["results"][0]["workload"] == "idle"
    shown = subprocess.run([sys.executable, "-m", "isoinspect", "results", "show",
                            "--results-dir", str(tmp_path / "records"), "latest"],
                           capture_output=True, text=True, timeout=60)
    assert "exposure" in shown.stdout and "host syscalls" in shown.stdout, shown.stdout


def test_vm_counts_the_qemu_process(counter, tmp_path):
    """An idle guest: QEMU's own host syscalls (timers, its event loop), and it does not share
    the host kernel with the workload."""
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed on this host")
    result = exposure.run_one(counter, "qemu", exposure.make_workload("idle", None), 0.5,
                              str(tmp_path))
    assert result.status == "ok", result.reason
    assert result.figures["total"] > 0
    assert all(name.startswith("qemu") for name in result.figures["calls_by_process"])
    assert result.allowed["shares_host_kernel"] is False
    assert result.bpf["accelerator"] in ("kvm", "tcg")


def _program_test(counter, runtime: str, tmp_path) -> "exposure.TestExposure":
    """``--workload getppid`` as the CLI runs it: the overhead runner's install step puts the
    workload program's layer into the runtime's image; one window between its pauses."""
    result = exposure.run_one(counter, runtime, exposure.make_workload("getppid", None), 1.0,
                              str(tmp_path))
    assert result.status == "ok", result.reason
    (test,) = result.tests
    assert test.test == "getppid" and test.status == "ok", test
    assert test.ops > 100, test                     # ~100 ms of calls, from the program's line
    return test


def test_runc_program_getppid_is_one_host_getppid_per_op(counter, tmp_path):
    test = _program_test(counter, "runc", tmp_path)
    getppid = test.calls_by_name.get("getppid", 0)
    assert 0.99 <= getppid / test.ops <= 1.03, (test.ops, test.top)
    assert 0.99 <= test.calls_per_op <= 1.05, test.top    # little else in the window
    assert test.calls_by_process.get("isoinspect-work", 0) >= test.ops, test.calls_by_process


def test_runsc_program_getppid_is_sentry_and_gofer_calls_not_getppid(counter, tmp_path):
    test = _program_test(counter, "runsc", tmp_path)
    assert test.calls_by_name.get("getppid", 0) < test.ops * 0.01, test.top
    names = set(test.calls_by_process)
    assert names and all(name.startswith("runsc") or name == "exe" for name in names), names
    assert test.calls > 0 and test.top[0]["name"] != "getppid", test.top


def test_vm_program_getppid_is_answered_by_the_guest_kernel(counter, tmp_path):
    """The layer goes in as bench overhead's QEMU runner puts it in (a read-only share copied
    into the guest root); the guest kernel answers getppid: QEMU makes far fewer host calls."""
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed on this host")
    test = _program_test(counter, "qemu", tmp_path)
    assert test.calls_by_name.get("getppid", 0) == 0, test.top
    assert test.calls_per_op < 0.5, test.top
    assert all(name.startswith("qemu") for name in test.calls_by_process), test.calls_by_process
