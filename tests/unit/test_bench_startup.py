"""benches/startup.py's runner with fake targets (no root, no containers)."""

from __future__ import annotations

import json

import pytest

from isoinspect.benches import record as record_mod
from isoinspect.benches import startup
from isoinspect.benches.targets import Sample, Target, TargetError, select
from isoinspect.runtime.errors import UsageError


class Fake(Target):
    container = False  # no traced pass (that needs BCC and root: tested for real)

    def __init__(self, name, seconds=0.01, calls=None, fail_at=(), interrupt_at=None,
                 available=(True, ""), prepare_error=None, slow=False, unsupported=None):
        super().__init__()
        self.name = name
        self.seconds = seconds
        self.calls = calls if calls is not None else []
        self.fail_at = set(fail_at)
        self.interrupt_at = interrupt_at
        self._available = available
        self.prepare_error = prepare_error
        self.slow = slow
        self.unsupported = unsupported or {}
        self.count = 0
        self.settled = 0
        self.prepared = self.cleaned = False

    def version(self):
        return f"{self.name} 1.0"

    def available(self):
        return self._available

    def prepare(self, workdir):
        super().prepare(workdir)
        self.prepared = True
        if self.prepare_error:
            raise self.prepare_error

    def settle(self):
        self.settled += 1

    def _run(self, metric, factor):
        self.count += 1
        self.calls.append((self.name, metric))
        if self.count == self.interrupt_at:
            raise KeyboardInterrupt
        if self.count in self.fail_at:
            raise TargetError("boom")
        return Sample(self.seconds * factor, self.seconds * factor / 2)

    def ready_once(self):
        return self._run("start_to_ready", 0.5)

    def lifecycle_once(self):
        self.last_phases = {"a": self.seconds / 2}
        return self._run("lifecycle", 1.0)

    def teardown_once(self):
        return self._run("teardown", 0.25)

    def cleanup(self):
        self.cleaned = True


def run(targets, tmp_path, record=True, **kwargs):
    kwargs.setdefault("echo", False)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("workdir", str(tmp_path))
    rec = record_mod.RunRecord.create("bench startup", directory=str(tmp_path / "results"),
                                      machine={"kernel": "k", "cpus": 2, "cgroup_mode": "hybrid"}) \
        if record else None
    return startup.run_startup(targets, record=rec, **kwargs), rec


def by_key(rec):
    data = record_mod.load(rec.path)
    return {(r["target"], r["metric"]): r for r in data["results"] if r["kind"] == "startup"}


def test_round_robin_rotates_every_metric_and_warmup_is_not_recorded(tmp_path):
    calls = []
    targets = [Fake("a", calls=calls), Fake("runc", calls=calls)]
    summary, rec = run(targets, tmp_path, runs=2, warmup=1, metrics=("start_to_ready",
                                                                       "lifecycle"))
    names = [name for name, _ in calls]
    # warm-up round 0 (a, runc), measured round 0 (a, runc), round 1 rotated (runc, a)
    assert names == ["a", "a", "runc", "runc"] * 2 + ["runc", "runc", "a", "a"]
    assert calls[:2] == [("a", "start_to_ready"), ("a", "lifecycle")]
    assert calls[-2:] == [("a", "lifecycle"), ("a", "start_to_ready")]  # metrics rotate too
    results = by_key(rec)
    assert results[("a", "lifecycle")]["samples"] == [0.01, 0.01]
    assert results[("a", "lifecycle")]["cpu_samples"] == [0.005, 0.005]
    assert results[("a", "start_to_ready")]["samples"] == [0.005, 0.005]
    assert results[("a", "lifecycle")]["rounds"] == [0, 1]
    assert results[("a", "lifecycle")]["phases"] == {"a": [0.005, 0.005]}
    assert results[("a", "lifecycle")]["phases_source"] == "runtime"
    assert results[("a", "lifecycle")]["stats"]["n"] == 2
    assert ("a", "teardown") not in results
    assert all(t.cleaned for t in targets) and targets[0].settled == 6
    assert summary["rounds_completed"] == 2 and not summary["interrupted"]
    assert record_mod.load(rec.path)["finished"]


