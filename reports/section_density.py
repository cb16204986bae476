"""The report's density section (``bench density``): memory per idle instance against how many
run at once, per target, as a table and a chart."""

from __future__ import annotations

from typing import Sequence

from isoinspect.reports import load
from isoinspect.reports.render import Section
from isoinspect.reports.palette import colour as runtime_color, ordered as runtime_order
from isoinspect.reports.section_parts import (error_bars, filled, frame_of, mib, real, short,
                                              where)
from isoinspect.reports.tables import Cell, Table, ms

ID = "density"
LEAD = (
    "N idle instances of each target (a sleeping process) kept running at once, N growing "
    "level by level. Memory per instance is what each one costs the host: its cgroup's memory "
    "charge plus the PSS of its processes outside that cgroup (a runtime's shim or monitor), "
    "mean over the instances with a 95% bootstrap interval. Beside it, the runtime's own "
    "processes (PSS) and the cgroup charge per instance, so a sandbox's or a daemon's share is "
    "visible, and how long the Nth start took with N already running.")
CAPTION = (
    "Memory per instance (log scale) against the number of instances running at once, one "
    "line per target with its 95% interval. A flat line costs the same for every instance; a "
    "falling one shares memory (a daemon, page cache) across instances.")


def section(frames: dict, runs: Sequence[dict]) -> Section:
    return filled(Section(ID, "Density: memory per idle instance", lead=LEAD),
                  frame_of(frames, runs, "density", load.density),
                  f"No density measurement (bench density) in {where(runs)}.",
                  table=table, findings=findings, notes=notes, chart=per_instance_chart)


def notes(frame) -> list[str]:
    return [f"{row.target}: {row.status}" + (f": {row.reason}" if row.reason else "")
            for row in frame[frame.status != "ok"].itertuples()]


def _rows(frame) -> list:
    """Rows in the report's target order, levels ascending (a target that never ran first)."""
    ordered = []
    for target in runtime_order(frame.target):
        part = frame[frame.target == target]
        ordered += sorted(part.itertuples(),
                          key=lambda r: r.level if real(r.level) else -1)
    return ordered


def _label(row) -> str:
    return f"{row.target} ({row.accelerator})" if row.accelerator else row.target


def status_cell(row) -> Cell:
    if row.status == "ok":
        return Cell("ok", "text ok")
    reason = row.failure or row.reason
    return Cell(row.status, "status-unsupported" if row.status == "unsupported"
                else "status-error", reason, short(reason, 60))


def table(frame) -> Table:
    out = Table(["target", "N", "MiB per instance (95% CI)", "runtime PSS MiB",
                 "cgroup charge MiB", "daemons' growth MiB", "Nth start ms", "status"],
                css="numbers",
                caption="Per instance at each level N (instances running at once): total, the "
                        "runtime's own processes (PSS) and the cgroup's charge; the start of "
                        "the Nth instance with N - 1 running")
    seen: set[str] = set()
    for row in _rows(frame):
        note = "" if row.target in seen else short(row.notes, 90)
        seen.add(row.target)
        level = str(int(row.level)) if real(row.level) else "–"
        estimate = mib(row.per_instance)
        if real(row.per_lo) and real(row.per_hi):
            estimate += f" [{mib(row.per_lo)}, {mib(row.per_hi)}]"
        out.rows.append([Cell(_label(row), title=row.notes, note=note), Cell(level),
                         Cell(estimate), Cell(mib(row.runtime_pss)), Cell(mib(row.cgroup)),
                         Cell(mib(row.daemons)), Cell(ms(row.nth_start)), status_cell(row)])
    return out


def findings(frame) -> list[str]:
    """At the highest level every measuring target reached: targets from lightest up."""
    ok = frame[(frame.status == "ok") & [real(v) for v in frame.per_instance]]
    if ok.empty:
        return []
    common = min(ok.groupby("target")["level"].max())
    at = ok[ok.level == common].sort_values("per_instance")
    parts = [f"{_label(r)} {mib(r.per_instance)} MiB" + (
        f" [{mib(r.per_lo)}, {mib(r.per_hi)}]" if real(r.per_lo) and real(r.per_hi) else "")
        for r in at.itertuples()]
    out = [f"Memory per instance with {int(common)} running, lightest first: "
           + ", ".join(parts) + "."]
    heavy = at.iloc[-1]
    light = at.iloc[0]
    if len(at) > 1 and real(light.per_hi) and real(heavy.per_lo) and \
            heavy.per_lo > light.per_hi and light.per_instance > 0:
        out.append(f"{_label(heavy)} costs {heavy.per_instance / light.per_instance:.1f}× "
                   f"the memory of {_label(light)} per instance (the intervals do not "
                   "overlap).")
    return out


def per_instance_chart(frame):
    """MiB per instance against N per target (log y), CIs as error bars."""
    from isoinspect.reports.charts import Chart, _figure, _plain, _png

    data = frame[(frame.status == "ok") & [real(v) and v > 0 for v in frame.per_instance]]
    data = data[[real(level) for level in data.level]]
    if data.empty:
        return None
    figure = _figure(9, 4.2)
    axes = figure.add_subplot()
    for target in runtime_order(data.target):
        part = data[data.target == target].sort_values("level")
        values = [v / 2 ** 20 for v in part.per_instance]
        lows = [v / 2 ** 20 if real(v) else None for v in part.per_lo]
        highs = [v / 2 ** 20 if real(v) else None for v in part.per_hi]
        axes.errorbar(list(part.level), values, yerr=error_bars(values, lows, highs),
                      marker="o", capsize=3, color=runtime_color(target),
                      label=_label(next(part.itertuples())))
    levels = sorted(set(int(level) for level in data.level))
    if len(levels) > 1 and levels[-1] / levels[0] >= 4:
        axes.set_xscale("log", base=2)
    axes.set_xticks(levels, [str(level) for level in levels])
    axes.set_yscale("log")
    _plain(axes, "y")
    axes.set_xlabel("instances running at once (N)")
    axes.set_ylabel("MiB per instance (log scale)")
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=8, frameon=False)
    return Chart("chart-density", "Memory per instance against the number running",
                 CAPTION, _png(figure), f"memory per instance for {data.target.nunique()} "
                                        "targets")
