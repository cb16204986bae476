"""The start-up benchmark for real, briefly: every target starts `true` and leaves nothing.

runc is installed on this machine and in CI, so its absence is a failure, not a skip.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from isoinspect.benches import startup
from isoinspect.benches.targets import default_targets

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (CI runs as root)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _leftovers(workdir: str) -> list[str]:
    """Containers, cgroups and runc state the benchmark's targets could have left."""
    from isoinspect.runtime.roots import Roots
    from isoinspect.runtime.runtime import Runtime

    found = []
    for root in glob.glob(os.path.join(workdir, "isoroot-*")):
        runtime = Runtime(root)
        found += [f"container {r['id']}" for r in runtime.list(all_containers=True)]
        parent = Roots(root).cgroup_parent
        found += glob.glob(f"/sys/fs/cgroup/*/{parent}") + glob.glob(f"/sys/fs/cgroup/{parent}")
    state = os.path.join(workdir, "runc", "state")
    if os.path.isdir(state):
        listed = subprocess.run(["runc", "--root", state, "list", "-q"], capture_output=True,
                                text=True).stdout.split()
        found += [f"runc container {c}" for c in listed]
    found += glob.glob("/sys/fs/cgroup/*/isoinspect-bench-*")
    return found


def test_quick_run_measures_every_target(tmp_path, capsys):
    workdir = str(tmp_path / "work")
    os.makedirs(workdir)
    everything = default_targets()
    result = startup.run_startup(everything, runs=3, warmup=1, quick=True, workdir=workdir,
                                 progress=False)
    table = capsys.readouterr().out
    slow = [t for t in everything if t.slow]
    targets = [t for t in everything if not t.slow]
    assert slow, "the QEMU guest is a slow target"
    for target in slow:  # --quick leaves slow targets out, and says so
        assert result["targets"][target.name]["status"] == "skipped"
    for target in targets:
        data = result["targets"][target.name]
        assert data["status"] == "ready", f"{target.name}: {data['reason']}"
        assert len(data["samples"]) == 3, f"{target.name}: {data['errors']}"
        assert all(s > 0 for s in data["samples"])
        assert data["error_count"] == 0, data["errors"]
        assert target.name in table
    assert "p50 / runc" in table
    assert set(result["ratios"]) >= {t.name for t in targets}
    assert result["ratios"]["runc"]["ratio"] == pytest.approx(1.0)
    lib = result["targets"]["isoinspect-lib"]
    assert set(lib["phases"]) >= {"create", "start_to_exec", "wait", "remove"}
    # the library's start-to-exec is part of its own full lifecycle
    assert lib["stats"]["p50"] < result["targets"]["isoinspect-lib-lifecycle"]["stats"]["p50"]
    assert result["targets"]["host-exec"]["stats"]["p50"] < result["targets"]["runc"]["stats"][
        "p50"]
    assert "runc version" in result["targets"]["runc"]["version"]
    assert not _leftovers(workdir)


def test_module_entry_writes_json_and_stops_cleanly_on_sigint(tmp_path):
    workdir, out = tmp_path / "work", tmp_path / "out.json"
    workdir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "isoinspect.benches.startup", "--runs", "1000", "--warmup", "0",
         "--targets", "isoinspect-lib,runc,isoinspect-cli", "--json", str(out),
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and json.loads(out.read_text())["rounds_completed"] >= 3:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "[INTERRUPTED]" in stdout and "p50 / runc" in stdout
    saved = json.loads(out.read_text())
    assert saved["interrupted"] and saved["rounds_completed"] >= 3
    assert saved["targets"]["runc"]["stats"]["n"] >= 3
    assert not _leftovers(str(workdir))


def test_pytest_benchmark_suite_runs_and_is_not_in_the_normal_test_run(tmp_path):
    bench = subprocess.run(
        [sys.executable, "-m", "pytest", "benches/", "--benchmark-only", "-q",
         "-p", "no:cacheprovider", "--startup-rounds", "2", "--startup-warmup", "0",
         f"--benchmark-json={tmp_path / 'bench.json'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    names = {b["name"] for b in json.loads((tmp_path / "bench.json").read_text())["benchmarks"]}
    assert names == {t.name for t in default_targets()}
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "test_startup_bench" not in collected.stdout
