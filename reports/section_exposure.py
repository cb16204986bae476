"""The report's exposure section (``isoinspect exposure``): the host system calls each runtime's
processes made for the same workload, next to what each was allowed; for the workload program
of bench overhead (``--workload overhead``), host syscalls per operation of each of its tests."""

from __future__ import annotations

from typing import Sequence

from isoinspect.benches.exposure import per_op_text
from isoinspect.reports import load
from isoinspect.reports.render import Section
from isoinspect.reports.palette import colour as runtime_color, ordered as runtime_order
from isoinspect.reports.section_parts import filled, frame_of, real, short, where
from isoinspect.reports.tables import Cell, Table, rate

ID = "exposure"
TOP_SHOWN = 5
LEAD = (
    "Every system call that reached the host kernel from a runtime's processes while they ran "
    "the same workload, counted in the kernel (eBPF, per call and per result): the container's "
    "cgroup for runc, Docker and isoinspect, the Sentry and Gofer for gVisor (runsc), the QEMU "
    "process for the VM. Fewer calls, and fewer distinct ones, mean less of the host kernel "
    "reached. Beside the counts, what the unit was allowed: its seccomp filter (and how many "
    "syscalls it allows, where readable), its effective capabilities, the namespaces it "
    "shares with the host and whether it runs on the host kernel.")
CAPTION = (
    "Host system calls per runtime for each workload (log scale), one colour per runtime. A "
    "runtime that answers the workload's calls itself (gVisor's Sentry) can still make more "
    "host calls than a container: the count is what reaches the host kernel, not what the "
    "workload asked for. Each bar is labelled with its count (a zero has no bar on a log "
    "axis).")


PER_OP_CAPTION = (
    "Host system calls per operation of each test of the workload program (bench overhead's), "
    "over the window between the program's pauses (warm-up operations included), and how many "
    "distinct system calls that window reached (hover: the top ones per operation). 1.000 is "
    "one host call per operation, the bare system call; below 1 the runtime answered the "
    "workload's calls itself.")


def section(frames: dict, runs: Sequence[dict]) -> Section:
    out = filled(Section(ID, "Host kernel exposure", lead=LEAD),
                 frame_of(frames, runs, "exposure", load.exposure),
                 f"No exposure measurement (isoinspect exposure) in {where(runs)}.",
                 table=table, findings=findings, notes=notes, chart=syscalls_chart)
    per_op = frame_of(frames, runs, "exposure_per_op", load.exposure_per_op)
    if not out.empty and not per_op.empty:
        out.findings += per_op_findings(per_op)
        out.tables.append(per_op_table(per_op))
    return out


def notes(frame) -> list[str]:
    return [f"{row.runtime} · {row.workload}: {row.status}"
            + (f": {row.reason}" if row.reason else "")
            for row in frame[frame.status != "ok"].itertuples()]


def _rows(frame) -> list:
    """Grouped by workload (in record order), runtimes in the report's order."""
    out = []
    for workload in dict.fromkeys(frame.workload):
        part = frame[frame.workload == workload]
        out += [next(part[part.runtime == r].itertuples()) for r in runtime_order(part.runtime)]
    return out


def kernel_text(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value) if value not in (None, "") else "–"


def seccomp_text(row) -> str:
    if not row.seccomp:
        return "–"
    return f"{row.seccomp}, {int(row.seccomp_allowed)} allowed" \
        if real(row.seccomp_allowed) else row.seccomp


def top_text(row) -> str:
    return ", ".join(f"{name} {calls:,}" if real(calls) else name
                     for name, calls in row.top[:TOP_SHOWN]) or "–"


def table(frame) -> Table:
    out = Table(["runtime", "workload", "host syscalls", "distinct", "per s", "failed",
                 f"top {TOP_SHOWN} syscalls", "seccomp", "caps", "namespaces shared with host",
                 "host kernel"], css="numbers",
                caption="Host system calls of each runtime's processes over the workload's "
                        "window, then what the unit was allowed (hover: profile, capability "
                        "names)")
    for row in _rows(frame):
        if row.status != "ok":
            figures = [Cell(row.status, "status-error", row.reason, short(row.reason, 60)),
                       *[Cell("–") for _ in range(5)]]
        else:
            failed = f"{row.failed_share:.1%}" if real(row.failed_share) else "–"
            figures = [Cell(rate(row.total)), Cell(rate(row.distinct)),
                       Cell(rate(row.per_second)), Cell(failed), Cell(top_text(row), "text")]
        shared = ", ".join(row.namespaces_shared) or "none"
        kernel = kernel_text(row.shares_host_kernel)
        out.rows.append([
            Cell(row.runtime), Cell(row.workload, "text"), *figures,
            Cell(seccomp_text(row), "text", row.seccomp_profile),
            Cell(str(int(row.capabilities)) if real(row.capabilities) else "–", "",
                 ", ".join(row.capability_names)),
            Cell(shared, "text"),
            Cell(kernel, "text")])
    return out


