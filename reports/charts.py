"""The report's charts: one function per chart, each returning a ``Chart`` or None (no data).

Drawn with matplotlib's object API on the Agg canvas (no display, no pyplot global state) and
inlined as PNG data URIs, so the HTML file opens without a network. Every chart has axis labels
with units and a caption saying what to read from it.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Sequence

from isoinspect.benches import stats
from isoinspect.reports import palette
from isoinspect.reports.tables import namespace_name, ms, scaled, shown_unit

DPI = 110
MAX_EVIDENCE_PANELS = 8
#: what to read from each chart: its caption
CAPTIONS = {
    "latency": (
        "Each curve is one target's cumulative distribution: the further left, the "
        "faster; a steep curve is a steady target, a long right tail means slow "
        "outliers. Dotted lines mark p50 and p99; the axis is logarithmic, so equal "
        "gaps are equal ratios."),
    "phases": (
        "Each bar is one runtime's start-up split into phases (p50 of each phase, as "
        "a share of their sum, which is printed at the right). Compare the colours "
        "across bars to see which phase makes a runtime slower."),
    "concurrency": (
        "Higher is better. A line that keeps rising scales with concurrency; where it "
        "flattens, the runtime (or the machine's CPUs) is saturated."),
    "namespaces": (
        "Kernel time to create (and destroy) one namespace of each type alone, p50 "
        "with its 95% confidence interval. The tallest bars are what a runtime pays "
        "for on every start; network namespaces usually dominate."),
    "enforcement": (
        "What the kernel did under each limit, over time, one panel per check and one "
        "line per runtime, in the limit's own unit: CPUs against a CPU quota, memory "
        "charged against a memory limit, the I/O rate (MiB/s over the last 0.5 s, from "
        "the device's byte counter) against a rate limit, the heavy : light CPU ratio "
        "against a shares ratio. The dashed line is the configured limit with its grey "
        "tolerance band; dotted verticals mark kernel events such as the OOM kill. A PASS "
        "stays within the band (or is stopped at it); a FAIL leaves it."),
    "overhead": (
        "The same start-up measured without and with tracing, per target (boxes: "
        "quartiles and median; dots: every run). If the boxes overlap, the tracer's "
        "cost is within the noise; the table gives the ratio of medians with its 95% "
        "confidence interval and how it was measured (newer runs: the tracer in a "
        "separate process, traced and untraced runs interleaved, paired by pair)."),
    "traces": (
        "One traced start per runtime, from kernel timestamps: each coloured span is the "
        "time from the previous event to the phase it is coloured for, so a long span "
        "shows where that runtime waits."),
    "comparison": (
        "Each point is the ratio of medians (new run over the baseline) with its 95% "
        "bootstrap interval. Grey: the interval contains 1, i.e. within noise; green: "
        "faster beyond noise; red: slower beyond noise."),
}


@dataclass
class Chart:
    id: str
    title: str
    caption: str
    uri: str
    alt: str


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def _png(figure) -> str:
    """The figure as a PNG data URI, reduced to a 256-colour palette: charts have few colours,
    and the page stays about a third of the size (it carries every image inline)."""
    from PIL import Image

    drawn = io.BytesIO()
    figure.savefig(drawn, format="png", dpi=DPI)
    palette = Image.open(io.BytesIO(drawn.getvalue())).convert("RGB").quantize(256)
    packed = io.BytesIO()
    palette.save(packed, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(packed.getvalue()).decode("ascii")


def _plain(axes, name: str) -> None:
    """Tick labels of a log axis as plain numbers (0.5, 1, 10) rather than powers of ten; when
    the data spans less than a decade (at most one major tick), the minor ticks get labels."""
    from matplotlib.ticker import FuncFormatter

    axis = axes.xaxis if name == "x" else axes.yaxis
    low, high = axes.get_xlim() if name == "x" else axes.get_ylim()
    label = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(label)
    narrow = low > 0 and high / low < 10
    axis.set_minor_formatter(label if narrow else FuncFormatter(lambda value, _: ""))


def _runtime_ticks(axes, names: Sequence[str]) -> None:
    """Y tick labels in each runtime's colour (bars coloured by phase still name the runtime)."""
    for label, name in zip(axes.get_yticklabels(), names):
        label.set_color(palette.colour(name))
        label.set_gid(palette.runtime_of(name))


