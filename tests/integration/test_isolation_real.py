"""The isolation matrix and the scorecard's verdicts for real: one running ``sleep`` of each
runtime (root; isoinspect, runc, runsc, Docker, a QEMU guest; quick-sized, seconds each).

Each runtime's verdict must be right for what its workload can reach: runc and Docker are
Docker's default (user and time namespaces shared is normal, not "not confined"); ours adds
no_new_privs and a cgroup namespace; all three say they run as root without a user namespace;
a gVisor workload is judged inside the sandbox (no SYS_ADMIN there: that is the Sentry's, named
apart) and its cgroup is the sandbox's real one; the VM is a separate kernel.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import CLI

from isoinspect.benches import isolation

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers and QEMU need root")

ROOT_NOTE = "runs as root without a user namespace (uid 0 is the host's root)"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Measured once per module, lazily per runtime."""
    workdir = str(tmp_path_factory.mktemp("isoinspect-isolation"))
    folder = str(tmp_path_factory.mktemp("isoinspect-isolation-results"))
    cache: dict[str, isolation.IsolationResult] = {}

    def get(runtime: str) -> isolation.IsolationResult:
        if runtime not in cache:
            cache[runtime] = isolation.run_one(runtime, workdir, folder)
        result = cache[runtime]
        assert result.status == "ok", result.reason
        return result
    return get


def test_runc_is_dockers_default(results):
    r = results("runc")
    p, level = r.properties, r.evidence["verdict"]["level"]
    assert level == "confined" and r.evidence["verdict"]["missing"] == []
    assert p["verdict"] == f"confined like Docker's default; {ROOT_NOTE}"
    assert [n for n, s in p["namespaces"].items() if s == "own"] == \
        ["ipc", "mnt", "net", "pid", "uts"] or p["namespaces"]["cgroup"] == "own"
    assert p["capabilities"] == 14 and p["dangerous_capabilities"] == []
    assert p["seccomp"] == "filter" and p["seccomp_allowed"] > 250
    assert p["no_new_privs"] is False and p["runs_as_root"] and not p["user_namespace"]
    assert p["masked_paths"] == 11 and p["readonly_paths"] == 5
    assert p["shares_host_kernel"] == "yes" and p["sandbox_privileges"] is None


def test_docker_default_is_confined_not_judged_by_a_count(results):
    r = results("docker")
    p = r.properties
    assert p["verdict"] == f"confined like Docker's default; {ROOT_NOTE}", p["verdict"]
    assert p["namespaces"]["user"] == p["namespaces"]["time"] == "shared"
    assert p["no_new_privs"] is False and p["capabilities"] == 14
    assert r.evidence["cgroup"].startswith("/docker/")


def test_our_runtime_says_it_runs_as_root(results):
    r = results("isoinspect")
    p = r.properties
    assert p["runs_as_root"] and not p["user_namespace"]
    assert p["verdict"].startswith("confined like Docker's default, plus no_new_privs")
    assert p["verdict"].endswith(ROOT_NOTE)
    assert p["no_new_privs"] and p["seccomp"] == "filter"


def test_runsc_is_judged_by_what_the_workload_reaches(results):
    r = results("runsc")
    p, ev = r.properties, r.evidence
    assert ev["verdict"]["level"] == "sandboxed"
    assert p["shares_host_kernel"] == "via the Sentry"
    assert p["verdict"].startswith("sandboxed: the workload's system calls go to the Sentry")
    assert "SYS_ADMIN" not in p["dangerous_capabilities"] and p["capabilities"] <= 14
    assert ev["guest"]["kernel_version"] and "runs as root in the sandbox" in p["verdict"]
    sentry = p["sandbox_privileges"]["sentry"]
    assert "SYS_ADMIN" in sentry["dangerous_capabilities"]      # the Sentry's, named apart
    assert "gofer" in p["sandbox_privileges"]
    assert ev["cgroup"].endswith(tuple(f"-runsc-{i}" for i in range(10))), ev["cgroup"]


def test_qemu_guest_is_a_separate_kernel(results):
    r = results("qemu")
    p, ev = r.properties, r.evidence
    assert ev["verdict"]["level"] == "separate kernel"
    assert p["verdict"].startswith("separate kernel")
    assert p["shares_host_kernel"] == "no" and set(p["namespaces"].values()) == {"own"}
    assert ev["guest"]["boot_id"] and ev["guest"]["accelerator"] in ("kvm", "tcg")
    assert p["sandbox_privileges"]["qemu"]["pid"] > 0


def test_command_writes_records_and_prints_the_matrix(tmp_path):
    out = tmp_path / "iso.json"
    result = subprocess.run([CLI, "isolation",
                             "--runtime", "runc,docker", "--json", str(out), "--results-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "HOST KERNEL" in result.stdout and "runc: confined like Docker's default" in \
        result.stdout
    document = json.loads(out.read_text())
    assert [r["runtime"] for r in document["results"]] == ["runc", "docker"]
    assert all(r["kind"] == "isolation" and r["status"] == "ok" for r in document["results"])
    with open(document["path"]) as handle:
        assert json.load(handle)["command"] == "isolation"
    bad = subprocess.run([CLI, "isolation",
                          "--runtime", "nope", "--results-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 125 and "unknown runtime" in bad.stderr


def test_scorecard_cli_of_a_gvisor_sandbox_pid(tmp_path):
    """`isoinspect scorecard <sandbox pid>` (what `inspect --scorecard` runs): the workload's
    view, the Sentry's privileges apart, the sandbox's real cgroup (not the unified "/")."""
    from isoinspect.benches.bundle import Limits
    from isoinspect.benches.targets import RunscTarget

    target = RunscTarget()
    ok, why = target.available()
    assert ok, why
    box = None
    try:
        target.prepare(str(tmp_path))
        box = target.start(["/bin/sleep", "100"], Limits())
        text = subprocess.run([CLI, "scorecard", str(box.pid)], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    finally:
        if box is not None:
            box.stop()
        target.cleanup()
    assert "verdict       sandboxed" in text and "host kernel   via the Sentry" in text
    assert f"cgroup        /isoinspect-peers/{box.name}" in text
    sentry = next(line for line in text.splitlines() if line.strip().startswith("sentry"))
    assert "SYS_ADMIN" in sentry
    capabilities = next(line for line in text.splitlines() if "effective" in line)
    assert "SYS_ADMIN" not in capabilities