def findings(frame) -> list[str]:
    """Per workload: runtimes from fewest host syscalls up."""
    out = []
    ok = frame[(frame.status == "ok") & [real(t) for t in frame.total]]
    for workload in dict.fromkeys(ok.workload):
        part = ok[ok.workload == workload].sort_values("total")
        if len(part) < 2:
            row = part.iloc[0]
            out.append(f"{workload}: {row.runtime} made {rate(row.total)} host syscalls "
                       f"({rate(row.distinct)} distinct).")
            continue
        out.append(f"{workload}: host syscalls from fewest, " + ", ".join(
            f"{r.runtime} {rate(r.total)} ({rate(r.distinct)} distinct)"
            for r in part.itertuples()) + ".")
    return out


def per_op_cell(row) -> Cell:
    """``calls/op`` over ``N distinct``; the program's status where it did not measure."""
    if not real(row.per_op):
        css = "status-unsupported" if row.status == "unsupported" else "status-error"
        return Cell(row.status or "–", css, row.reason, short(row.reason, 30))
    top = ", ".join(f"{name} {per_op:.3g}/op" if real(per_op) else name
                    for name, per_op in row.top[:TOP_SHOWN])
    distinct = f"{int(row.distinct)} distinct" if real(row.distinct) else ""
    return Cell(per_op_text(row.per_op), "", top, distinct)


def per_op_table(frame) -> Table:
    """Rows: the program's tests in its order; columns: runtimes (workload noted when the
    runs hold more than the ``overhead`` one)."""
    columns = [(runtime, workload) for workload in dict.fromkeys(frame.workload)
               for runtime in runtime_order(frame[frame.workload == workload].runtime)]
    several = len({w for _, w in columns}) > 1
    out = Table(["test"] + [f"{r} ({w})" if several else r for r, w in columns],
                css="numbers", title="Host syscalls per workload operation",
                caption=PER_OP_CAPTION)
    for test in dict.fromkeys(frame.test):
        part = frame[frame.test == test]
        cells = []
        for runtime, workload in columns:
            rows = list(part[(part.runtime == runtime) & (part.workload == workload)]
                        .itertuples())
            cells.append(per_op_cell(rows[0]) if rows else Cell("not run", "status-none"))
        out.rows.append([Cell(test, "text")] + cells)
    return out


def per_op_findings(frame) -> list[str]:
    """Per runtime, the median over tests of host syscalls per operation, and the test that
    reached the most distinct host syscalls: one sentence for the table's gist."""
    import statistics

    ok = frame[[real(p) for p in frame.per_op]]
    parts, widest = [], []
    for runtime in runtime_order(ok.runtime):
        rows = list(ok[ok.runtime == runtime].itertuples())
        parts.append(f"{runtime} {per_op_text(statistics.median(r.per_op for r in rows))} "
                     f"({len(rows)} tests)")
        top = max((r for r in rows if real(r.distinct)), key=lambda r: r.distinct, default=None)
        if top is not None:
            widest.append(f"{runtime} {int(top.distinct)} ({top.test})")
    if not parts:
        return []
    out = [f"Host syscalls per workload operation, median over the program's tests: "
           f"{', '.join(parts)}."]
    if widest:
        out.append("Most distinct host syscalls reached by one test: " + ", ".join(widest)
                   + ".")
    return out


def syscalls_chart(frame):
    """Grouped bars: host syscalls per runtime per workload, log y (zeros written as text)."""
    from matplotlib.ticker import FuncFormatter

    from isoinspect.reports.charts import Chart, _figure, _png

    data = frame[(frame.status == "ok") & [real(t) for t in frame.total]]
    if data.empty:
        return None
    workloads = list(dict.fromkeys(data.workload))
    runtimes = runtime_order(data.runtime)
    figure = _figure(9, 4.2)
    axes = figure.add_subplot()
    labelled: set[str] = set()
    for x, workload in enumerate(workloads):
        part = data[data.workload == workload]
        present = runtime_order(part.runtime)
        width = min(0.8 / len(present), 0.22)
        for index, runtime in enumerate(present):
            total = float(part[part.runtime == runtime].total.iloc[0])
            at = x + (index - (len(present) - 1) / 2) * width
            colour = runtime_color(runtime)
            label = None if runtime in labelled else runtime
            labelled.add(runtime)
            if total > 0:
                axes.bar(at, total, width, color=colour, label=label)
            else:       # no bar on a log axis: a tick at its foot, and the label says 0
                axes.plot([at], [1], "_", markersize=14, markeredgewidth=3, color=colour,
                          label=label)
            axes.text(at, max(total, 1) * 1.15, f"{total:,.0f}", ha="center", va="bottom",
                      fontsize=8, color="#333")
    axes.set_yscale("log")
    axes.set_ylim(0.5, max(max(data.total), 10) * 6)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_xticks(range(len(workloads)), workloads)
    axes.set_xlim(-0.6, len(workloads) - 0.4)
    axes.set_xlabel("workload")
    axes.set_ylabel("host system calls (log scale)")
    axes.grid(True, axis="y", which="major", alpha=0.25)
    handles, labels = axes.get_legend_handles_labels()
    order = [labels.index(r) for r in runtimes if r in labels]
    axes.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8,
                frameon=False, ncol=min(len(runtimes), 6), loc="upper left")
    return Chart("chart-exposure", "Host system calls per runtime", CAPTION, _png(figure),
                 f"bar chart of host syscalls for {len(runtimes)} runtimes and "
                 f"{len(workloads)} workloads")
