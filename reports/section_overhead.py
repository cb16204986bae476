"""The report's overhead section (``bench overhead``): the same workload's time per unit of
work in every target against the host, per test, as a table and a chart of ratios."""

from __future__ import annotations

from typing import Sequence

from isoinspect.benches.overhead.summary import (BASELINE, CONTROL, CONTROL_BAND, NO_DEVICE,
                                                 number)
from isoinspect.reports import load
from isoinspect.reports.render import Section
from isoinspect.reports.palette import colour as runtime_color, ordered as runtime_order
from isoinspect.reports.section_parts import (error_bars, filled, frame_of, interval, real,
                                              short, where)
from isoinspect.reports.tables import Cell, Table

ID = "workload-overhead"
#: the workload program's units as printed for a reader
UNITS = {"us": "µs"}
LEAD = (
    "The same workload program (benches/overhead/workload.c) run in every target and on the "
    "host, round by round, interleaved. Each cell is the p50 over rounds of the figure a reader "
    "knows (ns per call, µs per fork, MiB/s), then the ratio of the time per unit of work in "
    "the target to the host's, with its 95% bootstrap interval: 1.0× costs nothing, 2× takes "
    "twice as long, whatever the unit shown (a throughput that halves is 2×). The cpu test is "
    "a pure CPU loop, the control: it should be about 1.0× in every container; a container "
    "outside [{low}, {high}] is flagged as a harness suspect (the machine or the harness, not "
    "the runtime). A VM under emulation (TCG) is slower at everything, so its ratios are also "
    "given over its own cpu ratio (/cpu): what its isolation costs beyond the emulated CPU.")
CAPTION = (
    "One column of markers per test, one colour per target: the ratio of its time per unit of "
    "work to the host's (log scale; above the line at 1 is slower), with the 95% interval as "
    "an error bar. Open markers: a VM's ratio over its own cpu control.")


def section(frames: dict, runs: Sequence[dict]) -> Section:
    return filled(Section(ID, "Workload overhead",
                          lead=LEAD.format(low=CONTROL_BAND[0], high=CONTROL_BAND[1])),
                  frame_of(frames, runs, "overhead", load.overhead),
                  f"No workload overhead measurement (bench overhead) in {where(runs)}.",
                  table=table, findings=findings, notes=notes, chart=ratio_chart)


def _targets(frame) -> list[str]:
    return runtime_order(frame.target)


def _label(frame, target: str) -> str:
    accelerator = next((a for a in frame[frame.target == target].accelerator if a), "")
    return f"{target} ({accelerator})" if accelerator else target


def _is_vm(frame, target: str) -> bool:
    return any(frame[frame.target == target].accelerator)


def cell(row, vm: bool) -> Cell:
    """p50 value + unit, then the ratio to the host (and a VM's over its cpu control)."""
    if row.status != "ok":
        css = {"unsupported": "status-unsupported", "error": "status-error"}
        return Cell(row.status, css.get(row.status, "status-none"), row.reason,
                    short(row.reason, 40))
    unit = UNITS.get(row.value_unit, row.value_unit)
    text = f"{number(row.value)} {unit}".strip() if real(row.value) else "–"
    if row.target == BASELINE:
        return Cell(text, "ref", "the baseline every ratio divides by", "host (1×)")
    note = interval(row.ratio, row.ratio_lo, row.ratio_hi)
    if vm and real(row.control):
        note += f" · /{CONTROL} " + interval(row.control, row.control_lo, row.control_hi)
    css, title = "", ""
    if row.no_device:
        css, title = "warn", f"{NO_DEVICE}: it wrote to {row.fs}"
        note += f" · {row.fs}, no device"
    if row.harness_suspect:
        css, title = "warn", (f"harness suspect: this target's {CONTROL} control is outside "
                              f"[{CONTROL_BAND[0]}, {CONTROL_BAND[1]}]× the host's")
        note += " · suspect"
    elif not row.no_device and real(row.ratio_lo) and row.ratio_lo > 1:
        title = "slower than the host beyond noise (the interval excludes 1)"
    return Cell(text, css, title, note)


def table(frame) -> Table:
    targets = _targets(frame)
    header = ["test"] + [_label(frame, t) for t in targets]
    out = Table(header, css="numbers",
                caption="Each cell: p50 value, then × the host's time per unit of work "
                        "[95% CI]; a VM also / its own cpu control")
    for test in dict.fromkeys(frame.test):
        rows = {row.target: row for row in frame[frame.test == test].itertuples()}
        out.rows.append([Cell(test, "ref" if test == CONTROL else "")] + [
            cell(rows[t], _is_vm(frame, t)) if t in rows else Cell("not run", "status-none")
            for t in targets])
    return out


