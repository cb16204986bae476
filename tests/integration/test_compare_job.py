"""`isoinspect compare` end to end with real stages sized down through ISOINSPECT_COMPARE_<STAGE>
(seconds each): the last stdout line is the report, every record of the job is in it and in the
--json bundle, the bundle renders again; SIGINT to the job mid-stage keeps what was measured and
still writes the report (exit 130)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ISOINSPECT = os.path.join(os.path.dirname(sys.executable), "isoinspect")
TINY = {"ISOINSPECT_COMPARE_STARTUP": "bench startup --runs 3 --warmup 0 --trace-runs 0 "
                                      "--targets host-exec,isoinspect-cli",
        "ISOINSPECT_COMPARE_NAMESPACES": "bench namespaces --runs 3 --levels 1",
        "ISOINSPECT_COMPARE_CONCURRENCY": "bench concurrency --levels 1,2 --starts 4 "
                                          "--targets host-exec"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the stages need root")


def _env(tmp_path) -> dict:
    return dict(os.environ, **TINY, ISOINSPECT_RESULTS=str(tmp_path / "elsewhere"))


def test_compare_tiny_job_end_to_end(tmp_path):
    results, report, bundle = tmp_path / "results", tmp_path / "r.html", tmp_path / "node.json"
    done = subprocess.run([ISOINSPECT, "compare", "--quick", "--stages",
                           "startup,namespaces,concurrency", "--results-dir", str(results), "-o", str(report), "--json",
                           str(bundle)], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=240)
    print(done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last == str(report) and os.path.getsize(last) > 10000
    records = sorted(str(p) for p in results.glob("*.json"))
    assert len(records) == 3 and not (tmp_path / "elsewhere").exists()
    progress = [line for line in done.stderr.splitlines() if line.startswith("compare: [")]
    assert len(progress) == 8 and all("left)" in line for line in progress)
    assert "startup: ok in" in progress[1] and "1 record(s)" in progress[1]
    stored = json.loads(bundle.read_text())
    assert sorted(r["command"] for r in stored) == ["bench concurrency", "bench namespaces",
                                                    "bench startup"]
    startup = [r for run in stored for r in run["results"] if r["kind"] == "startup"]
    assert {r["target"] for r in startup} == {"host-exec", "isoinspect-cli"}
    assert all(len(r["samples"]) == 3 for r in startup if r["status"] == "ok")
    assert {r["run_id"] for r in stored} == {os.path.basename(p)[:-5] for p in records}
    html = report.read_text()
    assert all(r["run_id"] in html for r in stored)
    again = subprocess.run([ISOINSPECT, "report", str(bundle), "-o", str(tmp_path / "b.html")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(tmp_path / "b.html")


def test_compare_sigint_keeps_what_was_measured(tmp_path):
    env = _env(tmp_path)
    env["ISOINSPECT_COMPARE_STARTUP"] = ("bench startup --runs 100000 --warmup 0 "
                                         "--trace-runs 0 --targets host-exec")
    results, report = tmp_path / "results", tmp_path / "r.html"
    job = subprocess.Popen([ISOINSPECT, "compare", "--quick", "--stages", "startup,namespaces",
                            "--results-dir", str(results), "-o", str(report)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        measured = False
        while time.monotonic() < deadline and not measured:  # a round published
            time.sleep(0.5)
            for path in results.glob("*.json"):
                try:
                    measured = bool(json.loads(path.read_text())["results"])
                except (ValueError, KeyError):
                    pass
        assert measured, "the start-up stage published nothing in 60 s"
        time.sleep(1)
        job.send_signal(signal.SIGINT)  # the job only: it passes SIGINT to its stage
        out, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    print(err[-3000:])
    assert job.returncode == 130, err[-2000:]
    assert out.strip().splitlines()[-1] == str(report) and report.exists()
    assert "startup: interrupted" in err and "not starting namespaces" in err
    records = list(results.glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["interrupted"]
