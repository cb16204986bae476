"""reports.charts: every chart is a real PNG data URI with a caption, or None without data."""

from __future__ import annotations

import base64
import os
import struct

import pytest

from isoinspect.reports import charts, compare, load

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")
FULL_ID = "20261128T090000Z-a1b2c3"


@pytest.fixture(scope="module")
def runs():
    return load.load_runs([os.path.join(FIXTURES, n)
                           for n in ("full.json", "rerun.json", "startup-only.json")])


def png_size(chart: charts.Chart) -> tuple[int, int]:
    """Width and height from the PNG header of the chart's data URI."""
    prefix = "data:image/png;base64,"
    assert chart.uri.startswith(prefix)
    data = base64.b64decode(chart.uri[len(prefix):], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def made(runs):
    verify = load.verify(runs)
    return {
        "latency": charts.latency_cdf(load.startup_samples(runs), FULL_ID, "start_to_ready"),
        "phases": charts.phase_breakdown(load.phases(runs), FULL_ID),
        "concurrency": charts.concurrency_throughput(load.concurrency(runs), FULL_ID),
        "namespaces": charts.namespace_cost(load.namespace_cost(runs), FULL_ID),
        "enforcement": charts.enforcement_evidence(verify, FULL_ID),
        "overhead": charts.tracer_overhead(load.trace_overhead(runs), FULL_ID),
        "traces": charts.trace_timeline(load.traces(runs), FULL_ID),
        "comparison": charts.comparison_forest(compare.compare(runs[0], runs[1])),
    }


def test_every_chart_is_a_png_with_title_caption_and_alt(runs):
    for name, chart in made(runs).items():
        assert chart is not None, name
        width, height = png_size(chart)
        assert width >= 600 and height >= 150, (name, width, height)
        assert chart.title and len(chart.caption) > 60 and chart.alt
        assert chart.id.startswith("chart-")


def test_charts_without_their_data_are_none(runs):
    other = "20261128T100000Z-d4e5f6"   # startup-only: start-up samples, nothing else
    assert charts.concurrency_throughput(load.concurrency(runs), other) is None
    assert charts.namespace_cost(load.namespace_cost(runs), other) is None
    assert charts.tracer_overhead(load.trace_overhead(runs), other) is None
    assert charts.trace_timeline(load.traces(runs), other) is None
    assert charts.phase_breakdown(load.phases(runs), "no-such-run") is None
    assert charts.latency_cdf(load.startup_samples(runs), FULL_ID, "teardown") is None
    assert charts.comparison_forest(compare.compare(runs[0], {"results": []})) is None


def test_enforcement_draws_one_panel_per_check_with_series(runs):
    verify = load.verify(runs)
    full = verify[verify.run == FULL_ID]
    assert charts.enforcement_evidence(full.assign(evidence=[{}] * len(full)), FULL_ID) is None
    two_checks = png_size(charts.enforcement_evidence(full, FULL_ID))
    series = {"series": {"t": [0, 1, 2], "value": [1.9, 2.0, 2.1], "unit": "ratio"}}
    third = full.assign(evidence=[series if check == "cpu-shares" else evidence
                                  for check, evidence in zip(full.check, full.evidence)])
    three_checks = png_size(charts.enforcement_evidence(third, FULL_ID))
    assert three_checks[0] == two_checks[0] and three_checks[1] > two_checks[1]  # a second row


def test_evidence_that_cannot_be_drawn_is_left_out_not_fatal(runs):
    verify = load.verify(runs)
    full = verify[verify.run == FULL_ID]
    broken = [{"series": {"t": [0, 1, 2], "value": [1, 2]}},              # lengths differ
              {"series": {"t": [0, "x"], "value": [1, 2]}},               # not numbers
              {"series": {"cpu": {"t": [], "value": []}}},                # empty, named
              {"series": [1, 2, 3]}]                                      # not a series
    for evidence in broken:
        assert charts.enforcement_evidence(full.assign(evidence=[evidence] * len(full)),
                                           FULL_ID) is None, evidence
    named = {"series": {"usage": {"t": [0, 1], "value": [10, 60], "unit": "MiB"},
                        "limit": {"t": [0, 1], "value": [64, 64], "unit": "MiB"}}}
    assert charts.enforcement_evidence(full.assign(evidence=[named] * len(full)), FULL_ID)
    nested = {"inside": {"series": named["series"]["usage"]}, "swap_kib": 1024}  # memory-swap
    assert charts._series(nested) == [("inside", named["series"]["usage"])]
