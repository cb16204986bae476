"""benches/startup.py's runner with fake targets (no root, no containers)."""

from __future__ import annotations

import json

import pytest

from isoinspect.benches import startup
from isoinspect.benches.targets import Target, TargetError, select


class Fake(Target):
    def __init__(self, name, seconds=0.01, calls=None, fail_at=(), interrupt_at=None,
                 available=(True, ""), prepare_error=None, slow=False):
        super().__init__()
        self.name = name
        self.seconds = seconds
        self.calls = calls if calls is not None else []
        self.fail_at = set(fail_at)
        self.interrupt_at = interrupt_at
        self._available = available
        self.prepare_error = prepare_error
        self.slow = slow
        self.count = 0
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

    def start_once(self):
        self.count += 1
        self.calls.append(self.name)
        if self.count == self.interrupt_at:
            raise KeyboardInterrupt
        if self.count in self.fail_at:
            raise TargetError("boom")
        self.last_phases = {"a": self.seconds / 2}
        return self.seconds

    def cleanup(self):
        self.cleaned = True


def run(targets, **kwargs):
    kwargs.setdefault("echo", False)
    kwargs.setdefault("progress", False)
    return startup.run_startup(targets, **kwargs)


def test_round_robin_rotates_and_warmup_is_not_recorded(tmp_path):
    calls = []
    targets = [Fake("a", calls=calls), Fake("b", calls=calls), Fake("runc", calls=calls)]
    result = run(targets, runs=3, warmup=1, workdir=str(tmp_path))
    # warm-up round 0, then measured rounds 0, 1, 2 (order shifted by the round index)
    assert calls == ["a", "b", "runc", "a", "b", "runc", "b", "runc", "a", "runc", "a", "b"]
    for name in ("a", "b", "runc"):
        data = result["targets"][name]
        assert data["samples"] == [0.01] * 3 and data["rounds"] == [0, 1, 2]
        assert data["stats"]["n"] == 3 and data["version"] == f"{name} 1.0"
        assert data["phases"] == {"a": [0.005] * 3}
    assert all(t.cleaned for t in targets)
    assert result["rounds_completed"] == 3 and not result["interrupted"]


def test_ratios_against_runc_and_goals(tmp_path):
    targets = [Fake("isoinspect-cli", 0.02), Fake("isoinspect-lib", 0.001), Fake("runc", 0.04)]
    result = run(targets, runs=5, warmup=0, workdir=str(tmp_path))
    assert result["ratios"]["isoinspect-cli"]["ratio"] == pytest.approx(0.5)
    assert result["ratios"]["isoinspect-lib"]["ratio"] == pytest.approx(0.025)
    assert result["ratios"]["runc"]["ratio"] == pytest.approx(1.0)
    assert result["goals"]["isoinspect-cli"]["met"]
    assert result["goals"]["isoinspect-lib"]["met"]
    table = startup.format_table(result)
    assert "p50 / runc" in table and "0.500 [0.500, 0.500]" in table
    assert "goal isoinspect-lib" in table


def test_no_reference_means_no_ratios(tmp_path):
    result = run([Fake("a")], runs=2, warmup=0, workdir=str(tmp_path))
    assert result["ratios"] == {} and result["goals"] == {}
    assert "a" in startup.format_table(result)


def test_unavailable_and_failed_prepare_are_skipped_but_cleaned(tmp_path):
    missing = Fake("missing", available=(False, "not installed"))
    broken = Fake("broken", prepare_error=OSError("no space"))
    good = Fake("runc")
    result = run([missing, broken, good], runs=2, warmup=0, workdir=str(tmp_path))
    assert result["targets"]["missing"]["status"] == "skipped"
    assert result["targets"]["missing"]["reason"] == "not installed"
    assert not missing.prepared and not missing.cleaned
    assert result["targets"]["broken"]["status"] == "skipped"
    assert "prepare failed" in result["targets"]["broken"]["reason"]
    assert broken.cleaned  # half-prepared targets are cleaned up too
    assert result["targets"]["runc"]["samples"] == [0.01, 0.01]
    table = startup.format_table(result)
    assert "missing: skipped: not installed" in table