def test_ratios_against_runc_and_the_floor_and_goals(tmp_path):
    targets = [Fake("host-exec", 0.001), Fake("isoinspect-cli", 0.02),
               Fake("isoinspect-lib", 0.001), Fake("runc", 0.04), Fake("docker", 0.5),
               Fake("isoinspect-pool", 0.0015)]
    summary, rec = run(targets, tmp_path, runs=5, warmup=0)
    assert summary["ratios"]["lifecycle"]["isoinspect-cli"]["ratio"] == pytest.approx(0.5)
    assert summary["floor_ratios"]["start_to_ready"]["runc"]["ratio"] == pytest.approx(40)
    goals = {(g["target"], g["metric"]): g for g in summary["goals"]}
    assert goals[("isoinspect-cli", "lifecycle")]["met"]
    assert goals[("isoinspect-lib", "start_to_ready")]["met"]
    assert goals[("isoinspect-pool", "start_to_ready")]["ratio"] == pytest.approx(1.5)
    assert goals[("docker", "lifecycle")]["met"] and goals[("docker", "lifecycle")]["ratio"] \
        == pytest.approx(25)
    stored = record_mod.load(rec.path)
    assert stored["goals"] == json.loads(json.dumps(summary["goals"]))
    runc = by_key(rec)[("runc", "lifecycle")]
    assert runc["ratios"]["reference"]["ratio"] == pytest.approx(1.0)
    table = startup.format_table(summary)
    assert "/ runc" in table and "goal " not in table  # goals: record and report, not terminal
    assert "goal docker lifecycle" in startup.format_table(summary, goals=True)


def test_unavailable_failed_prepare_and_unsupported_metric_are_recorded(tmp_path):
    missing = Fake("crun", available=(False, "refuses hybrid cgroups"))
    broken = Fake("broken", prepare_error=OSError("no space"))
    partial = Fake("host-exec", unsupported={"teardown": "nothing to tear down"})
    summary, rec = run([missing, broken, partial, Fake("runc")], tmp_path, runs=2, warmup=0)
    results = by_key(rec)
    assert results[("crun", "lifecycle")]["status"] == "unsupported"
    assert results[("crun", "lifecycle")]["reason"] == "refuses hybrid cgroups"
    assert not missing.prepared and not missing.cleaned
    assert results[("broken", "teardown")]["status"] == "unsupported"
    assert "prepare failed" in results[("broken", "teardown")]["reason"]
    assert broken.cleaned  # half-prepared targets are cleaned up too
    assert results[("host-exec", "teardown")]["status"] == "unsupported"
    assert results[("host-exec", "teardown")]["reason"] == "nothing to tear down"
    assert results[("host-exec", "lifecycle")]["status"] == "ok"
    assert "crun: unsupported: refuses hybrid cgroups" in startup.format_table(summary)


def test_a_failing_run_is_recorded_and_three_in_a_row_disable_the_target(tmp_path):
    flaky = Fake("flaky", fail_at={2})
    dead = Fake("dead", fail_at=set(range(1, 100)))
    summary, rec = run([flaky, dead, Fake("runc")], tmp_path, runs=4, warmup=0,
                       metrics=("lifecycle",))
    results = by_key(rec)
    assert len(results[("flaky", "lifecycle")]["samples"]) == 3
    assert results[("flaky", "lifecycle")]["error_count"] == 1
    assert results[("dead", "lifecycle")]["status"] == "failed"
    assert dead.count == 3 and "boom" in results[("dead", "lifecycle")]["reason"]


def test_ctrl_c_keeps_samples_in_the_record_and_cleans_up(tmp_path):
    targets = [Fake("a"), Fake("runc", interrupt_at=10)]
    summary, rec = run(targets, tmp_path, runs=100, warmup=0)
    assert summary["interrupted"] and summary["rounds_completed"] == 3
    assert all(t.cleaned for t in targets)
    stored = record_mod.load(rec.path)
    assert stored["interrupted"]
    assert len(by_key(rec)[("a", "lifecycle")]["samples"]) >= 3
    assert "[INTERRUPTED]" in startup.format_table(summary)


def test_the_record_is_rewritten_while_measuring(tmp_path, monkeypatch):
    monkeypatch.setattr(startup, "PUBLISH_EVERY_S", 0.0)
    seen = []
    original = record_mod.RunRecord.save

    def spy(self):
        seen.append(sum(len(r.get("samples", [])) for r in self.data["results"]))
        original(self)

    monkeypatch.setattr(record_mod.RunRecord, "save", spy)
    run([Fake("runc")], tmp_path, runs=3, warmup=0, metrics=("lifecycle",))
    assert [n for n in seen if n] [:3] == [1, 2, 3]


def test_json_out_is_a_copy_of_the_record(tmp_path):
    out = tmp_path / "copy.json"
    summary, rec = run([Fake("runc")], tmp_path, runs=2, warmup=0, json_out=str(out))
    assert record_mod.load(str(out))["run_id"] == rec.run_id


