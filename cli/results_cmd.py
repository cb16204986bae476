"""``isoinspect results ls|show|compare``: the RunRecords benchmarks wrote."""

from __future__ import annotations

import json
import time

import click

from isoinspect.benches.stats import P99_MIN_RUNS

DIR_HELP = "Records folder (default $ISOINSPECT_RESULTS or /var/lib/isoinspect/results)."


@click.group("results")
def results() -> None:
    """List, show and compare benchmark runs (RunRecords)."""


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) if stamp else "-"


@results.command("ls")
@click.option("--results-dir", metavar="DIR", help=DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.option("--reindex", is_flag=True, help="Rebuild the index from the record files first.")
def ls(results_dir: str | None, as_json: bool, reindex: bool) -> None:
    """Every indexed run, oldest first."""
    from isoinspect.benches import results_index
    from isoinspect.benches.record import results_dir as folder_of

    folder = folder_of(results_dir)
    if reindex:
        results_index.rebuild(folder)
    rows = results_index.list_runs(folder)
    if as_json:
        click.echo(results_index.dumps(rows))
        return
    if not rows:
        click.echo(f"no runs in {folder}")
        return
    click.echo(f"{'RUN ID':<24}  {'CREATED (UTC)':<19}  {'COMMAND':<18}  {'RESULTS':>7}  "
               f"{'STATE':<11}  KINDS")
    for row in rows:
        state = "interrupted" if row["interrupted"] else "finished" if row["finished"] \
            else "running"
        click.echo(f"{row['run_id']:<24}  {_when(row['created']):<19}  "
                   f"{(row['command'] or '')[:18]:<18}  {row['n_results']:>7}  {state:<11}  "
                   f"{row['kinds']}")


def _result_line(result: dict) -> list[str]:
    from isoinspect.benches import stats
    from isoinspect.benches.results_index import metric_of, subject_of

    key = metric_of(result)
    if result.get("concurrency") is not None and result.get("kind") == "namespace_cost":
        key = f"{key}@{result['concurrency']}"
    samples = result.get("samples") or result.get("samples_with") or []
    summary = stats.summarize(samples) if samples else {"n": 0}
    extra = ""
    if result.get("kind") == "exposure" and result.get("status") == "ok":
        extra = (f"{result['total']} host syscalls, {result['distinct']} distinct, "
                 f"{result['per_second']:.0f}/s, {result['failed_share'] * 100:.1f}% failed")
    elif result.get("kind") == "density" and result.get("per_instance_bytes"):
        from isoinspect.benches.density.command import density_cells

        cells = density_cells(result)
        extra = f"{cells['mib']} MiB/instance {cells['ci']}, Nth start {cells['nth']} ms"
        if result.get("reason"):
            extra += f"; {str(result['reason'])[:60]}"
    elif result.get("containers_per_second"):
        extra = f"{result['containers_per_second']:.1f}/s"
    elif result.get("rate_per_s"):
        extra = f"{result['rate_per_s']:.1f}/s"
    elif result.get("ratio") is not None:
        extra = f"x{result['ratio']:.3f}"
    elif result.get("reason"):
        extra = str(result["reason"])[:60]
    return [str(result.get("kind")), subject_of(result), key, str(result.get("status")),
            str(summary["n"]), f"{summary['p50'] * 1e3:.3f}" if summary["n"] else "-",
            f"{summary['p99'] * 1e3:.3f}" if summary["n"] >= P99_MIN_RUNS else "-", extra]


def _overhead_line(result: dict) -> list[str]:
    """bench overhead: the displayed value and the ratios (seconds-per-op columns would read
    as nonsense next to MiB/s); the reason when nothing was measured."""
    from isoinspect.benches.overhead.summary import number, ratio_text

    n = len(result.get("samples") or [])
    value = result.get("value")
    shown = f"{number(value)} {result.get('value_unit', '')}" if n and value is not None else "-"
    ratio = ratio_text(result.get("ratio")) or ("-" if n else str(result.get("reason"))[:60])
    flag = "  harness suspect" if result.get("harness_suspect") else ""
    if result.get("no_device"):
        flag += f"  {result.get('fs')}: fsync does not reach a device"
    return ["overhead", str(result.get("target")), str(result.get("test")),
            str(result.get("status")), str(n), shown, ratio,
            ratio_text(result.get("control_ratio")) + flag]


def _echo_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


@results.command("show")
@click.argument("ref", default="latest")
@click.option("--results-dir", metavar="DIR", help=DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@click.option("--goals", is_flag=True, help="Also print the project's own goals.")
def show(ref: str, results_dir: str | None, as_json: bool, goals: bool) -> None:
    """One run: machine, versions, capabilities and a line per result (REF: path, run id,
    prefix or latest)."""
    from isoinspect.benches.record import load

    data = load(ref, results_dir)
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    machine = data.get("machine") or {}
    click.echo(f"run {data['run_id']}: {data.get('command')}, created {_when(data.get('created'))}"
               f", finished {_when(data.get('finished'))}"
               + ("  [INTERRUPTED]" if data.get("interrupted") else ""))
    click.echo(f"machine: kernel {machine.get('kernel')}, {machine.get('cpu')}, "
               f"{machine.get('cpus')} CPUs, cgroups {machine.get('cgroup_mode')}, commit "
               f"{(machine.get('commit') or '?')[:12]}")
    versions = data.get("versions") or {}
    if versions:
        click.echo("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    capabilities = data.get("capabilities") or {}
    if capabilities:
        click.echo("capabilities: " + ", ".join(f"{k}={v}" for k, v in capabilities.items()
                                                if not isinstance(v, dict)))
    overhead = [r for r in data["results"] if r.get("kind") == "overhead"]
    rows = [_result_line(r) for r in data["results"] if r.get("kind") != "overhead"]
    if rows or not overhead:
        _echo_table(["KIND", "SUBJECT", "METRIC", "STATUS", "N", "P50 ms", "P99 ms", ""], rows)
    if overhead:
        _echo_table(["KIND", "TARGET", "TEST", "STATUS", "N", "P50 VALUE", "TIME PER OP / HOST",
                     "/ OWN CPU CONTROL"], [_overhead_line(r) for r in overhead])
    if any(0 < len(r.get("samples") or r.get("samples_with") or []) < P99_MIN_RUNS
           for r in data["results"] if r.get("kind") != "overhead"):
        click.echo(f"(P99 is shown from {P99_MIN_RUNS} runs on; '-': fewer runs)")
    for goal in (data.get("goals") or []) if goals else []:
        verdict = "met" if goal["met"] else "NOT met"
        click.echo(f"goal {goal['target']} {goal['metric']}: {goal['goal']}: ratio "
                   f"{goal['ratio']:.3f}: {verdict}")


@results.command("compare")
@click.argument("baseline")
@click.argument("new")
@click.option("--results-dir", metavar="DIR", help=DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def compare_cmd(baseline: str, new: str, results_dir: str | None, as_json: bool) -> None:
    """NEW against BASELINE: p50 ratio with a 95% CI per matching result, beyond noise or
    not (density: MiB per instance, a mean, and the p50 start per target and level)."""
    from isoinspect.benches.compare import compare, format_comparison
    from isoinspect.benches.record import load

    comparison = compare(load(baseline, results_dir), load(new, results_dir))
    click.echo(json.dumps(comparison, indent=1) if as_json else format_comparison(comparison))


commands = [results]
