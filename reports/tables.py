"""Tables of the report, built from the DataFrames of load.py.

A table is plain data (header + rows of cells with an optional CSS class and tooltip); the
template renders it with autoescaping, so text from a record can never inject markup.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any

from isoinspect.benches import stats

#: start-up targets that are isoinspect itself, in order of preference as the ratio reference
REFERENCES = ("isoinspect-cli", "isoinspect-lib")
STATUS_ORDER = ("PASS", "FAIL", "ERROR", "UNSUPPORTED")
#: a control runtime's verdicts (limits left out on purpose): what its badge and cell say
CONTROL_STATUS = {"FAIL": "FAIL (expected)", "PASS": "PASS (control!)"}
BADGE_ORDER = (*STATUS_ORDER, *CONTROL_STATUS.values())


@dataclass
class Cell:
    text: str
    css: str = ""
    title: str = ""
    note: str = ""      # a second, smaller line under the text
    swatch: str = ""    # a runtime's colour (palette.colour), drawn before the text


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""
    css: str = ""
    title: str = ""     # a heading above the table


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def ms(seconds: Any) -> str:
    """Seconds as milliseconds with about three significant digits; '–' when absent."""
    if missing(seconds):
        return "–"
    value = seconds * 1e3
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def compared(value: Any, unit: str) -> str:
    """A compared row's statistic: seconds in ms, bytes in MiB (benches.compare's units)."""
    if unit == "bytes":
        return "–" if missing(value) else f"{number(value / 2 ** 20)} MiB"
    return ms(value)


def us(seconds: Any) -> str:
    """Seconds as microseconds (namespace operations are µs-scale)."""
    return "–" if missing(seconds) else f"{seconds * 1e6:,.1f}"


def rate(value: Any) -> str:
    return "–" if missing(value) else f"{value:,.0f}"


def number(value: Any, digits: int = 3) -> str:
    if missing(value):
        return "–"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}g}"
    return str(value)


def factor(value: float) -> str:
    """A ratio with three significant digits (0.0229, 0.683, 1.00, 8.26, 82.2), whole from 100
    (1,189, never 1.19e+03)."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if 1 <= value < 10 else f"{value:.3g}"


def ratio_text(ratio: float, lo: float | None, hi: float | None) -> str:
    if missing(lo) or missing(hi):
        return f"{factor(ratio)}×"
    return f"{factor(ratio)}× [{factor(lo)}, {factor(hi)}]"


def _when(timestamp: Any) -> str:
    if missing(timestamp) or not isinstance(timestamp, (int, float)):
        return "–"
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def runtime_cell(name: str, css: str = "", note: str = "") -> Cell:
    """A runtime's (or target's) name with its colour swatch: the charts' colour."""
    from isoinspect.reports import palette

    return Cell(name, css, note=note, swatch=palette.colour(name))


def machine_table(run: dict, label: str = "") -> Table:
    """The machine: host, kernel, CPU, memory, cgroup mode, Python and the source commit
    (``label``: which of several machines, as the other tables and charts name it)."""
    machine = run.get("machine") or {}
    memory = machine.get("memory_bytes")
    rows = [("host", machine.get("host")), ("kernel", machine.get("kernel")),
            ("arch", machine.get("arch")),
            ("CPU", f"{machine.get('cpu', '?')} × {machine.get('cpus', '?')}"),
            ("memory", f"{memory / 2 ** 30:.1f} GiB" if isinstance(memory, (int, float))
             else None),
            ("cgroup mode", machine.get("cgroup_mode")), ("python", machine.get("python")),
            ("commit", (machine.get("commit") or "")[:12] or None)]
    table = Table(["", ""], css="facts", title=f"Machine {label}".strip())
    for name, value in rows:
        if name == "host" and value is None:
            continue    # records from before the host name was recorded
        table.rows.append([Cell(name, "key"), Cell("–" if value is None else str(value))])
    return table


