"""The issue's reproduction, for real: `bench namespaces --quick` then `report latest` writes a
report (it failed with "internal error: ValueError: shape mismatch")."""

from __future__ import annotations

import os
import subprocess
import sys

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")


def test_bench_namespaces_quick_then_report_latest(tmp_path):
    env = dict(os.environ, ISOINSPECT_RESULTS=str(tmp_path / "results"))
    bench = subprocess.run([CLI, "bench", "namespaces", "--quick", "--runs", "10"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert bench.returncode == 0, bench.stderr
    out = tmp_path / "x.html"
    report = subprocess.run([CLI, "report", "latest", "-o", str(out)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip().splitlines()[-1] == str(out)
    html = out.read_text()
    assert 'id="chart-namespaces"' in html and "none (baseline)" in html
    assert "creators at once" in html and "internal error" not in html
