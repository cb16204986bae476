"""Charts whose axes match their limit lines, and the control's expected failures shown as
expected (not as failures)."""

from __future__ import annotations

import os
import re

import pytest

from isoinspect.reports import charts, load, render, tables

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")
CONTROL = os.path.join(FIXTURES, "verify-control.json")
RUN = "20261128T130000Z-c0c0c0"
MIB = 2 ** 20


@pytest.fixture(scope="module")
def verify():
    return load.verify(load.load_runs([CONTROL]))


def panels(frame, monkeypatch, run: str = RUN):
    """check title -> {runtime: plotted y values} and the limit line, from the drawn figure."""
    figures = []
    original = charts._png
    monkeypatch.setattr(charts, "_png", lambda figure: figures.append(figure) or
                        original(figure))
    assert charts.enforcement_evidence(frame, run) is not None
    out = {}
    for axes in figures[0].axes:
        lines = {line.get_gid(): list(line.get_ydata()) for line in axes.get_lines()
                 if line.get_gid()}
        limits = [line.get_ydata()[0] for line in axes.get_lines()
                  if str(line.get_label()).startswith("limit")]
        out[axes.get_title().split(" ")[0]] = (lines, limits, axes.get_ylabel())
    return out


def test_cpu_shares_plots_the_ratio_against_the_ratio_band(verify, monkeypatch):
    lines, limits, unit = panels(verify, monkeypatch)["cpu-shares"]
    assert limits == [2.0] and unit == "ratio"
    runc = lines["runc"]
    assert 1.7 < sum(runc) / len(runc) < 2.4          # 0.67 : 0.33 CPUs = 2, not 0.67 CPUs


def test_io_panels_plot_the_rate_against_the_rate_limit(verify, monkeypatch):
    lines, limits, unit = panels(verify, monkeypatch)["io-write-bps"]
    assert unit == "MiB/s" and limits == [10.0]
    runc, control = lines["runc"], lines["control"]
    assert all(abs(v - 10) < 0.5 for v in runc)        # a steady 10 MiB/s, not a growing MiB
    assert all(abs(v - 60) < 2 for v in control)


def test_series_in_another_unit_is_not_drawn_against_the_limit(verify):
    row = next(verify[verify.check == "memory-oom"].itertuples())
    assert charts.in_limit_unit({"t": [0, 1], "value": [1, 2], "unit": "pages"}, row) is None
    rate = charts.rate_series({"t": [0, 0.25, 0.5, 0.75], "value": [0, 0, 5 * MIB, 10 * MIB]},
                              "bytes/s")
    assert rate["value"][-1] == 20 * MIB


def test_control_failures_are_expected_not_failures(verify):
    counts = tables.verify_counts(verify, RUN)
    assert counts == {"PASS": 7, "FAIL (expected)": 7}
    html = render.render(load.load_runs([CONTROL]))
    assert '<span class="badge expected">7 FAIL (expected)</span>' in html
    assert 'class="badge fail"' not in html and 'class="status-fail"' not in html
    assert len(re.findall(r'class="status-expected"', html)) == 7
    assert "failed 7 of 7 checks, as expected" in html


def test_a_control_pass_is_flagged(verify):
    frame = verify.copy()
    frame.loc[(frame.runtime == "control") & (frame.check == "pids-limit"), "status"] = "PASS"
    assert tables.verify_counts(frame, RUN)["PASS (control!)"] == 1


def test_a_real_verify_run_draws_ratio_and_rate_panels(monkeypatch):
    """verify-quick.json: a real `verify --quick` of runc and the control on this host."""
    real = load.verify(load.load_runs([os.path.join(FIXTURES, "verify-quick.json")]))
    drawn = panels(real, monkeypatch, real.run.iloc[0])
    shares, limits, unit = drawn["cpu-shares"]
    assert unit == "ratio" and limits == [4.0]
    assert 2 < sorted(shares["runc"])[len(shares["runc"]) // 2] < 7   # about 4, not ~0.6 CPUs
    io, limits, unit = drawn["io-write-bps"]
    assert unit == "MiB/s" and limits == [2.0] and max(io["control"]) > 10