def latency_cdf(samples, run_id: str, metric: str) -> Chart | None:
    """Empirical CDF of start-up latency per target on a log time axis."""
    frame = samples[(samples.run == run_id) & (samples.metric == metric)]
    if frame.empty:
        return None
    figure = _figure(9, 4.6)
    axes = figure.add_subplot()
    groups = sorted(frame.groupby("target"), key=lambda g: palette.key(g[0]))
    machines = {palette.machine_of(name) for name, _ in groups}
    for target, group in groups:
        values = sorted(group.seconds * 1e3)
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        axes.step(values, fractions, where="post", color=palette.colour(target), linewidth=1.6,
                  linestyle=palette.linestyle(target, machines), gid=palette.runtime_of(target),
                  label=f"{target} (p50 {ms(stats.median(list(group.seconds)))} ms, "
                        f"n={len(values)})")
    axes.set_xscale("log")
    _plain(axes, "x")
    axes.set_xlabel("start-up latency (ms, log scale)")
    axes.set_ylabel("fraction of runs ≤ latency")
    axes.set_ylim(0, 1.02)
    axes.axhline(0.5, color="#999", linewidth=0.7, linestyle=":")
    axes.axhline(0.99, color="#999", linewidth=0.7, linestyle=":")
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    return Chart(f"chart-latency-{metric}", f"Start-up latency distribution ({metric})",
                 CAPTIONS["latency"], _png(figure),
                 f"CDF of start-up latency for {len(groups)} targets")


def phase_breakdown(phases, run_id: str) -> Chart | None:
    """Per-phase start-up breakdown: 100 % stacked bars per runtime, total p50 annotated."""
    frame = phases[phases.run == run_id]
    if frame.empty:
        return None
    frame = frame[frame.metric == frame.metric.iloc[0]]
    # phases in their usual order: mean position within each target's own phase list
    sizes = frame.groupby("target").order.transform("max") + 1
    order = (frame.order / sizes).groupby(frame.phase).mean().sort_values().index.tolist()
    totals = frame.groupby("target").p50.sum()
    totals = totals[palette.ordered(totals.index)[::-1]]   # the report's order, top down
    figure = _figure(9, 0.55 * len(totals) + 1.6)
    axes = figure.add_subplot()
    colour = {phase: palette.PHASES[i % len(palette.PHASES)] for i, phase in enumerate(order)}
    left = {target: 0.0 for target in totals.index}
    for phase in order:
        part = frame[frame.phase == phase].set_index("target").p50
        widths = [100 * part.get(t, 0.0) / totals[t] if totals[t] else 0.0 for t in totals.index]
        axes.barh(list(totals.index), widths, left=[left[t] for t in totals.index],
                  color=colour[phase], label=phase, edgecolor="white", linewidth=0.5)
        for target, width in zip(totals.index, widths):
            left[target] += width
    for y, target in enumerate(totals.index):
        axes.text(101, y, f"{ms(totals[target])} ms", va="center", fontsize=8)
    _runtime_ticks(axes, list(totals.index))
    axes.set_xlim(0, 115)
    axes.set_xlabel("share of the start-up time (%, p50 of each phase)")
    axes.set_ylabel("runtime")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(totals) < 4 else -0.12),
                ncol=min(6, len(order)), fontsize=8, frameon=False)
    return Chart("chart-phases", "Where start-up time goes, per runtime",
                 CAPTIONS["phases"], _png(figure),
                 f"stacked bars of start-up phases for {len(totals)} runtimes")


def concurrency_throughput(frame, run_id: str) -> Chart | None:
    """Containers per second against the number started at once, one line per target."""
    frame = frame[(frame.run == run_id) & (frame.status == "ok")]
    frame = frame.dropna(subset=["containers_per_second"])
    if frame.empty:
        return None
    figure = _figure(9, 4.2)
    axes = figure.add_subplot()
    machines = {palette.machine_of(name) for name in frame.target}
    for target in palette.ordered(frame.target):
        group = frame[frame.target == target].sort_values("level")
        axes.plot(group.level, group.containers_per_second, marker="o",
                  color=palette.colour(target), linestyle=palette.linestyle(target, machines),
                  label=target, gid=palette.runtime_of(target))
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    _plain(axes, "y")
    levels = sorted(set(frame.level))
    axes.set_xticks(levels, [str(level) for level in levels])
    axes.set_xlabel("containers started at once (concurrency)")
    axes.set_ylabel("containers per second (log scale)")
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=8, frameon=False)
    return Chart("chart-concurrency", "Throughput against concurrency",
                 CAPTIONS["concurrency"], _png(figure),
                 "containers per second against concurrency")


