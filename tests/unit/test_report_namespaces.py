"""A real `bench namespaces --quick` record (two concurrency levels per type) renders."""

from __future__ import annotations

import os

from isoinspect.reports import charts, load, render, tables

RECORD = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records",
                      "namespaces-quick.json")


def test_a_namespace_sweep_with_two_levels_renders_its_chart_and_table():
    runs = load.load_runs([RECORD])
    frame = load.namespace_cost(runs)
    assert sorted(set(frame.concurrency)) == [1, 4]          # every (type, op) twice
    chart = charts.namespace_cost(frame, runs[0]["run_id"])
    assert chart is not None and chart.uri.startswith("data:image/png;base64,")
    table = tables.namespace_table(frame)
    assert len(table.rows) == frame.namespace.nunique() * 2  # one row per type and level
    assert table.rows[0][0].text == "net"                    # the most expensive first
    assert any(row[0].text == "none (baseline)" for row in table.rows)
    html = render.render(runs)
    assert 'id="chart-namespaces"' in html and "No namespace cost" not in html
