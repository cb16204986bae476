"""Records from several machines give one report with the machine as a dimension: the same
runtime on two kernels side by side, named ``runtime @ host (kernel)``."""

from __future__ import annotations

import json
import os
import re
import shutil

from isoinspect.reports import charts, load, palette, render, tables

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")
A, B = "host-a (6.18)", "host-b (6.1)"


def runs():
    return load.load_runs([os.path.join(FIXTURES, n) for n in ("machine-a.json",
                                                               "machine-b.json")])


def test_the_same_runtime_on_two_machines_stays_two_rows():
    view = load.merged(runs())
    targets = [r["target"] for r in view["results"]]
    assert f"runc @ {A}" in targets and f"runc @ {B}" in targets and len(targets) == 6
    assert [m["label"] for m in view["machines"]] == [A, B]
    summary = load.startup_summary([view])
    [table] = tables.headline_tables(view, summary)
    names = [row[0].text for row in table.rows]
    assert names == [f"isoinspect-lib @ {A}", f"isoinspect-lib @ {B}", f"runc @ {A}",
                     f"runc @ {B}", f"docker @ {A}", f"docker @ {B}"]
    assert {row[0].swatch for row in table.rows[2:4]} == {palette.colour("runc")}


def test_a_finding_compares_a_runtime_across_machines():
    from isoinspect.reports import findings

    sentence = findings.startup(load.merged(runs()))[-1]
    assert sentence.startswith("The same runtime on different machines (start_to_ready p50 "
                               "ratio, 95% CI): isoinspect-lib 1.46× [")
    assert "runc 1.5" in sentence and f"on {B} against {A}" in sentence


def test_machine_labels_fall_back_to_the_full_kernel_and_a_number():
    base = {"host": "n", "kernel": "6.1.0-18", "cpu": "x"}
    other = dict(base, kernel="6.1.0-20")
    labels = load.machine_labels([{"machine": base, "run_id": "1"},
                                  {"machine": other, "run_id": "2"}])
    assert labels == {"1": "n (6.1.0-18)", "2": "n (6.1.0-20)"}
    twins = load.machine_labels([{"machine": base, "run_id": "1"},
                                 {"machine": dict(base, host="m"), "run_id": "2"},
                                 {"machine": dict(base, host="m"), "run_id": "3"}])
    assert twins == {"1": "n (6.1)", "2": "m (6.1)", "3": "m (6.1)"}


def test_a_record_without_a_host_name_joins_its_machine():
    """Records written before the host was recorded are the same machine as newer ones."""
    old = {"kernel": "6.18.44", "cpu": "x", "cpus": 2}
    labels = load.machine_labels([{"machine": old, "run_id": "1", "created": 1},
                                  {"machine": dict(old, host="vm"), "run_id": "2",
                                   "created": 2}])
    assert labels == {"1": "vm (6.18)", "2": "vm (6.18)"}


def test_a_report_from_a_folder_of_two_hosts_names_both(tmp_path):
    for name in ("machine-a.json", "machine-b.json"):
        shutil.copy(os.path.join(FIXTURES, name), tmp_path / name)
    shutil.copy(os.path.join(FIXTURES, "empty.json"), tmp_path / "empty.json")  # skipped
    written = render.write_report([str(tmp_path)], str(tmp_path / "report.html"))
    html = open(written).read()
    assert f"2 machines: {A}, {B}" in html
    assert f"Machine {A}" in html and f"Machine {B}" in html
    assert f"runc @ {B}" in html
    assert "host-b" in re.sub(r"\s+", " ", html[html.index('id="runs"'):])
    view = load.merged(load.load_runs([str(tmp_path)]))
    chart = charts.latency_cdf(load.startup_samples([view]), view["run_id"], "start_to_ready")
    assert chart.alt == "CDF of start-up latency for 6 targets"   # both machines' lines


def test_a_folder_without_records_is_a_clear_error(tmp_path):
    import pytest

    from isoinspect.benches.record import RecordError

    with pytest.raises(RecordError, match="folder without run records"):
        load.load_runs([str(tmp_path)])
    shutil.copy(os.path.join(FIXTURES, "empty.json"), tmp_path / "empty.json")
    with pytest.raises(RecordError, match="nothing to report"):
        load.load_runs([str(tmp_path)])


def test_one_machine_keeps_plain_names():
    data = load.load_runs([os.path.join(FIXTURES, "machine-a.json")])
    view = load.merged(data)
    assert view["machines"] == [] and {r["target"] for r in view["results"]} == {
        "isoinspect-lib", "runc", "docker"}
    assert json.dumps(view["sources"][0]["machine"]) == '""'


def test_records_name_their_host_or_the_node_given(monkeypatch):
    from isoinspect.benches.machine import machine_info

    monkeypatch.delenv("ISOINSPECT_NODE_NAME", raising=False)
    assert machine_info()["host"] == os.uname().nodename
    monkeypatch.setenv("ISOINSPECT_NODE_NAME", "node-7")
    assert machine_info()["host"] == "node-7"


def test_newer_kinds_merge_by_what_they_measure():
    """A rerun's overhead/density/exposure/isolation result replaces the older one, per machine."""
    def run(run_id, created, host, value):
        return {"run_id": run_id, "created": created, "machine": {"host": host, "kernel": "6.1"},
                "results": [{"kind": "overhead", "target": "runc", "test": "getppid",
                             "status": "ok", "value": value},
                            {"kind": "isolation", "runtime": "runc", "status": "ok",
                             "properties": {}, "value": value}]}
    view = load.merged([run("1", 1, "a", 1.0), run("2", 2, "a", 2.0), run("3", 3, "b", 3.0)])
    assert sorted((r["kind"], r["_machine"], r["value"]) for r in view["results"]) == [
        ("isolation", "a (6.1)", 2.0), ("isolation", "b (6.1)", 3.0),
        ("overhead", "a (6.1)", 2.0), ("overhead", "b (6.1)", 3.0)]
