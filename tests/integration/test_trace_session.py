"""The tracer in its own process: the measured process does no BPF work, and a traced pass still
gives phases and a per-target overhead with its interval (quick-sized: a few pairs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="eBPF needs root")

# Run in a fresh interpreter: this test process may have loaded BCC for other tests.
MEASURED = r"""
import json, os, subprocess, sys
from isoinspect.inspector.trace_session import TraceSession, holds_bpf
with TraceSession() as session:
    session.begin(pids=(os.getpid(),))
    child = subprocess.Popen(["unshare", "-u", "sh", "-c", "sleep 0.3"])
    during = holds_bpf()                          # while the measured run goes on
    child.wait()
    events = session.collect(unwatch_all=True)
    print(json.dumps({"me": os.getpid(), "tracer": session.pid, "during": during,
                      "bcc_imported": "bcc" in sys.modules,
                      "tracer_holds": holds_bpf(session.pid),
                      "events": [[e["event"], e["pid"], e.get("comm")] for e in events]}))
"""


def test_the_measured_process_holds_no_bpf_and_the_tracer_process_reads_the_events():
    run = subprocess.run([sys.executable, "-c", MEASURED], capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["tracer"] != seen["me"]
    assert seen["during"] == [], "the measured process has BPF fds or libbcc mapped"
    assert not seen["bcc_imported"]
    assert any("bpf" in item for item in seen["tracer_holds"]), seen["tracer_holds"]
    names = {name for name, _, _ in seen["events"]}
    assert {"newtask", "unshare", "exec", "exit"} <= names, names
    # the tracer process is not in the watched pid tree: none of the events is its own
    assert all(pid != seen["tracer"] for _, pid, _ in seen["events"])
    unshare = [e for e in seen["events"] if e[0] == "unshare"]
    assert unshare and unshare[0][2] == "unshare"


def test_a_traced_pass_gives_phases_and_a_per_target_overhead_with_its_interval(tmp_path):
    from isoinspect.benches import trace_pass
    from isoinspect.benches.targets import select
    from isoinspect.inspector.trace_session import holds_bpf

    targets = select(["runc", "isoinspect-lib"])
    during: list[list[str]] = []
    for target in targets:
        ok, reason = target.available()
        assert ok, f"{target.name} must run on this host: {reason}"
        target.prepare(str(tmp_path))
        measure = target.measure

        def checked(metric, measure=measure):
            during.append([x for x in holds_bpf() if x.startswith("fd ")])
            return measure(metric)

        target.measure = checked
    try:
        result = trace_pass.traced_pass(targets, pairs=3)
    finally:
        for target in targets:
            target.cleanup()
    assert result["status"] == "ok", result["reason"]
    assert len(during) == 2 * (3 + trace_pass.WARMUP_PAIRS) * 2 and not any(during), "BPF fds open in the measured process"
    for name in ("runc", "isoinspect-lib"):
        phases = result["phases"][name]
        assert {"clone", "exec", "exit"} <= set(phases), (name, phases)
        assert all(len(v) <= 3 and all(s >= 0 for s in v) for v in phases.values())
    by_target = {r["target"]: r for r in result["overhead"]}
    assert set(by_target) == {"runc", "isoinspect-lib"}
    for name, overhead in by_target.items():
        assert overhead["status"] == "ok", overhead
        assert overhead["pairs"] == 3 and len(overhead["samples_with"]) == 3
        assert len(overhead["samples_without"]) == 3
        low, high = overhead["ci"]
        assert low <= overhead["ratio"] <= high and overhead["paired"]
        assert overhead["setup"] == "tracer in a separate process, interleaved, 3 pairs"
        assert overhead["bpf_run_time_ns"] > 0 and overhead["events"] > 0
        assert overhead["lost"] == 0
        # other tests may have mapped libbcc into this pytest process; no BPF fd may be open
        assert not [x for x in overhead["measured_process_holds_bpf"] if x.startswith("fd ")]
        # (BPF time on untraced runs is not compared: kernel.bpf_stats counts every run of the
        # probes, also those other processes on this shared machine trigger)
        print(name, json.dumps({k: overhead[k] for k in (
            "ratio", "ci", "bpf_run_time_ns_per_run", "bpf_untraced_run_time_ns", "events")}))