def test_a_failing_start_is_recorded_and_three_in_a_row_disable_the_target(tmp_path):
    flaky = Fake("flaky", fail_at={2})
    dead = Fake("dead", fail_at=set(range(1, 100)))
    result = run([flaky, dead, Fake("runc")], runs=6, warmup=0, workdir=str(tmp_path))
    assert len(result["targets"]["flaky"]["samples"]) == 5
    assert result["targets"]["flaky"]["error_count"] == 1
    assert result["targets"]["dead"]["status"] == "failed"
    assert dead.count == 3
    assert "boom" in result["targets"]["dead"]["reason"]


def test_ctrl_c_keeps_samples_and_cleans_up(tmp_path):
    out = tmp_path / "out.json"
    targets = [Fake("a"), Fake("runc", interrupt_at=4)]
    result = run(targets, runs=100, warmup=0, workdir=str(tmp_path), json_out=str(out))
    assert result["interrupted"]
    assert result["rounds_completed"] == 3
    assert len(result["targets"]["runc"]["samples"]) == 3
    assert all(t.cleaned for t in targets)
    saved = json.loads(out.read_text())
    assert saved["interrupted"] and saved["targets"]["a"]["stats"]["n"] >= 3
    assert "[INTERRUPTED]" in startup.format_table(result)


def test_json_is_written_after_every_round(tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    seen = []
    original = startup._write_json

    def spy(path, data):
        seen.append(data["rounds_completed"])
        original(path, data)

    monkeypatch.setattr(startup, "_write_json", spy)
    run([Fake("runc")], runs=3, warmup=1, workdir=str(tmp_path), json_out=str(out))
    assert seen == [1, 2, 3, 3]
    saved = json.loads(out.read_text())
    assert saved["schema"] == startup.SCHEMA and "machine" in saved
    assert saved["targets"]["runc"]["stats"]["p50"] == pytest.approx(0.01)


def test_quick_caps_runs_and_leaves_slow_targets_out(tmp_path):
    slow = Fake("vm", slow=True)
    result = run([Fake("runc"), slow], runs=100, warmup=5, quick=True, workdir=str(tmp_path))
    assert result["config"]["runs"] == startup.QUICK_RUNS
    assert result["config"]["warmup"] == startup.QUICK_WARMUP
    assert len(result["targets"]["runc"]["samples"]) == startup.QUICK_RUNS
    assert result["targets"]["vm"]["status"] == "skipped" and slow.count == 0


def test_own_workdir_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(startup.tempfile, "tempdir", str(tmp_path))
    target = Fake("runc")
    run([target], runs=1, warmup=0)
    assert target.workdir.startswith(str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        run([Fake("a"), Fake("a")], runs=1, workdir=str(tmp_path))
    with pytest.raises(ValueError):
        run([Fake("a")], runs=0, workdir=str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        startup.main(["--targets", "nope"])
    assert exc.value.code == 2


def test_target_selection():
    names = [t.name for t in select(None)]
    assert names == ["host-exec", "unshare", "isoinspect-cli", "isoinspect-lib",
                     "isoinspect-lib-lifecycle", "runc", "qemu"]
    assert [t.name for t in select(["runc", "host-exec"])] == ["runc", "host-exec"]
    with pytest.raises(ValueError, match="unknown target"):
        select(["crun-nope"])


def test_runc_bundle_config_is_adjusted():
    from isoinspect.benches.targets.runc import RuncTarget

    config = {"process": {"args": ["sh"], "terminal": True}, "root": {"readonly": True}}
    RuncTarget.adjust_config(config)
    assert config == {"process": {"args": ["/bin/true"], "terminal": False},
                      "root": {"readonly": False}}


def test_spawner_times_and_reports_failures(tmp_path):
    from isoinspect.benches.targets.base import Spawner

    spawner = Spawner(scratch_dir=str(tmp_path))
    try:
        assert 0 < spawner.run(["/bin/sh", "-c", "exit 0"]) < 5
        with pytest.raises(TargetError, match="exited 3: oops"):
            spawner.run(["/bin/sh", "-c", "echo oops >&2; exit 3"])
    finally:
        spawner.close()
