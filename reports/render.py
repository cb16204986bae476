"""Render RunRecords into one self-contained HTML page, and write it atomically.

``render(runs)`` returns the HTML text; ``write_report(refs, output)`` loads, renders and then
writes through a temporary file renamed into place, so a failure at any step never leaves a
half-written report (nor replaces an older one). Several runs are combined into one view (the
newest result of each measurement) and, where they share measurements, compared: every later
run against the oldest.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from isoinspect.runtime.errors import USAGE_EXIT_CODE, IsoinspectError
from isoinspect.runtime.fsutil import write_atomic

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


@dataclass
class Section:
    id: str
    title: str
    lead: str = ""
    findings: list[str] = field(default_factory=list)
    badges: dict[str, int] = field(default_factory=dict)
    tables: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: list = field(default_factory=list)
    empty: str = ""
    grid: bool = False


def _summary(frames: dict, runs: list[dict]) -> Section:
    """Findings first (findings.py: one sentence each, only what the data supports), then the
    machine(s); what was unsupported, the goals and interruptions go in the smaller notes."""
    from isoinspect.reports import findings, tables

    run = runs[0]
    section = Section("summary", "Summary", grid=True,
                      lead="What these results show (95% confidence intervals in brackets), "
                           "then the machine they come from and what it could do.")
    section.findings = findings.findings(run)
    if not section.findings:
        section.findings = ["No finding is supported by these runs yet (too few samples, or "
                            "no difference beyond the noise)."]
    machines = run.get("machines") or []
    section.tables = [tables.machine_table({"machine": m["machine"]}, m["label"])
                      for m in machines] or [tables.machine_table(run)]
    section.tables.append(tables.capability_table(run))
    startup = frames["startup"]
    seen_reasons = set()
    for row in startup[startup.status != "ok"].itertuples():
        line = f"{row.target}: {row.status}" + (f" ({row.reason})" if row.reason else "")
        if line not in seen_reasons:  # one line per target and reason, not per metric
            seen_reasons.add(line)
            section.notes.append(line)
    section.notes += [tables.goal_text(goal) for goal in run.get("goals") or []
                      if isinstance(goal, dict) and goal.get("goal")]
    if any(source["interrupted"] for source in run["sources"]):
        section.notes.append("A run was interrupted: it holds what was measured before.")
    return section


def _runs(run: dict) -> Section:
    from isoinspect.reports import tables

    return Section("runs", "Runs", tables=[tables.runs_table(run)],
                   lead="The records this report was made from. Where a measurement appears in "
                        "several runs, the newest is shown and the comparison below says what "
                        "changed.")


def _where(run: dict) -> str:
    return "this run" if len(run["sources"]) == 1 else "these runs"


def _startup(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import tables

    run = runs[0]
    section = Section("startup", "Start-up latency",
                      lead="Time from asking each target to start a container until the command "
                           "ran, per target, with the ratio to isoinspect's own p50 "
                           "(below 1: faster than isoinspect).")
    section.tables = tables.headline_tables(run, frames["startup"])
    if not section.tables:
        section.empty = f"No start-up benchmark in {_where(run)}."
    return section


def _verification(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import tables

    run = runs[0]
    section = Section("verification", "Verification matrix",
                      lead="Each limit applied by each runtime, then triggered, and whether the "
                           "kernel enforced it.")
    matrix = tables.verify_matrix(frames["verify"], run["run_id"])
    if matrix is None:
        section.empty = f"No verification in {_where(run)}."
        return section
    section.badges = tables.verify_counts(frames["verify"], run["run_id"])
    section.tables = [matrix]
    frame = frames["verify"]
    for row in frame[(frame.run == run["run_id"]) & (frame.status != "PASS")].itertuples():
        if tables.shown_status(row) == tables.CONTROL_STATUS["FAIL"]:
            continue    # as it must: the summary's finding says so once
        section.notes.append(f"{row.runtime} · {row.check} · {tables.shown_status(row)}: "
                             f"{row.why or '–'}")
    return section


def _chart_section(id_: str, title: str, charts: list, empty: str, tables_=()) -> Section:
    charts = [c for c in charts if c is not None]
    return Section(id_, title, charts=charts, tables=list(tables_) if charts else [],
                   empty="" if charts else empty)


def _comparison(runs: Sequence[dict]) -> Section:
    from isoinspect.reports import charts, compare, tables

    baseline = runs[0]
    section = Section("comparison", "Comparing runs",
                      lead=f"Every later run against the oldest, {baseline['run_id']}: ratio of "
                           "p50 (new / baseline) with a 95% bootstrap interval; 'beyond noise' "
                           "when the interval excludes 1. With many rows, about one in twenty "
                           "can be flagged by chance alone.")
    for run in runs[1:]:
        frame = compare.compare(baseline, run)
        table = tables.Table(["kind", "subject", "metric", "baseline (p50 ms)", "new (p50 ms)",
                              "ratio (95% CI)", "verdict"], css="numbers",
                             title=f"{run['run_id']} vs {baseline['run_id']}",
                             caption="Times: p50 in ms; memory: mean MiB per instance")
        for row in frame.itertuples():
            more, less = ("more", "less") if row.unit == "bytes" else ("slower", "faster")
            verdict = (f"{more}, beyond noise" if row.ratio > 1 else f"{less}, beyond noise") \
                if row.beyond_noise else "within noise" if not tables.missing(row.ci_lo) \
                else "no interval (1 sample)"
            table.rows.append([tables.Cell(row.kind), tables.Cell(row.subject, "text"),
                               tables.Cell(row.metric, "text"),
                               tables.Cell(tables.compared(row.p50_baseline, row.unit)),
                               tables.Cell(tables.compared(row.p50_new, row.unit)),
                               tables.Cell(tables.ratio_text(row.ratio, row.ci_lo, row.ci_hi)),
                               tables.Cell(verdict, ("text bad" if row.ratio > 1 else
                                                     "text ok") if row.beyond_noise else "text")])
        if table.rows:
            section.tables.append(table)
            chart = charts.comparison_forest(frame)
            chart.id = f"{chart.id}-{len(section.charts) + 1}"
            section.charts.append(chart)
        for change in compare.verdict_changes(baseline, run):
            section.notes.append(f"{run['run_id']}: {change['runtime']} · {change['check']}: "
                                 f"{change['before']} → {change['after']}")
    if not section.tables and not section.notes:
        section.empty = ("No measurement appears in more than one of these runs: they were "
                         "combined, there is nothing to compare.")
    return section


def _latency(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts

    samples = frames["startup_samples"]
    return _chart_section("latency", "Latency distribution",
                          [charts.latency_cdf(samples, runs[0]["run_id"], m)
                           for m in dict.fromkeys(samples.metric)],
                          f"No start-up samples in {_where(runs[0])}.")


def _phases(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts

    return _chart_section("phases", "Start-up phases",
                          [charts.phase_breakdown(frames["phases"], runs[0]["run_id"])],
                          f"No per-phase breakdown in {_where(runs[0])} (`bench startup` with "
                          "traced runs records one).")


def _concurrency(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts

    return _chart_section("concurrency", "Concurrency",
                          [charts.concurrency_throughput(frames["concurrency"],
                                                         runs[0]["run_id"])],
                          f"No concurrency sweep in {_where(runs[0])}.")


def _chart_and_table(id_: str, title: str, frame, chart: Callable, table: Callable,
                     missing: str, runs: list[dict]) -> Section:
    """A section of one chart and one table of ``frame``, or saying what is ``missing``."""
    return _chart_section(id_, title, [chart(frame, runs[0]["run_id"])],
                          f"{missing} in {_where(runs[0])}.",
                          [table(frame)] if not frame.empty else ())


def _namespaces(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts, tables

    return _chart_and_table("namespaces", "Cost per namespace type", frames["namespace_cost"],
                            charts.namespace_cost, tables.namespace_table,
                            "No namespace cost measurement", runs)


def _enforcement(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts

    return _chart_section("enforcement", "Enforcement evidence",
                          [charts.enforcement_evidence(frames["verify"], runs[0]["run_id"])],
                          f"No enforcement time series in {_where(runs[0])}.")


def _tracer(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts, tables

    return _chart_and_table("overhead", "Tracer overhead", frames["trace_overhead"],
                            charts.tracer_overhead, tables.overhead_table,
                            "No tracer overhead measurement", runs)


def _traces(frames: dict, runs: list[dict]) -> Section:
    from isoinspect.reports import charts, tables

    return _chart_and_table("traces", "Traced start-ups", frames["traces"],
                            charts.trace_timeline, tables.trace_table,
                            "No traced start-up", runs)


def _module_section(name: str) -> Callable[[dict, list[dict]], Section]:
    """The ``section`` of reports/section_<name>.py, imported when the report is built (those
    modules import this one for ``Section``)."""

    def section(frames: dict, runs: list[dict]) -> Section:
        from importlib import import_module

        return import_module(f"isoinspect.reports.section_{name}").section(frames, runs)

    section.__name__ = f"section_{name}"
    return section


#: The report's sections, in order. Each is ``section(frames, runs) -> Section``: ``frames`` the
#: DataFrames of load.py by name (FRAMES), ``runs`` a one-element list holding the merged view
#: (load.merged: the newest result of each measurement, targets ``name @ machine`` when the runs
#: come from several machines, ``machines`` listing them). A new section module adds one line.
SECTIONS: list[Callable[[dict, list[dict]], Section]] = [
    _summary,
    _startup,
    _verification,
    _latency,
    _phases,
    _concurrency,
    _namespaces,
    _enforcement,
    _module_section("overhead"),
    _module_section("density"),
    _module_section("exposure"),
    _tracer,
    _traces,
    _module_section("isolation"),
]

#: frame name -> load.py function of the runs
FRAMES = {"startup": "startup_summary", "startup_samples": "startup_samples",
          "phases": "phases", "concurrency": "concurrency", "namespace_cost": "namespace_cost",
          "verify": "verify", "trace_overhead": "trace_overhead", "traces": "traces"}


def build_sections(runs: Sequence[dict]) -> list[Section]:
    """The report's sections: all runs combined (newest result wins), then compared."""
    from isoinspect.reports import load

    runs = load.by_time(runs)
    view = [load.merged(runs)]
    frames = {name: getattr(load, function)(view) for name, function in FRAMES.items()}
    sections = [section(frames, view) for section in SECTIONS]
    sections.append(_runs(view[0]))
    if len(runs) > 1:
        sections.append(_comparison(runs))
    return sections


