"""SQLite index of RunRecords, so runs can be listed and found without opening every file.

The JSON records are the truth; ``index.sqlite`` beside them is a cache that ``index_record``
keeps current on every save and ``rebuild`` recreates from the files (e.g. after copying records
from another machine). One row per run, one row per result with its headline figures.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from isoinspect.benches import stats

INDEX_NAME = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, path TEXT NOT NULL, command TEXT, created REAL, finished REAL,
    interrupted INTEGER, kernel TEXT, cgroup_mode TEXT, commit_id TEXT, schema_version INTEGER,
    n_results INTEGER, kinds TEXT);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL, position INTEGER NOT NULL, kind TEXT, subject TEXT, metric TEXT,
    status TEXT, n INTEGER, p50 REAL, p99 REAL, unit TEXT,
    PRIMARY KEY (run_id, position));
"""


def index_path(directory: str) -> str:
    return os.path.join(directory, INDEX_NAME)


def connect(directory: str) -> sqlite3.Connection:
    os.makedirs(directory, exist_ok=True)
    connection = sqlite3.connect(index_path(directory), timeout=10)
    connection.executescript(_SCHEMA)
    return connection


def subject_of(result: dict) -> str:
    """What a result is about: its target, runtime or namespace."""
    return str(result.get("target") or result.get("runtime") or result.get("namespace") or "")


def metric_of(result: dict) -> str:
    """The result's measured quantity: metric, check, op (plus the concurrency level)."""
    metric = str(result.get("metric") or result.get("check") or result.get("op") or "")
    if result.get("level") is not None:
        metric = f"{metric}@{result['level']}" if metric else f"level {result['level']}"
    return metric


def _headline(result: dict) -> tuple[int | None, float | None, float | None]:
    samples = result.get("samples")
    if isinstance(samples, list) and samples:
        numbers = sorted(float(x) for x in samples)
        return (len(numbers), stats.quantile(numbers, 0.5, presorted=True),
                stats.quantile(numbers, 0.99, presorted=True))
    measured = result.get("measured")
    return (None, float(measured), None) if isinstance(measured, (int, float)) else (None, None,
                                                                                    None)


def index_record(path: str, data: dict) -> None:
    """Insert or replace one run (and its results) in the index of the record's folder."""
    machine = data.get("machine") or {}
    results = data.get("results") or []
    kinds = sorted({str(r.get("kind")) for r in results})
    with connect(os.path.dirname(os.path.abspath(path))) as db:
        db.execute("DELETE FROM results WHERE run_id = ?", (data["run_id"],))
        db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   (data["run_id"], os.path.abspath(path), data.get("command"),
                    data.get("created"), data.get("finished"), int(bool(data.get("interrupted"))),
                    machine.get("kernel"), machine.get("cgroup_mode"), machine.get("commit"),
                    data.get("schema_version"), len(results), ",".join(kinds)))
        rows = []
        for position, result in enumerate(results):
            n, p50, p99 = _headline(result)
            rows.append((data["run_id"], position, result.get("kind"), subject_of(result),
                         metric_of(result), result.get("status"), n, p50, p99,
                         result.get("unit")))
        db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    db.close()


def list_runs(directory: str) -> list[dict[str, Any]]:
    """Every indexed run, oldest first, dropping rows whose file is gone."""
    if not os.path.exists(index_path(directory)):
        return []
    db = connect(directory)
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY created, run_id")]
    finally:
        db.close()
    return [r for r in rows if os.path.exists(r["path"])]


def rebuild(directory: str) -> int:
    """Recreate the index from the record files in ``directory``; return how many were indexed."""
    from isoinspect.benches.record import RecordError, load

    try:
        os.unlink(index_path(directory))
    except FileNotFoundError:
        pass
    count = 0
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            data = load(path)
        except RecordError:
            continue
        data.pop("_path", None)
        index_record(path, data)
        count += 1
    return count


def dumps(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2)
