"""benches/compare.py: matching results of two runs and telling noise from a difference."""

from __future__ import annotations

import random

import pytest

from isoinspect.benches import compare
from isoinspect.benches.record import RunRecord, load


def _startup(target, metric, samples, status="ok"):
    return {"kind": "startup", "target": target, "metric": metric, "status": status,
            "samples": samples}


def _noise(rng, median, n=60):
    return [median * (1 + rng.uniform(-0.05, 0.05)) for _ in range(n)]


def _run(run_id, results):
    return {"run_id": run_id, "results": results}


def test_same_distribution_is_within_noise_and_a_doubling_is_not():
    rng = random.Random(1)
    base = _run("a", [_startup("runc", "lifecycle", _noise(rng, 0.03)),
                      _startup("isoinspect-cli", "lifecycle", _noise(rng, 0.02))])
    new = _run("b", [_startup("runc", "lifecycle", _noise(rng, 0.03)),
                     _startup("isoinspect-cli", "lifecycle", _noise(rng, 0.04))])
    rows = {r["subject"]: r for r in compare.compare(base, new)["rows"]}
    assert not rows["runc"]["beyond_noise"] and rows["runc"]["verdict"] == "within noise"
    cli = rows["isoinspect-cli"]
    assert cli["beyond_noise"] and cli["verdict"] == "slower"
    assert cli["ratio"] == pytest.approx(2.0, rel=0.1)
    assert cli["ci"][0] > 1.0
    assert cli["p50_baseline"] == pytest.approx(0.02, rel=0.06)
    faster = compare.compare(new, base)["rows"]
    assert {r["subject"]: r["verdict"] for r in faster}["isoinspect-cli"] == "faster"


def test_keys_separate_metrics_levels_and_skip_failed_or_empty_results():
    rng = random.Random(2)
    results = [_startup("runc", "lifecycle", _noise(rng, 0.03)),
               _startup("runc", "teardown", _noise(rng, 0.005)),
               _startup("crun", "lifecycle", [], status="unsupported"),
               _startup("docker", "lifecycle", [0.5, 0.6], status="failed"),
               {"kind": "namespace_cost", "namespace": "net", "op": "create", "concurrency": 1,
                "status": "ok", "samples": _noise(rng, 0.0007)},
               {"kind": "namespace_cost", "namespace": "net", "op": "create", "concurrency": 4,
                "status": "ok", "samples": _noise(rng, 0.0009)},
               {"kind": "concurrency", "target": "runc", "level": 2, "status": "ok",
                "samples": _noise(rng, 0.04)},
               {"kind": "trace_overhead", "status": "ok", "target": "isoinspect-lib",
                "samples_with": _noise(rng, 0.01), "samples_without": _noise(rng, 0.009)},
               {"kind": "verify", "runtime": "runc", "check": "pids-limit", "status": "PASS"}]
    keys = [key for key, _ in compare.keyed_samples(_run("a", results))]
    assert keys == [("startup", "runc", "lifecycle"), ("startup", "runc", "teardown"),
                    ("namespace_cost", "net create", "concurrency 1"),
                    ("namespace_cost", "net create", "concurrency 4"),
                    ("concurrency", "runc x2", "s per start"),
                    ("trace_overhead", "isoinspect-lib", "with tracer")]


def test_results_in_one_run_only_are_listed_and_formatted(tmp_path):
    rng = random.Random(3)
    base = RunRecord.create("bench startup", directory=str(tmp_path), machine={})
    base.add(_startup("runc", "lifecycle", _noise(rng, 0.03)))
    base.add(_startup("runsc", "lifecycle", _noise(rng, 0.15)))
    base.finish()
    new = RunRecord.create("bench startup", directory=str(tmp_path), machine={})
    new.add(_startup("runc", "lifecycle", _noise(rng, 0.06)))
    new.add(_startup("isoinspect-pool", "lifecycle", _noise(rng, 0.003)))
    new.finish()
    result = compare.compare(load(base.path), load(new.path))
    assert result["baseline"] == base.run_id and result["new"] == new.run_id
    assert result["only_baseline"] == [["startup", "runsc", "lifecycle"]]
    assert result["only_new"] == [["startup", "isoinspect-pool", "lifecycle"]]
    text = compare.format_comparison(result)
    assert "1 of 1 differences beyond noise" in text
    assert "slower" in text and "only in new: startup/isoinspect-pool/lifecycle" in text
    empty = compare.format_comparison(compare.compare(_run("x", []), _run("y", [])))
    assert "no result with samples in both runs" in empty