def runs_table(view: dict) -> Table:
    """The runs the report is made of, oldest first; an interrupted run is flagged."""
    machines = any(source.get("machine") for source in view.get("sources", []))
    table = Table(["run", *(["machine"] if machines else []), "command", "started", "finished",
                   "results"], css="numbers", title="Runs in this report")
    kernels = {source["kernel"] for source in view.get("sources", [])}
    for source in view.get("sources", []):
        finished = "interrupted" if source["interrupted"] else _when(source["finished"])
        table.rows.append([Cell(source["run_id"]),
                           *([Cell(source["machine"], "text")] if machines else []),
                           Cell(source["command"], "text"),
                           Cell(_when(source["created"]), "text"),
                           Cell(finished, "text bad" if source["interrupted"] else "text"),
                           Cell(str(source["results"]))])
    if machines:
        table.caption = ("These runs come from several machines: every runtime is named with "
                         "its machine (runtime @ host (kernel)), side by side.")
    elif len(kernels) > 1:
        table.caption = ("These runs come from different kernels (" +
                         ", ".join(sorted(map(str, kernels))) + "): compare with care.")
    return table


def capability_table(run: dict) -> Table:
    """What the machine could do: probe mode, KVM or TCG, which probes ran, runtime versions."""
    caps = dict(run.get("capabilities") or {})
    table = Table(["", ""], css="facts", title="Capabilities")
    probe_mode = caps.pop("probe_mode", None)
    table.rows.append([Cell("eBPF probe mode", "key"), Cell(probe_mode or "not recorded")])
    kvm, accel = caps.pop("kvm", None), caps.pop("accelerator", None)
    vm = accel or ("kvm" if kvm else "tcg" if kvm is False else None)
    why = caps.pop("accelerator_reason", "")
    table.rows.append([Cell("VM accelerator", "key"),
                       Cell(vm.upper() if vm else "not recorded", "warn" if vm == "tcg" else "",
                            "TCG emulates the CPU: VM figures are far slower than with KVM"
                            if vm == "tcg" else "", note=str(why))])
    probes = caps.pop("probes", None)
    if isinstance(probes, dict):
        ran = [name for name, ok in probes.items() if ok]
        not_ran = [name for name, ok in probes.items() if not ok]
        table.rows.append([Cell("probes", "key"),
                           Cell(", ".join(ran) or "none",
                                note=f"not available: {', '.join(not_ran)}" if not_ran else "")])
    elif probes:
        table.rows.append([Cell("probes", "key"), Cell(", ".join(map(str, probes)))])
    for name, value in sorted(caps.items()):
        if isinstance(value, dict):   # e.g. unsupported: {runtime: why}
            value = "; ".join(f"{k}: {v}" for k, v in value.items()) or "none"
        table.rows.append([Cell(name.replace("_", " "), "key"), Cell(str(value))])
    versions = run.get("versions") or {}
    if versions:
        table.rows.append([Cell("runtimes", "key"),
                           Cell(", ".join(f"{k} {v}" for k, v in sorted(versions.items())))])
    return table


def reference_target(summary, metric: str) -> str | None:
    """The isoinspect target the others are compared with for ``metric``."""
    ok = summary[(summary.metric == metric) & (summary.status == "ok") & (summary.n > 0)]
    names = list(ok.target)
    for name in REFERENCES:
        if name in names:
            return name
    return next((n for n in names if n.startswith("isoinspect")), None)


def _samples(run: dict, kind: str, **match: Any) -> tuple[list[float], list[int]]:
    for r in run["results"]:
        if r.get("kind") == kind and all(r.get(k) == v for k, v in match.items()):
            samples = r.get("samples") or []
            return samples, r.get("rounds") or list(range(len(samples)))
    return [], []


def startup_ratio(run: dict, metric: str, target: str, reference: str) -> dict | None:
    """p50(target) / p50(reference) with a bootstrap CI (paired by round when they align)."""
    top, top_rounds = _samples(run, "startup", target=target, metric=metric)
    bottom, bottom_rounds = _samples(run, "startup", target=reference, metric=metric)
    if not top or not bottom:
        return None
    return stats.ratio_ci(top, bottom, paired=top_rounds == bottom_rounds)


