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
from typing import Sequence

from isoinspect.runtime.errors import IsoinspectError
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


def _summary(run: dict, frames: dict) -> Section:
    from isoinspect.reports import tables

    section = Section("summary", "Summary", grid=True,
                      lead="The machine these results come from, what it could do, and the "
                           "headline figures.")
    section.tables = [tables.machine_table(run), tables.capability_table(run)]
    startup = frames["startup"]
    ok = startup[(startup.status == "ok") & (startup.n > 0)]
    if not ok.empty:
        # one metric for the headline (start-to-ready when present), not a mix of metrics
        metric = "start_to_ready" if (ok.metric == "start_to_ready").any() else ok.metric.iloc[0]
        ranked = ok[ok.metric == metric].sort_values("p50")
        fastest, slowest = ranked.iloc[0], ranked.iloc[-1]
        section.findings.append(
            f"Start-up ({metric}) measured for {ranked.target.nunique()} targets: from "
            f"{fastest.target} ({tables.ms(fastest.p50)} ms p50) to {slowest.target} "
            f"({tables.ms(slowest.p50)} ms p50).")
    seen_reasons = set()
    for row in startup[startup.status != "ok"].itertuples():
        line = f"{row.target}: {row.status}" + (f" ({row.reason})" if row.reason else "")
        if line not in seen_reasons:  # one line per target and reason, not per metric
            seen_reasons.add(line)
            section.findings.append(line)
    section.findings += [tables.goal_text(goal) for goal in run.get("goals") or []
                         if isinstance(goal, dict) and goal.get("goal")]
    counts = tables.verify_counts(frames["verify"], run["run_id"])
    if counts:
        section.findings.append("Verification: " + ", ".join(f"{n} {s}"
                                                             for s, n in counts.items()) + ".")
    if any(source["interrupted"] for source in run["sources"]):
        section.findings.append("A run was interrupted: it holds what was measured before.")
    return section


def _runs(run: dict) -> Section:
    from isoinspect.reports import tables

    return Section("runs", "Runs", tables=[tables.runs_table(run)],
                   lead="The records this report was made from. Where a measurement appears in "
                        "several runs, the newest is shown and the comparison below says what "
                        "changed.")


def _where(run: dict) -> str:
    return "this run" if len(run["sources"]) == 1 else "these runs"


def _startup(run: dict, frames: dict) -> Section:
    from isoinspect.reports import tables

    section = Section("startup", "Start-up latency",
                      lead="Time from asking each target to start a container until the command "
                           "ran, per target, with the ratio to isoinspect's own p50 "
                           "(below 1: faster than isoinspect).")
    section.tables = tables.headline_tables(run, frames["startup"])
    if not section.tables:
        section.empty = f"No start-up benchmark in {_where(run)}."
    return section


def _verification(run: dict, frames: dict) -> Section:
    from isoinspect.reports import tables

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
        section.notes.append(f"{row.runtime} · {row.check} · {row.status}: {row.why or '–'}")
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
        table = tables.Table(["kind", "subject", "metric", "baseline p50 ms", "new p50 ms",
                              "ratio (95% CI)", "verdict"], css="numbers",
                             title=f"{run['run_id']} vs {baseline['run_id']}")
        for row in frame.itertuples():
            verdict = ("slower, beyond noise" if row.ratio > 1 else "faster, beyond noise") \
                if row.beyond_noise else "within noise"
            table.rows.append([tables.Cell(row.kind), tables.Cell(row.subject, "text"),
                               tables.Cell(row.metric, "text"),
                               tables.Cell(tables.ms(row.p50_baseline)),
                               tables.Cell(tables.ms(row.p50_new)),
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


def build_sections(runs: Sequence[dict]) -> list[Section]:
    """The report's sections: all runs combined (newest result wins), then compared."""
    from isoinspect.reports import charts, load, section_isolation, tables

    runs = load.by_time(runs)
    run = load.merged(runs)
    run_id = run["run_id"]
    view = [run]
    frames = {"startup": load.startup_summary(view), "verify": load.verify(view)}
    from isoinspect.reports import section_density, section_exposure, section_overhead
    samples, phases = load.startup_samples(view), load.phases(view)
    concurrency, namespaces = load.concurrency(view), load.namespace_cost(view)
    overhead, traces = load.trace_overhead(view), load.traces(view)
    metrics = list(dict.fromkeys(samples.metric))
    where = _where(run)
    sections = [
        _summary(run, frames), _startup(run, frames), _verification(run, frames),
        _chart_section("latency", "Latency distribution",
                       [charts.latency_cdf(samples, run_id, m) for m in metrics],
                       f"No start-up samples in {where}."),
        _chart_section("phases", "Start-up phases", [charts.phase_breakdown(phases, run_id)],
                       f"No per-phase breakdown in {where} (`bench startup` with traced "
                       "runs records one)."),
        _chart_section("concurrency", "Concurrency",
                       [charts.concurrency_throughput(concurrency, run_id)],
                       f"No concurrency sweep in {where}."),
        _chart_section("namespaces", "Cost per namespace type",
                       [charts.namespace_cost(namespaces, run_id)],
                       f"No namespace cost measurement in {where}.",
                       [tables.namespace_table(namespaces)] if not namespaces.empty else ()),
        _chart_section("enforcement", "Enforcement evidence",
                       [charts.enforcement_evidence(frames["verify"], run_id)],
                       f"No enforcement time series in {where}."),
        section_overhead.section(frames, view),
        section_density.section(frames, view),
        section_exposure.section(frames, view),
        _chart_section("overhead", "Tracer overhead", [charts.tracer_overhead(overhead, run_id)],
                       f"No tracer overhead measurement in {where}.",
                       [tables.overhead_table(overhead)] if not overhead.empty else ()),
    ]
    sections += [
        _chart_section("traces", "Traced start-ups", [charts.trace_timeline(traces, run_id)],
                       f"No traced start-up in {where}.",
                       [tables.trace_table(traces)] if not traces.empty else ()),
        section_isolation.section(frames, view),
        _runs(run)]
    if len(runs) > 1:
        sections.append(_comparison(runs))
    return sections


def render(runs: Sequence[dict]) -> str:
    """The whole report as one HTML string (styles and images inline)."""
    import jinja2

    from isoinspect.reports.load import by_time

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    runs = by_time(runs)
    newest = runs[-1]
    machine = newest.get("machine") or {}
    subtitle = f"kernel {machine.get('kernel', '?')} · {machine.get('cgroup_mode', '?')} " \
               f"cgroups · " + (f"run {newest['run_id']} · {newest.get('command', '')}"
                                if len(runs) == 1 else f"{len(runs)} runs, newest "
                                                       f"{newest['run_id']}")
    return environment.get_template("report.html.j2").render(
        title="isoinspect report", subtitle=subtitle, sections=build_sections(runs),
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
                              exit_code=2) from None


def write_report(refs: Sequence[str], output: str | None = None,
                 directory: str | None = None) -> str:
    """Load the runs, render them and write the HTML; return the written file's path."""
    from isoinspect.reports.load import by_time, load_runs

    runs = load_runs(refs, directory)
    newest = by_time(runs)[-1]
    output = output or f"isoinspect-report-{newest['run_id']}.html"
    if os.path.isdir(output):
        raise IsoinspectError(f"{output} is a directory: give the report's file name",
                              exit_code=2)
    write_report_file(output, render(runs))
    return os.path.abspath(output)
