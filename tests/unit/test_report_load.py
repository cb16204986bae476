"""reports.load: RunRecords -> DataFrames, and one clear error for every kind of bad input."""

from __future__ import annotations

import json
import os

import pytest

from isoinspect.benches.record import RecordError
from isoinspect.reports import load

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="module")
def full():
    return load.load_runs([fixture("full.json")])


def test_startup_summary_has_one_row_per_target_with_quantiles(full):
    frame = load.startup_summary(full)
    by_target = frame.set_index("target")
    assert set(by_target.index) >= {"host-exec", "unshare", "isoinspect-cli", "isoinspect-lib",
                                    "runc", "runsc", "docker", "qemu", "crun"}
    runc = by_target.loc["runc"]
    assert runc.n == 100 and runc.p50_lo < runc.p50 < runc.p50_hi < runc.p99
    assert 0.015 < runc.p50 < 0.03                       # seconds, not milliseconds
    assert by_target.loc["crun"].status == "unsupported" and by_target.loc["crun"].n == 0
    assert by_target.loc["qemu"].label == "accelerator tcg"


def test_long_sample_frame_phases_and_other_kinds(full):
    samples = load.startup_samples(full)
    assert len(samples[samples.target == "qemu"]) == 10
    phases = load.phases(full)
    lib = phases[phases.target == "isoinspect-lib"].sort_values("order")
    assert list(lib.phase) == ["create", "clone", "mounts", "exec"]
    concurrency = load.concurrency(full)
    assert sorted(set(concurrency.level)) == [1, 2, 4, 8]
    namespaces = load.namespace_cost(full)
    net = namespaces[(namespaces.namespace == "net") & (namespaces.op == "create")].iloc[0]
    assert net.p50_lo <= net.p50 <= net.p50_hi
    verify = load.verify(full)
    assert set(verify.status) == {"PASS", "FAIL", "UNSUPPORTED", "ERROR"}
    overhead = load.trace_overhead(full).iloc[0]
    assert overhead.p50_with > overhead.p50_without and overhead.lost == 0
    traces = load.traces(full)
    runc = traces[traces.target == "runc"]
    assert runc.offset.iloc[0] == 0.0 and runc.offset.is_monotonic_increasing


def test_frames_of_a_run_without_a_kind_are_empty_not_errors():
    runs = load.load_runs([fixture("startup-only.json")])
    assert load.verify(runs).empty and load.concurrency(runs).empty
    assert load.traces(runs).empty and not load.startup_summary(runs).empty


@pytest.mark.parametrize("name, message", [
    ("corrupt.json", "is corrupt"),
    ("newer-schema.json", "schema version 99, written by a newer isoinspect"),
    ("empty.json", "has no results: nothing to report"),
    ("does-not-exist.json", "no run record at"),
])
def test_bad_records_give_one_clear_line(name, message):
    with pytest.raises(RecordError, match=message) as caught:
        load.load_runs([fixture(name)])
    assert "\n" not in str(caught.value) and caught.value.exit_code == 125


def test_malformed_result_names_file_result_and_field(tmp_path):
    data = json.load(open(fixture("startup-only.json")))
    data["results"][2]["samples"] = ["fast", "slow"]
    path = tmp_path / "bad-samples.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"bad-samples.json: result 2 \(startup\) is "
                                          r"malformed: samples must be a list of numbers"):
        load.load_runs([str(path)])
    del data["results"][2]["target"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="lacks target"):
        load.load_runs([str(path)])


def test_run_ids_resolve_from_the_results_directory(tmp_path):
    for name in ("full.json", "rerun.json"):
        data = json.load(open(fixture(name)))
        (tmp_path / f"{data['run_id']}.json").write_text(json.dumps(data))
    runs = load.load_runs(["20261128T09", "latest"], str(tmp_path))
    assert [r["run_id"] for r in runs] == ["20261128T090000Z-a1b2c3", "20261128T103000Z-abcdef"]
    with pytest.raises(RecordError, match="no run given"):
        load.load_runs([], str(tmp_path))


def test_traced_phases_take_the_inspectors_ts_ns_too(tmp_path):
    data = json.load(open(fixture("full.json")))
    data["results"] = [{"kind": "trace", "target": "runc", "status": "ok",
                        "phases": [{"phase": "exec", "ts_ns": 3_500_000},
                                   {"phase": "clone", "ts_ns": 1_000_000}]}]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(data))
    frame = load.traces(load.load_runs([str(path)]))
    assert list(frame.phase) == ["clone", "exec"] and list(frame.offset) == [0.0, 0.0025]
