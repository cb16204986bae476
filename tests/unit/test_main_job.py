"""isoinspect compare's job runner: stage planning, the estimate, a missing command, a failing
stage and Ctrl-C, with fake stage commands (real subprocesses writing real RunRecords, real
signals)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
import time

import pytest

from isoinspect.benches import main_job
from isoinspect.benches.main_job import REPORT, MainJob, Outcome, Stage
from isoinspect.runtime.errors import UsageError

FAKE = textwrap.dedent('''
    """A fake isoinspect: `fake NAME [--sleep] [--fail] --results-dir DIR` or `report ... -o F`."""
    import os, sys, time
    from isoinspect.benches.record import RunRecord

    args = sys.argv[1:]
    if args[0] == "report":
        out = args[args.index("-o") + 1]
        with open(out, "w") as handle:
            handle.write("<html>" + " ".join(args[1:args.index("-o")]) + "</html>")
        print(os.path.abspath(out))
        sys.exit(0)
    name = args[1]
    record = RunRecord.create("fake " + name, directory=args[args.index("--results-dir") + 1])
    def measured():
        record.add({"kind": "namespace_cost", "namespace": name, "op": "create",
                    "status": "ok", "samples": [0.001]})
    try:
        if "--sleep" in args:
            open(os.environ["FAKE_MARKER"], "w").close()
            time.sleep(60)
        measured()
    except KeyboardInterrupt:
        measured()
        record.finish(interrupted=True)
        sys.exit(130)
    record.finish()
    sys.exit(3 if "--fail" in args else 0)
''')


def _stage(name: str, *extra: str, seconds: float = 10.0) -> Stage:
    argv = ("report",) if name == REPORT else ("fake", name, *extra)
    return Stage(name, argv, seconds, seconds * 10)


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_isoinspect.py"
    script.write_text(FAKE)
    monkeypatch.setenv("FAKE_MARKER", str(tmp_path / "sleeping"))
    return (sys.executable, str(script))


def _job(tmp_path, fake, stages, lines, exists=lambda _name: True) -> MainJob:
    return MainJob(stages, quick=True, results_dir=str(tmp_path / "results"),
                   report_path=str(tmp_path / "report.html"), program=fake,
                   command_exists=exists, log=lines.append, stage_output=sys.stderr)


def test_plan_order_groups_and_skips():
    names = [s.name for s in main_job.plan(True)]
    assert names == list(main_job.STAGE_NAMES)
    assert names[-1] == REPORT and names[0] == "startup"
    assert [s.name for s in main_job.plan(True, "startup")] == ["startup", REPORT]
    assert [s.name for s in main_job.plan(True, "exposure,verify")] == \
        ["verify", "exposure-idle", "exposure-script", REPORT]
    skipped = [s.name for s in main_job.plan(True, skip="exposure,density,report")]
    assert "density" not in skipped and REPORT not in skipped and "exposure-idle" not in skipped
    with pytest.raises(UsageError, match="unknown stage.*nope"):
        main_job.plan(True, "startup,nope")
    with pytest.raises(UsageError, match="no measuring stage"):
        main_job.plan(True, REPORT)


def test_quick_startup_keeps_the_vm_and_quick_sizes_are_smaller():
    quick = {s.name: s for s in main_job.all_stages(True, environ={})}
    full = {s.name: s for s in main_job.all_stages(False, environ={})}
    assert "--include-slow" in quick["startup"].argv and "--quick" in quick["startup"].argv
    assert "--quick" not in full["startup"].argv
    assert sum(s.quick_s for s in quick.values()) <= 12 * 60
    assert all(s.quick_s <= s.full_s for s in quick.values())
    override = main_job.all_stages(True, environ={"ISOINSPECT_COMPARE_EXPOSURE_IDLE":
                                                  "exposure --runtime runc --workload idle"})
    assert next(s for s in override if s.name == "exposure-idle").argv == \
        ("exposure", "--runtime", "runc", "--workload", "idle")


def test_remaining_time_scales_with_measured_durations():
    a, b, c = _stage("a", seconds=100), _stage("b", seconds=50), _stage("c", seconds=30)
    assert main_job.remaining_seconds(True, [a, b, c], []) == 180
    # a took twice its estimate: what is left is expected to as well
    slow = [Outcome(a, "ok", seconds=200)]
    assert main_job.remaining_seconds(True, [b, c], slow) == pytest.approx(160)
    assert main_job.remaining_seconds(True, [c], slow, running=b, running_for=30) == \
        pytest.approx(60 + 70)
    # skipped stages say nothing about speed; the scale is bounded
    assert main_job.remaining_seconds(True, [c], [Outcome(a, "skipped")]) == 30
    assert main_job.remaining_seconds(True, [c], [Outcome(a, "ok", seconds=10000)]) == 90
    assert main_job.clock(5) == "5 s" and main_job.clock(185) == "3m05s"
    assert main_job.clock(3720) == "1h02m"


def test_stages_run_in_order_a_missing_command_is_skipped_a_failure_does_not_stop(
        tmp_path, fake):
    lines: list[str] = []
    stages = [_stage("one"), _stage("two", "--fail"), Stage("isolation", ("isolation",), 5, 5),
              _stage("three"), _stage(REPORT)]
    result = _job(tmp_path, fake, stages, lines, lambda name: name != "isolation").run()
    status = {o.stage.name: o.status for o in result.outcomes}
    assert status == {"one": "ok", "two": "failed", "isolation": "skipped", "three": "ok",
                      REPORT: "ok"}
    assert result.exit_code == 1 and not result.interrupted
    assert [os.path.dirname(p) for p in result.records] == [str(tmp_path / "results")] * 3
    report = (tmp_path / "report.html").read_text()
    assert all(path in report for path in result.records)
    assert result.report == str(tmp_path / "report.html")
    assert any("isolation: this isoinspect has no 'isolation' command yet" in line
               for line in lines)
    assert any("two: failed" in line and "(exit 3)" in line for line in lines)
    starts = [line for line in lines if ": start: " in line]
    assert len(starts) == 4 and all("left)" in line for line in lines)
    bundle = tmp_path / "all.json"
    assert main_job.write_records_json(main_job.measured(result.records), str(bundle)) == 3
    assert [r["command"] for r in json.loads(bundle.read_text())] == \
        ["fake one", "fake two", "fake three"]


def test_ctrl_c_interrupts_the_stage_stops_the_job_and_still_reports(tmp_path, fake):
    lines: list[str] = []
    stages = [_stage("one"), _stage("two", "--sleep"), _stage("three"), _stage(REPORT)]
    job = _job(tmp_path, fake, stages, lines)
    marker = tmp_path / "sleeping"

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    begin = time.monotonic()
    result = job.run()
    presser.join()
    assert time.monotonic() - begin < 20  # the sleeping stage did not run its 60 s
    status = {o.stage.name: o.status for o in result.outcomes}
    assert status == {"one": "ok", "two": "interrupted", "three": "not run", REPORT: "ok"}
    two = next(o for o in result.outcomes if o.stage.name == "two")
    assert two.exit_code == 130 and len(two.records) == 1
    with open(two.records[0]) as handle:
        kept = json.load(handle)
    assert kept["interrupted"] and kept["results"]
    assert result.interrupted and result.exit_code == 130
    assert len(result.records) == 2 and all(p in (tmp_path / "report.html").read_text()
                                            for p in result.records)
    assert any("interrupted: not starting three" in line for line in lines)
    # the handlers are restored after the job
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_while_a_stage_is_being_started_reaches_it(tmp_path, fake):
    lines: list[str] = []

    def exists(name: str) -> bool:  # called between the job's check and the stage's start
        if name == "fake" and not lines:
            os.kill(os.getpid(), signal.SIGINT)
        return True

    stages = [_stage("one", "--sleep"), _stage("two"), _stage(REPORT)]
    begin = time.monotonic()
    result = _job(tmp_path, fake, stages, lines, exists).run()
    assert time.monotonic() - begin < 20
    status = {o.stage.name: o.status for o in result.outcomes}
    assert status["one"] == "interrupted" and status["two"] == "not run"
    assert result.exit_code == 130


def test_the_json_bundle_loads_as_its_records_for_the_report(tmp_path):
    from isoinspect.benches.record import RecordError, RunRecord
    from isoinspect.reports.load import load_runs

    paths = []
    for name in ("uts", "ipc", "net"):
        run = RunRecord.create("fake", directory=str(tmp_path), machine={"kernel": name})
        run.add({"kind": "namespace_cost", "namespace": name, "op": "create", "status": "ok",
                 "samples": [0.001]})
        paths.append(run.path)
    empty = RunRecord.create("fake", directory=str(tmp_path), machine={}).path
    assert main_job.measured([*paths, empty, str(tmp_path / "gone.json")]) == paths
    bundle = str(tmp_path / "node-a.json")
    assert main_job.write_records_json(paths[:2], bundle) == 2
    runs = load_runs([bundle, paths[2]])
    assert [r["machine"]["kernel"] for r in runs] == ["uts", "ipc", "net"]
    assert runs[0]["_path"] == f"{bundle}[0]"
    (tmp_path / "none.json").write_text("[]")
    with pytest.raises(RecordError, match="empty list"):
        load_runs([str(tmp_path / "none.json")])
    (tmp_path / "bad.json").write_text('[{"schema": "other"}]')
    with pytest.raises(RecordError, match=r"bad.json\[0\] is not an isoinspect run record"):
        load_runs([str(tmp_path / "bad.json")])