def findings(frame) -> list[str]:
    """The cpu control per target, then each target's largest slowdown beyond noise."""
    out = []
    control = frame[(frame.test == CONTROL) & (frame.status == "ok") &
                    (frame.target != BASELINE)]
    parts = []
    for target in _targets(control):
        row = next(control[control.target == target].itertuples())
        text = f"{_label(frame, target)} {interval(row.ratio, row.ratio_lo, row.ratio_hi)}"
        if row.harness_suspect:
            text += " (harness suspect)"
        elif _is_vm(frame, target):
            text += " (its CPU is virtual)"
        parts.append(text)
    if parts:
        out.append(f"The {CONTROL} control (a pure CPU loop, expected ~1.0× the host's time): "
                   + ", ".join(parts) + ".")
    measured = frame[(frame.status == "ok") & (frame.test != CONTROL) &
                     (frame.target != BASELINE)]
    for target in _targets(measured):
        rows = [r for r in measured[measured.target == target].itertuples()
                if real(r.ratio_lo) and r.ratio_lo > 1]
        if not rows:
            continue
        worst = max(rows, key=lambda r: r.ratio)
        text = (f"{_label(frame, target)}: slowest against the host in {worst.test}, "
                f"{interval(worst.ratio, worst.ratio_lo, worst.ratio_hi)}")
        if _is_vm(frame, target) and real(worst.control):
            text += (f" ({interval(worst.control, worst.control_lo, worst.control_hi)} over "
                     f"its own {CONTROL} ratio)")
        out.append(text + f"; slower beyond noise in {len(rows)} of "
                   f"{len(measured[measured.target == target])} tests.")
    return out


def notes(frame) -> list[str]:
    """Targets and cells that did not measure, with why (once per target and reason)."""
    seen: dict[str, None] = {}
    for row in frame[frame.status != "ok"].itertuples():
        tests = frame[(frame.target == row.target) & (frame.reason == row.reason) &
                      (frame.status == row.status)]
        scope = "every test" if len(tests) == len(frame[frame.target == row.target]) \
            else row.test
        seen[f"{row.target} · {scope}: {row.status}" +
             (f": {row.reason}" if row.reason else "")] = None
    for row in frame[frame.no_device & (frame.status == "ok")].itertuples():
        seen[f"{row.target} · {row.test}: {NO_DEVICE} — it wrote to {row.fs}, so its figure is "
             "memory's, not a disk's (faster than the host's is no gain)"] = None
    for target in dict.fromkeys(frame[frame.harness_suspect].target):
        seen[f"{target}: harness suspect — its {CONTROL} control is outside "
             f"[{CONTROL_BAND[0]}, {CONTROL_BAND[1]}]× the host's; its ratios may reflect "
             "the machine (CPU contention) rather than the runtime"] = None
    return list(seen)


def ratio_chart(frame):
    """Ratios to the host per test on a log axis, one marker per target, CIs as error bars."""
    from isoinspect.reports.charts import Chart, _figure, _plain, _png

    data = frame[(frame.status == "ok") & (frame.target != BASELINE)]
    data = data[[real(r) and r > 0 for r in data.ratio]]
    if data.empty:
        return None
    tests = list(dict.fromkeys(frame.test))
    targets = _targets(data)
    figure = _figure(9, 4.4)
    axes = figure.add_subplot()
    width = 0.7 / max(len(targets), 1)
    for index, target in enumerate(targets):
        rows = {r.test: r for r in data[data.target == target].itertuples()}
        offset = (index - (len(targets) - 1) / 2) * width
        xs = [tests.index(t) + offset for t in rows]
        values = [r.ratio for r in rows.values()]
        colour = runtime_color(target)
        axes.errorbar(xs, values, yerr=error_bars(values, [r.ratio_lo for r in rows.values()],
                                                  [r.ratio_hi for r in rows.values()]),
                      fmt="o", color=colour, capsize=3, label=_label(frame, target))
        control = [(x, r) for x, r in zip(xs, rows.values()) if _is_vm(frame, target)
                   and real(r.control) and r.control > 0]
        if control:
            axes.plot([x + width / 3 for x, _ in control], [r.control for _, r in control],
                      "o", markerfacecolor="white", color=colour,
                      label=f"{_label(frame, target)} / own {CONTROL}")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(tests)), tests, rotation=30 if len(tests) > 8 else 0,
                    ha="right" if len(tests) > 8 else "center")
    axes.set_xlim(-0.6, len(tests) - 0.4)
    axes.set_yscale("log")
    _plain(axes, "y")
    axes.set_xlabel("workload test")
    axes.set_ylabel("time per unit of work / host's (log scale)")
    axes.grid(True, axis="y", which="both", alpha=0.25)
    handles, labels = axes.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: ("/ own" in labels[i], i))
    axes.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8,
                frameon=False, loc="upper center", ncol=min(len(labels), 5),
                bbox_to_anchor=(0.5, -0.32 if len(tests) > 8 else -0.16))
    return Chart("chart-workload-overhead", "Overhead against the host, per test", CAPTION,
                 _png(figure), f"ratios to the host for {len(targets)} targets and "
                               f"{len(tests)} tests")
