"""RunRecord: written as it goes, indexed, migrated forward, newer schemas refused."""

import json
import os

import pytest

from isoinspect.benches import record, results_index


def test_record_is_written_after_every_add_and_indexed(tmp_path):
    run = record.RunRecord.create("bench startup", directory=str(tmp_path), machine={"kernel": "k"})
    run.add({"kind": "startup", "target": "runc", "metric": "lifecycle", "status": "ok",
             "unit": "s", "samples": [0.03, 0.01, 0.02]})
    on_disk = json.load(open(run.path))
    assert on_disk["results"][0]["target"] == "runc" and on_disk["finished"] is None
    run.finish()
    rows = results_index.list_runs(str(tmp_path))
    assert [r["run_id"] for r in rows] == [run.run_id]
    assert rows[0]["n_results"] == 1 and rows[0]["kinds"] == "startup"
    assert record.load(run.run_id[:10], str(tmp_path))["finished"] is not None
    assert record.load("latest", str(tmp_path))["run_id"] == run.run_id


def test_unknown_kind_or_missing_field_is_refused(tmp_path):
    run = record.RunRecord.create("x", directory=str(tmp_path), machine={})
    with pytest.raises(ValueError, match="unknown result kind"):
        run.add({"kind": "nonsense"})
    with pytest.raises(ValueError, match="lacks check"):
        run.add({"kind": "verify", "runtime": "runc", "status": "PASS"})
    assert record.load(run.path)["results"] == []


def test_bad_records_give_one_clear_error(tmp_path):
    corrupt = tmp_path / "bad.json"
    corrupt.write_text('{"schema": "isoinspect.run", "schema_')
    with pytest.raises(record.RecordError, match="corrupt"):
        record.load(str(corrupt))
    newer = tmp_path / "new.json"
    newer.write_text(json.dumps({"schema": "isoinspect.run", "schema_version": 99,
                                 "results": []}))
    with pytest.raises(record.RecordError, match="newer isoinspect"):
        record.load(str(newer))
    with pytest.raises(record.RecordError, match="no run record"):
        record.load("nothing-here", str(tmp_path))


def test_legacy_startup_json_migrates(tmp_path):
    legacy = tmp_path / "old.json"
    legacy.write_text(json.dumps({"schema": record.LEGACY_STARTUP_SCHEMA, "started": 1.0,
                                  "machine": {"kernel": "6"}, "targets": {
                                      "runc": {"measures": "lifecycle", "status": "ready",
                                               "samples": [0.02]}}}))
    data = record.load(str(legacy))
    assert data["schema_version"] == record.SCHEMA_VERSION
    assert data["results"][0] == {**data["results"][0], "kind": "startup", "target": "runc",
                                  "status": "ok", "samples": [0.02]}


def test_index_rebuild_from_files(tmp_path):
    run = record.RunRecord.create("x", directory=str(tmp_path), machine={})
    os.unlink(results_index.index_path(str(tmp_path)))
    assert results_index.rebuild(str(tmp_path)) == 1
    assert results_index.list_runs(str(tmp_path))[0]["run_id"] == run.run_id
