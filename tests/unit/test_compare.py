"""benches/compare.py: matching results of two runs and telling noise from a difference."""

from __future__ import annotations

import copy
import json
import os
import random
import re

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


FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")


def _full() -> dict:
    with open(os.path.join(FIXTURES, "full.json")) as handle:
        return json.load(handle)


def _doubled_runc(run: dict) -> dict:
    """The same run with runc's memory per instance doubled and its starts three times as
    slow, every other density result unchanged."""
    new = copy.deepcopy(run)
    new["run_id"] = "20261207T100000Z-0d0e0f"
    for result in new["results"]:
        if result["kind"] == "density" and result["target"] == "runc":
            estimate = result["per_instance_bytes"]
            estimate["values"] = [v * 2 for v in estimate["values"]]
            result["samples"] = [s * 3 for s in result["samples"]]
    return new


def test_density_compares_memory_per_instance_and_start_per_target_and_level():
    base = _full()
    result = compare.compare(base, _doubled_runc(base))
    rows = {(r["subject"], r["metric"]): r for r in result["rows"] if r["kind"] == "density"}
    levels = {(r["target"], r["level"]) for r in base["results"] if r["kind"] == "density"
              and r["status"] == "ok"}
    assert {subject for subject, _ in rows} == {f"{t} x{n}" for t, n in levels}
    memory, start = rows[("runc x2", "MiB per instance")], rows[("runc x2", "s per start")]
    runc = next(r for r in base["results"] if r["kind"] == "density"
                and (r["target"], r["level"]) == ("runc", 2))
    assert memory["p50_baseline"] == pytest.approx(runc["per_instance_bytes"]["estimate"])
    assert (memory["statistic"], memory["unit"]) == ("mean", "bytes")
    assert memory["ratio"] == pytest.approx(2.0) and memory["ci"][0] > 1.0
    assert memory["verdict"] == "more" and memory["beyond_noise"]
    assert (start["statistic"], start["unit"]) == ("p50", "s")
    assert start["ratio"] == pytest.approx(3.0) and start["verdict"] == "slower"
    runsc = rows[("runsc x2", "MiB per instance")]
    assert runsc["ratio"] == pytest.approx(1.0) and runsc["verdict"] == "within noise"
    one = rows[("runc x1", "MiB per instance")]   # one instance: a ratio, no interval
    assert one["ratio"] == pytest.approx(2.0) and one["ci"] is None
    assert not one["beyond_noise"] and one["verdict"] == "no interval (1 sample)"
    text = compare.format_comparison(result)
    line = next(x for x in text.splitlines() if "runc x2" in x and "MiB per instance" in x)
    assert f"mean {runc['per_instance_bytes']['estimate'] / 2 ** 20:.3f} MiB" in line
    assert "2.000 [" in line and line.rstrip().endswith("more")
    assert any("runc x1" in x and "[no CI]" in x for x in text.splitlines())


def test_results_compare_prints_density_rows(tmp_path):
    from click.testing import CliRunner

    from isoinspect.cli.results_cmd import results

    base = _full()
    paths = []
    for run in (base, _doubled_runc(base)):
        path = tmp_path / f"{run['run_id']}.json"
        path.write_text(json.dumps(run))
        paths.append(str(path))
    out = CliRunner().invoke(results, ["compare", *paths])
    assert out.exit_code == 0, out.output
    lines = [x for x in out.output.splitlines() if x.startswith("density")]
    assert any("runc x2" in x and "s per start" in x and "slower" in x for x in lines)
    assert any("docker x2" in x and "MiB per instance" in x and "within noise" in x
               for x in lines)


def test_the_report_compares_density_in_mib_and_ms(tmp_path):
    from isoinspect.reports import load as report_load, render

    base = _full()
    new = _doubled_runc(base)
    new["created"] = base["created"] + 86400
    paths = []
    for run in (base, new):
        path = tmp_path / f"{run['run_id']}.json"
        path.write_text(json.dumps(run))
        paths.append(str(path))
    text = render.render(report_load.load_runs(paths))
    part = text[text.index('<section id="comparison">'):]
    part = part[:part.find("<section", 1) if part.find("<section", 1) > 0 else len(part)]
    runc = next(r for r in base["results"] if r["kind"] == "density"
                and (r["target"], r["level"]) == ("runc", 2))
    mib = runc["per_instance_bytes"]["estimate"] / 2 ** 20
    row = re.search(r"<tr>(?:(?!</tr>).)*runc x2(?:(?!</tr>).)*MiB per instance.*?</tr>",
                    part, re.S).group(0)
    assert f"{mib:.3g} MiB" in row and f"{2 * mib:.3g} MiB" in row
    assert "more, beyond noise" in row and "2.00× [" in row
    one = re.search(r"<tr>(?:(?!</tr>).)*runc x1(?:(?!</tr>).)*MiB per instance.*?</tr>",
                    part, re.S).group(0)
    assert "no interval (1 sample)" in one and "nan" not in one