def namespace_cost(frame, run_id: str) -> Chart | None:
    """p50 cost of creating and destroying each namespace type, with the p50's 95 % CI.

    A sweep measures every type at several concurrency levels: the bars are the lowest level's
    (one creator, the type's own cost); the table gives every level.
    """
    frame = frame[(frame.run == run_id) & (frame.status == "ok")].dropna(subset=["p50"])
    if frame.empty:
        return None
    level = frame.concurrency.min()
    frame = frame[frame.concurrency == level].drop_duplicates(["namespace", "op"], keep="last")
    order = (frame[frame.op == "create"].sort_values("p50", ascending=False).namespace.tolist()
             or sorted(set(frame.namespace)))
    order += [n for n in sorted(set(frame.namespace)) if n not in order]
    ops = list(dict.fromkeys(frame.op))
    figure = _figure(9, 4.2)
    axes = figure.add_subplot()
    width = 0.8 / len(ops)
    for index, op in enumerate(ops):
        part = frame[frame.op == op].set_index("namespace")
        xs, heights, errors = [], [], [[], []]
        for x, namespace in enumerate(order):
            if namespace not in part.index:
                continue
            row = part.loc[namespace]
            p50 = row.p50 * 1e6
            xs.append(x + (index - (len(ops) - 1) / 2) * width)
            heights.append(p50)
            lo, hi = row.p50_lo, row.p50_hi
            errors[0].append(max(p50 - lo * 1e6, 0.0) if _real(lo) else 0.0)
            errors[1].append(max(hi * 1e6 - p50, 0.0) if _real(hi) else 0.0)
        axes.bar(xs, heights, width, yerr=errors, capsize=2, label=op,
                 color=palette.SERIES[index % len(palette.SERIES)])
    axes.set_xticks(range(len(order)), [namespace_name(n) for n in order],
                    rotation=30 if len(order) > 9 else 0)
    axes.set_yscale("log")
    _plain(axes, "y")
    axes.set_xlabel(f"namespace type ({int(level)} creator{'s' if level != 1 else ''} at once)")
    axes.set_ylabel("p50 cost per namespace (µs, log scale)")
    axes.grid(True, axis="y", which="both", alpha=0.25)
    axes.legend(fontsize=8, frameon=False)
    return Chart("chart-namespaces", "Cost per namespace type",
                 CAPTIONS["namespaces"], _png(figure),
                 "bar chart of namespace create and destroy cost")


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def _series(evidence: dict) -> list[tuple[str, dict]]:
    """The evidence's time series: ``series`` as one {t, value, unit} or a mapping name ->
    series, and the ``series`` of nested parts (e.g. {"inside": {...}, "past": {...}})."""
    found: list[tuple[str, Any]] = []
    for name, part in [("", evidence), *evidence.items()]:
        series = part.get("series") if isinstance(part, dict) else None
        if isinstance(series, dict):
            found += [(name, series)] if "t" in series else [
                (f"{name} {key}".strip(), value) for key, value in series.items()]
    return [(name, s) for name, s in found if _plottable(s)]


def _plottable(series: Any) -> bool:
    """A {t, value} series of numbers, as many of each (anything else is not drawn)."""
    if not isinstance(series, dict):
        return False
    t, value = series.get("t"), series.get("value")
    return (isinstance(t, list) and isinstance(value, list) and len(t) == len(value) > 0
            and all(_real(x) for x in t + value))


#: seconds a rate derived from a cumulative series is averaged over (samples come every 50 ms)
RATE_WINDOW = 0.5


def rate_series(series: dict, unit: str) -> dict:
    """A cumulative series (bytes) as its rate (bytes/s), over RATE_WINDOW seconds ending at
    each sample: the I/O limit is a rate, so the panel draws a rate against it."""
    t, value = series["t"], series["value"]
    out_t, out_v, start = [], [], 0
    for i in range(1, len(t)):
        while start < i - 1 and t[i] - t[start + 1] >= RATE_WINDOW:
            start += 1
        span = t[i] - t[start]
        if span > 0:
            out_t.append(t[i])
            out_v.append((value[i] - value[start]) / span)
    return {"t": out_t, "value": out_v, "unit": unit}