def headline_tables(run: dict, summary) -> list[Table]:
    """Per metric: every target's p50 (CI), p99 and its ratio to isoinspect, in the report's
    runtime order (palette.ORDER)."""
    from isoinspect.reports import palette

    tables = []
    summary = summary[summary.run == run["run_id"]]
    for metric in dict.fromkeys(summary.metric):
        rows = summary[summary.metric == metric]
        rows = rows.iloc[sorted(range(len(rows)), key=lambda i: palette.key(rows.target.iloc[i]))]
        reference = reference_target(summary, metric)
        table = Table(["target", "status", "runs", "p50 ms", "p50 95% CI ms", "p99 ms",
                       f"× {reference or 'isoinspect'} (p50, 95% CI)", "notes"],
                      caption=f"Start-up latency, metric {metric!r} (lower is better)",
                      css="numbers")
        for row in rows.itertuples():
            ok = row.status == "ok" and row.n > 0
            ratio = startup_ratio(run, metric, row.target, reference) \
                if ok and reference else None
            if row.target == reference:
                ratio_cell = Cell("1 (reference)", "ref")
            elif ratio:
                ratio_cell = Cell(ratio_text(ratio["ratio"], *ratio["ci"]))
            else:
                ratio_cell = Cell("–")
            notes = "; ".join(x for x in (row.label, row.version.split(";")[0], row.reason) if x)
            table.rows.append([
                runtime_cell(row.target, "ref" if row.target == reference else "", row.notes),
                Cell(row.status, "text ok" if ok else "text warn"), Cell(str(row.n)),
                Cell(ms(row.p50)),
                Cell(f"{ms(row.p50_lo)} – {ms(row.p50_hi)}" if ok else "–"),
                Cell(ms(row.p99)), ratio_cell, Cell(notes, "text")])
        tables.append(table)
    return tables


def goal_text(goal: dict) -> str:
    """One goal the benchmark judged (e.g. "p50 <= 0.1 x runc p50"), with its ratio and CI."""
    text = f"Goal for {goal.get('target', '?')} ({goal.get('metric', '?')}): {goal['goal']}"
    ratio, ci = goal.get("ratio"), goal.get("ci") or [None, None]
    if isinstance(ratio, (int, float)):
        text += f": measured {ratio_text(ratio, *ci) if None not in ci else factor(ratio)}"
    verdict = {True: "met", False: "not met"}.get(goal.get("met"))
    return f"{text}: {verdict}." if verdict else f"{text}."


#: units shown scaled: unit -> (divisor, unit shown)
SCALED_UNITS = {"bytes": (2 ** 20, "MiB"), "bytes/s": (2 ** 20, "MiB/s")}


def scaled(value: Any, unit: str) -> Any:
    """A figure in ``unit`` as shown (bytes in MiB); anything not a number is left alone."""
    divisor = SCALED_UNITS.get(unit, (1, unit))[0]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value / divisor if is_number and divisor != 1 else value


def shown_unit(unit: str) -> str:
    return SCALED_UNITS.get(unit, (1, unit))[1]


def shown_status(row: Any) -> str:
    """The verdict as the report shows it: a control's FAIL is expected, its PASS is not."""
    return CONTROL_STATUS.get(row.status, row.status) if getattr(row, "control", False) \
        else row.status


def status_css(status: str) -> str:
    return {"FAIL (expected)": "expected", "PASS (control!)": "control-pass"}.get(
        status, status.lower())


def verify_cell(row: Any) -> Cell:
    figures = ""
    if not missing(row.measured):
        figures = f"{number(scaled(row.measured, row.unit))}"
        if not missing(row.expected):
            tolerance = (f" ± {number(scaled(row.tolerance, row.unit))}"
                         if not missing(row.tolerance) else "")
            figures += f" vs {number(scaled(row.expected, row.unit))}{tolerance}"
        figures += f" {shown_unit(row.unit)}".rstrip()
    status = shown_status(row)
    return Cell(status, f"status-{status_css(status)}", row.why, figures or row.why)


def verify_matrix(verify, run_id: str) -> Table | None:
    """Limit × runtime: PASS / FAIL / UNSUPPORTED / ERROR with measured vs expected."""
    frame = verify[verify.run == run_id]
    if frame.empty:
        return None
    from isoinspect.reports import palette

    runtimes = palette.ordered(frame.runtime)
    table = Table(["limit", "check", *runtimes], css="matrix",
                  caption="Each cell: the verdict, then measured vs expected ± tolerance; "
                          "hover (or see the notes) for why.")
    for (limit, check), group in frame.groupby(["limit", "check"], sort=False):
        cells = {row.runtime: verify_cell(row) for row in group.itertuples()}
        table.rows.append([Cell(limit, "key"), Cell(check, "key"),
                           *[cells.get(r, Cell("not run", "status-none")) for r in runtimes]])
    return table