def legend(runs: Sequence[dict]) -> list[tuple[str, str]]:
    """Every runtime the report shows, in its order, with its colour: the legend, once."""
    from isoinspect.reports import palette

    names = [palette.runtime_of(r.get("target") or r.get("runtime"))
             for run in runs for r in run["results"]
             if isinstance(r.get("target") or r.get("runtime"), str)]
    return [(name, palette.colour(name)) for name in palette.ordered(names)]


def render(runs: Sequence[dict]) -> str:
    """The whole report as one HTML string (styles and images inline)."""
    import jinja2

    from isoinspect.reports import load, tables

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["status_css"] = tables.status_css
    runs = load.by_time(runs)
    newest = runs[-1]
    machine = newest.get("machine") or {}
    machines = list(dict.fromkeys(load.machine_labels(runs).values()))
    where = (f"kernel {machine.get('kernel', '?')} · {machine.get('cgroup_mode', '?')} cgroups"
             if len(machines) == 1 else
             f"{len(machines)} machines: " + ", ".join(machines))
    subtitle = f"{where} · " + (f"run {newest['run_id']} · {newest.get('command', '')}"
                                if len(runs) == 1 else f"{len(runs)} runs, newest "
                                                       f"{newest['run_id']}")
    return environment.get_template("report.html.j2").render(
        title="isoinspect report", subtitle=subtitle, sections=build_sections(runs),
        legend=legend(runs),
        version=_version(), sources=[r["run_id"] for r in runs],
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("isoinspect")
    except metadata.PackageNotFoundError:
        return "(source)"


def write_report_file(path: str, text: str) -> None:
    """fsutil.write_atomic (fsync'ed) of the report; a failure is a one-line user error."""
    try:
        write_atomic(path, text.encode("utf-8"), fsync=True)
    except OSError as exc:
        raise IsoinspectError(f"cannot write the report to {path}: {exc.strerror}",
                              exit_code=USAGE_EXIT_CODE) from None


def write_report(refs: Sequence[str], output: str | None = None,
                 directory: str | None = None) -> str:
    """Load the runs, render them and write the HTML; return the written file's path."""
    from isoinspect.reports.load import by_time, load_runs

    runs = load_runs(refs, directory)
    newest = by_time(runs)[-1]
    output = output or f"isoinspect-report-{newest['run_id']}.html"
    if os.path.isdir(output):
        raise IsoinspectError(f"{output} is a directory: give the report's file name",
                              exit_code=USAGE_EXIT_CODE)
    write_report_file(output, render(runs))
    return os.path.abspath(output)