def ratio_series(series: dict, share: Any) -> dict | None:
    """The cpu-shares check's series (the heavy box's CPUs on the pinned CPU) as the heavy :
    light ratio, the light box taking what the pair used minus the heavy box's part (their
    window averages ``share`` give the pair's total); None when that cannot be told."""
    if not (isinstance(share, list) and len(share) == 2 and all(map(_real, share))):
        return None
    total = share[0] + share[1]
    t, value = [], []
    for moment, heavy in zip(series["t"], series["value"]):
        if total - heavy > 0.02 * total:
            t.append(moment)
            value.append(heavy / (total - heavy))
    return {"t": t, "value": value, "unit": "ratio"} if t else None


def in_limit_unit(series: dict, row: Any) -> dict | None:
    """The series in the unit of the check's limit (so the limit line and band apply to it), or
    None when it cannot be converted (then it is drawn without the limit)."""
    unit = series.get("unit") or row.unit
    if not row.unit or unit == row.unit:
        return dict(series, unit=unit)
    if row.unit == "bytes/s" and unit == "bytes":
        return rate_series(series, row.unit)
    if row.unit == "ratio" and unit == "cpus":
        return ratio_series(series, row.evidence.get("share"))
    return None


def enforcement_evidence(verify, run_id: str) -> Chart | None:
    """Small multiples, one per check: each runtime's measured time series against the limit."""
    frame = verify[verify.run == run_id]
    rows = [row for row in frame.itertuples() if _series(row.evidence)]
    checks = list(dict.fromkeys(row.check for row in rows))[:MAX_EVIDENCE_PANELS]
    if not checks:
        return None
    columns = 2 if len(checks) > 1 else 1
    machines = {palette.machine_of(name) for name in frame.runtime}
    height = 2.9 * math.ceil(len(checks) / columns) + 0.4
    figure = _figure(9, height)
    for index, check in enumerate(checks):
        axes = figure.add_subplot(math.ceil(len(checks) / columns), columns, index + 1)
        panel = sorted((row for row in rows if row.check == check),
                       key=lambda row: palette.key(row.runtime))
        unit, limit, raw = "", panel[0], False
        for row in panel:
            for name, series in _series(row.evidence):
                converted = in_limit_unit(series, row)
                raw = raw or converted is None
                series = converted or series
                unit = series.get("unit") or row.unit
                axes.plot(series["t"], [scaled(v, unit) for v in series["value"]],
                          linewidth=1.3, color=palette.colour(row.runtime),
                          linestyle=palette.linestyle(row.runtime, machines),
                          gid=palette.runtime_of(row.runtime),
                          label=f"{row.runtime} {name} ({row.status})".replace("  ", " "))
            for event in row.evidence.get("events") or []:
                if isinstance(event, dict) and _real(event.get("t")):
                    axes.axvline(event["t"], color=palette.colour(row.runtime), linewidth=0.9,
                                 linestyle=":")
            if _real(row.expected):
                limit = row
        if _real(limit.expected) and not raw:
            expected = scaled(limit.expected, limit.unit)
            axes.axhline(expected, color="black", linestyle="--", linewidth=1.1,
                         label=f"limit {expected:g} {shown_unit(limit.unit)}")
            if _real(limit.tolerance) and limit.tolerance:
                tolerance = scaled(limit.tolerance, limit.unit)
                axes.axhspan(expected - tolerance, expected + tolerance, color="#999",
                             alpha=0.15, label=f"± {tolerance:.3g} tolerance")
        events = sorted({str(e.get("label")) for row in panel
                         for e in row.evidence.get("events") or []
                         if isinstance(e, dict) and e.get("label")})
        axes.set_title(check + (f" (dotted: {', '.join(events)})" if events else ""),
                       fontsize=9)
        axes.set_xlabel("time (s)")
        axes.set_ylabel(shown_unit(unit) or "value")
        axes.grid(True, alpha=0.25)
        axes.legend(fontsize=7, loc="best", framealpha=0.85)
    return Chart("chart-enforcement", "Enforcement evidence",
                 CAPTIONS["enforcement"], _png(figure),
                 f"time series of {len(checks)} enforced limits")