def verify_counts(verify, run_id: str) -> dict[str, int]:
    """Verdicts counted as shown: the control's expected FAILs apart from real FAILs."""
    frame = verify[verify.run == run_id]
    counts: dict[str, int] = {}
    for row in frame.itertuples():
        status = shown_status(row)
        counts[status] = counts.get(status, 0) + 1
    return {s: counts[s] for s in BADGE_ORDER if counts.get(s)}


def namespace_table(frame) -> Table:
    """Per namespace type and concurrency level: create and destroy p50 (create's 95 % CI) and
    create+destroy cycles per second; the most expensive type first."""
    table = Table(["namespace", "creators at once", "create p50 µs", "create 95% CI µs",
                   "destroy p50 µs", "cycles / s"], css="numbers",
                  caption="One namespace type alone, p50 of the kernel's cost per level of "
                          "concurrency; 'none (baseline)' is unshare(0), the bare syscall")
    frame = frame.drop_duplicates(["namespace", "op", "concurrency"], keep="last")
    create = frame[frame.op == "create"]
    lowest = create[create.concurrency == create.concurrency.min()] if not create.empty \
        else create
    order = list(lowest.sort_values("p50", ascending=False).namespace)
    order += [n for n in dict.fromkeys(frame.namespace) if n not in order]
    for namespace in order:
        rows = frame[frame.namespace == namespace]
        for level in sorted(set(rows.concurrency)):
            at = rows[rows.concurrency == level].set_index("op")
            made = at.loc["create"] if "create" in at.index else None
            gone = at.loc["destroy"] if "destroy" in at.index else None
            ci = (f"{us(made.p50_lo)} – {us(made.p50_hi)}" if made is not None
                  and not missing(made.p50_lo) and not missing(made.p50_hi) else "–")
            rate_per_s = made.rate_per_s if made is not None else (
                gone.rate_per_s if gone is not None else None)
            table.rows.append([Cell(namespace_name(namespace)), Cell(str(int(level))),
                               Cell(us(None if made is None else made.p50)), Cell(ci),
                               Cell(us(None if gone is None else gone.p50)),
                               Cell(rate(rate_per_s))])
    return table


def namespace_name(namespace: str) -> str:
    from isoinspect.reports import palette

    runtime = palette.runtime_of(namespace)
    shown = "none (baseline)" if runtime == "none" else runtime
    return palette.machine_label(shown, palette.machine_of(namespace))


def overhead_table(frame) -> Table:
    def ratio(record: dict) -> str:
        if missing(record["ratio"]):
            return "–"
        lo, hi = record["ci_lo"], record["ci_hi"]
        return ratio_text(record["ratio"], None if missing(lo) else lo,
                          None if missing(hi) else hi)

    table = Table(["target", "status", "p50 without ms", "p50 with ms", "ratio (95% CI)",
                   "BPF µs per traced run", "events", "lost"], css="numbers",
                  caption="The same start-up with and without tracing: " + "; ".join(
                      dict.fromkeys(frame.setup)))
    from isoinspect.reports import palette

    for record in sorted(frame.to_dict("records"), key=lambda r: palette.key(r["target"])):
        bpf = record["bpf_us_per_run"]
        untraced = record.get("bpf_untraced_us_per_run")
        table.rows.append([runtime_cell(record["target"] or "–"),
                           Cell(record["status"], "text" if record["status"] == "ok" else
                                "text warn", note=record.get("reason") or ""),
                           Cell(ms(record["p50_without"])), Cell(ms(record["p50_with"])),
                           Cell(ratio(record)),
                           Cell("–" if missing(bpf) else f"{bpf:.0f}",
                                note="" if missing(untraced) else
                                f"untraced runs: {untraced:.0f}"),
                           Cell(number(record["events"], 9)),
                           Cell(number(record["lost"], 9),
                                "bad" if not missing(record["lost"]) and record["lost"] else "")])
    return table


def trace_table(frame) -> Table:
    table = Table(["target", "phase", "at ms", "since previous ms"], css="numbers",
                  caption="Kernel timestamps of one traced start, from its first event")
    from isoinspect.reports import palette

    for target in palette.ordered(frame.target):
        previous = 0.0
        for record in frame[frame.target == target].to_dict("records"):
            table.rows.append([runtime_cell(target), Cell(record["phase"], "text"),
                               Cell(ms(record["offset"])),
                               Cell(ms(record["offset"] - previous))])
            previous = record["offset"]
    return table
