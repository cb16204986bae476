"""Issue 18: what `bench startup` prints: no p99 from few runs, plain progress lines when
stderr is not a terminal (like hyperfine), goals only when asked."""

from __future__ import annotations

import io

from isoinspect.benches import startup
from test_bench_startup import Fake, run


def _rows(table: str, name: str) -> list[list[str]]:
    rows = [line.split() for line in table.splitlines()]
    return [row for row in rows if row[:1] == [name] and len(row) > 4 and row[1].isdigit()]


def test_p99_needs_enough_runs(tmp_path):
    summary, _ = run([Fake("runc", 0.04)], tmp_path, runs=10, warmup=0)
    table = startup.format_table(summary)
    assert _rows(table, "runc") and all(row[4] == "-" for row in _rows(table, "runc"))  # target n p50 p90 p99
    assert "p99 is shown from 50 runs on" in table
    summary, _ = run([Fake("runc", 0.04)], tmp_path, runs=50, warmup=0, record=False)
    table = startup.format_table(summary)
    assert _rows(table, "runc") and all(row[4] != "-" for row in _rows(table, "runc"))
    assert "p99 is shown" not in table


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    err = io.StringIO()  # isatty() is False
    monkeypatch.setattr("sys.stderr", err)
    run([Fake("runc", 0.001)], tmp_path, runs=3, warmup=2, progress=None)
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue() and "\033" not in err.getvalue()
    assert "warm-up 2/2" in lines and "round 3/3" in lines and "cleaning up" in lines
    assert len(lines) <= 6  # throttled: not one line per round


def test_goals_printed_only_on_request(tmp_path, capsys):
    targets = [Fake("isoinspect-cli", 0.02), Fake("runc", 0.04), Fake("docker", 0.5)]
    run(targets, tmp_path, runs=2, warmup=0, echo=True)
    assert "goal " not in capsys.readouterr().out
    run(targets, tmp_path, runs=2, warmup=0, echo=True, show_goals=True, record=False)
    assert "goal docker lifecycle" in capsys.readouterr().out


def test_results_show_hides_goals_and_short_p99(tmp_path):
    from click.testing import CliRunner

    from isoinspect.cli.main import cli

    targets = [Fake("isoinspect-cli", 0.02), Fake("runc", 0.04), Fake("docker", 0.5)]
    _, rec = run(targets, tmp_path, runs=3, warmup=0)
    shown = CliRunner().invoke(cli, ["results", "show", rec.path])
    assert shown.exit_code == 0, shown.output
    assert "goal " not in shown.output and "P99 is shown from 50 runs on" in shown.output
    asked = CliRunner().invoke(cli, ["results", "show", rec.path, "--goals"])
    assert "goal docker lifecycle" in asked.output