def test_quick_caps_runs_and_leaves_slow_targets_out(tmp_path):
    slow = Fake("vm", slow=True)
    summary, rec = run([Fake("runc"), slow], tmp_path, runs=100, warmup=5, quick=True,
                       trace_runs=50, metrics=("lifecycle",))
    assert summary["config"]["runs"] == startup.QUICK_RUNS
    assert summary["config"]["trace_runs"] == startup.QUICK_TRACE_RUNS
    assert len(by_key(rec)[("runc", "lifecycle")]["samples"]) == startup.QUICK_RUNS
    assert by_key(rec)[("vm", "lifecycle")]["status"] == "unsupported" and slow.count == 0


def test_include_slow_keeps_the_vm_under_quick_in_its_first_rounds_only(tmp_path):
    slow = Fake("vm", slow=True)
    summary, rec = run([Fake("runc"), slow], tmp_path, runs=100, warmup=5, quick=True,
                       trace_runs=0, metrics=("lifecycle",), include_slow=True, slow_runs=3)
    vm = by_key(rec)[("vm", "lifecycle")]
    assert vm["status"] == "ok" and vm["rounds"] == [0, 1, 2]
    assert slow.count == 1 + 3  # one warm-up round, three measured
    assert len(by_key(rec)[("runc", "lifecycle")]["samples"]) == startup.QUICK_RUNS
    assert summary["ratios"]["lifecycle"]["vm"]["vs"] == "runc"  # paired over rounds 0..2
    with pytest.raises(UsageError):
        run([Fake("runc")], tmp_path, slow_runs=0)


def test_own_workdir_is_removed(tmp_path, monkeypatch):
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(startup.tempfile, "tempdir", str(work))
    target = Fake("runc")
    startup.run_startup([target], runs=1, warmup=0, echo=False, progress=False)
    assert target.workdir.startswith(str(work)) and not list(work.iterdir())


def test_bad_arguments(tmp_path):
    with pytest.raises(UsageError):
        run([Fake("a"), Fake("a")], tmp_path, runs=1, record=False)
    with pytest.raises(UsageError):
        run([Fake("a")], tmp_path, runs=0, record=False)
    with pytest.raises(UsageError, match="unknown metric"):
        run([Fake("a")], tmp_path, runs=1, record=False, metrics=("boot",))
    with pytest.raises(SystemExit) as exc:
        startup.main(["--targets", "nope"])
    assert exc.value.code == 2
    assert startup.parse_levels("1,2, 8") == [1, 2, 8]
    for bad in ("0", "a,b", ","):
        with pytest.raises(UsageError):
            startup.parse_levels(bad)


def test_drop_page_cache_writes_3(tmp_path):
    path = tmp_path / "drop_caches"
    path.write_text("")
    startup.drop_page_cache(str(path))
    assert path.read_text() == "3\n"


def test_target_selection():
    names = [t.name for t in select(None)]
    assert names == ["host-exec", "unshare", "isoinspect-cli", "isoinspect-cli-bridge",
                     "isoinspect-lib",
                     "isoinspect-pool", "runc", "crun", "runsc", "docker", "qemu"]
    assert [t.name for t in select(["runc", "host-exec"])] == ["runc", "host-exec"]
    with pytest.raises(UsageError, match="unknown target"):
        select(["crun-nope"])


def test_runc_bundles_are_docker_defaults_with_the_command_and_cgroup():
    from isoinspect.benches import bundle
    from isoinspect.benches.targets.runc import RuncTarget

    workload = RuncTarget().workload("isoinspect-bench-1-0", ["/bin/echo", "hi"])
    config = bundle.config("/r", workload, cgroupns=False)
    assert config["process"]["args"] == ["/bin/echo", "hi"]
    assert config["process"]["terminal"] is False and config["root"] == {"path": "/r",
                                                                         "readonly": False}
    assert config["linux"]["cgroupsPath"] == "/isoinspect-peers/isoinspect-bench-1-0"
    assert config["process"]["noNewPrivileges"] is False
    assert "CAP_NET_RAW" in config["process"]["capabilities"]["bounding"]
    assert "inheritable" not in config["process"]["capabilities"]


def test_spawner_times_reports_failures_and_reads_markers(tmp_path):
    from isoinspect.benches.targets.base import Spawner

    spawner = Spawner(scratch_dir=str(tmp_path))
    try:
        sample = spawner.run_sample(["/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do "
                                     "i=$((i+1)); done"])
        assert sample.wall > 0 and sample.cpu > 0
        with pytest.raises(TargetError, match="exited 3: oops"):
            spawner.run(["/bin/sh", "-c", "echo oops >&2; exit 3"])
        early = spawner.until_marker(["/bin/sh", "-c", "echo isoinspect-ready; sleep 1"])
        assert 0 < early.wall < 1  # the marker, not the exit, stops the clock
        with pytest.raises(TargetError, match="no 'isoinspect-ready'"):
            spawner.until_marker(["/bin/sh", "-c", "echo something else"])
    finally:
        spawner.close()