def tracer_overhead(frame, run_id: str) -> Chart | None:
    """Start-up time with and without the tracer attached (box plots)."""
    frame = frame[frame.run == run_id]
    rows = sorted((r for r in frame.to_dict("records")
                   if r["samples_with"] and r["samples_without"]),
                  key=lambda r: palette.key(r["target"] or ""))
    if not rows:
        return None
    figure = _figure(9, 1.2 * len(rows) + 2)
    axes = figure.add_subplot()
    data, labels, names = [], [], []
    for row in rows:
        name = row["target"] or "start-up"
        names += [name, name]
        data += [[s * 1e3 for s in row["samples_without"]], [s * 1e3 for s in row["samples_with"]]]
        labels += [f"{name}\nwithout tracer", f"{name}\nwith tracer"]
    axes.boxplot(data, vert=False, labels=labels, showfliers=False, widths=0.6)
    for y, (values, name) in enumerate(zip(data, names), start=1):   # every run as a dot
        axes.plot(values, [y] * len(values), "o", color=palette.colour(name), alpha=0.35,
                  markersize=3, gid=palette.runtime_of(name))
    axes.set_xlabel("start-up latency (ms)")
    axes.grid(True, axis="x", alpha=0.25)
    return Chart("chart-overhead", "The tracer's own overhead",
                 CAPTIONS["overhead"], _png(figure),
                 "box plots of start-up latency with and without tracing")


def trace_timeline(traces, run_id: str) -> Chart | None:
    """One traced start per target: each phase as the span since the previous kernel event."""
    frame = traces[traces.run == run_id]
    if frame.empty:
        return None
    targets = palette.ordered(frame.target)[::-1]          # the report's order, top down
    phases = list(dict.fromkeys(frame.sort_values("offset").phase))
    colour = {phase: palette.PHASES[i % len(palette.PHASES)] for i, phase in enumerate(phases)}
    figure = _figure(9, 0.55 * len(targets) + 1.9)
    axes = figure.add_subplot()
    labelled: set[str] = set()
    for y, target in enumerate(targets):
        previous = 0.0
        for row in frame[frame.target == target].sort_values("offset").itertuples():
            axes.barh(y, (row.offset - previous) * 1e3, left=previous * 1e3, height=0.6,
                      color=colour[row.phase], edgecolor="white", linewidth=0.5,
                      label=None if row.phase in labelled else row.phase)
            labelled.add(row.phase)
            previous = row.offset
    axes.set_yticks(range(len(targets)), targets)
    _runtime_ticks(axes, targets)
    axes.set_xlabel("time since the first traced event (ms); each span ends at its phase")
    axes.grid(True, axis="x", alpha=0.25)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3 if len(targets) < 4 else -0.15),
                ncol=min(6, len(phases)), fontsize=8, frameon=False)
    return Chart("chart-traces", "Traced start-ups on the kernel's clock",
                 CAPTIONS["traces"], _png(figure),
                 f"timeline of traced start-up phases for {len(targets)} targets")


def comparison_forest(frame) -> Chart | None:
    """Ratios of p50 (new / baseline) with their CI, one row per compared metric."""
    frame = frame.dropna(subset=["ratio"])
    if frame.empty:
        return None
    frame = frame.iloc[::-1]
    figure = _figure(9, 0.32 * len(frame) + 1.4)
    axes = figure.add_subplot()
    for y, row in enumerate(frame.itertuples()):
        colour = palette.WORSE if row.beyond_noise and row.ratio > 1 else \
            palette.BETTER if row.beyond_noise else palette.NEUTRAL
        lo = row.ci_lo if _real(row.ci_lo) else row.ratio
        hi = row.ci_hi if _real(row.ci_hi) else row.ratio
        axes.errorbar(row.ratio, y, xerr=[[row.ratio - lo], [hi - row.ratio]], fmt="o",
                      color=colour, capsize=3)
    axes.set_yticks(range(len(frame)), [row.label for row in frame.itertuples()], fontsize=8)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_ylim(-0.7, len(frame) - 0.3)
    axes.set_xscale("log")
    _plain(axes, "x")
    axes.set_xlabel("new p50 / baseline p50 (log scale; < 1 is faster)")
    axes.grid(True, axis="x", which="both", alpha=0.25)
    return Chart("chart-comparison", "What changed between the runs",
                 CAPTIONS["comparison"], _png(figure),
                 "forest plot of ratios between runs")
