"""``isoinspect compare``: the main job, every measurement then one report (benches/main_job)."""

from __future__ import annotations

import click

from isoinspect.cli.bench_cmd import RESULTS_HELP


@click.command("compare")
@click.option("--quick", is_flag=True, help="Small sizes: about 10 minutes on a 2-core host.")
@click.option("-o", "--output", default="isoinspect-report.html", show_default=True,
              metavar="FILE", help="The HTML report.")
@click.option("--results-dir", metavar="DIR", help=RESULTS_HELP)
@click.option("--json", "json_out", metavar="OUT",
              help="Also write every record of this job as one JSON list (to collect from "
                   "several machines: `isoinspect report a.json b.json`).")
@click.option("--stages", metavar="A,B", help="Only these stages (the report is kept).")
@click.option("--skip", metavar="A,B", help="Leave these stages out.")
@click.option("--list", "list_only", is_flag=True, help="Print the planned stages and exit.")
@click.pass_context
def compare(ctx: click.Context, quick: bool, output: str, results_dir: str | None,
            json_out: str | None, stages: str | None, skip: str | None,
            list_only: bool) -> None:
    """Containers vs gVisor vs a VM on every axis, in one report: start-up (the VM included),
    namespace cost, concurrency, limit verification, overhead, density, exposure and isolation,
    each an isoinspect stage writing its records, then the HTML report of them all. Ctrl-C
    keeps what was measured and still writes its report. The last line is the report's path.
    ISOINSPECT_COMPARE_<STAGE> (e.g. ISOINSPECT_COMPARE_EXPOSURE_IDLE) replaces one stage's
    isoinspect arguments."""
    from isoinspect.benches import main_job
    from isoinspect.benches.record import results_dir as default_results_dir

    plan = main_job.plan(quick, stages, skip)
    root = ctx.find_root()
    known = root.command.list_commands(root) if isinstance(root.command, click.Group) else []
    if list_only:
        for stage in plan:
            seconds = main_job.clock(stage.estimate(quick))
            missing = "" if stage.command in known else "  (missing: skipped)"
            click.echo(f"{stage.name:16} ~{seconds:>7}  isoinspect {' '.join(stage.argv)}"
                       f"{missing}")
        return
    job = main_job.MainJob(plan, quick=quick, results_dir=default_results_dir(results_dir),
                           report_path=output, command_exists=lambda name: name in known)
    result = job.run()
    summary = ", ".join(f"{o.stage.name} {o.status}" + (f" {main_job.clock(o.seconds)}"
                                                        if o.seconds else "")
                        for o in result.outcomes)
    click.echo(f"compare: {main_job.clock(result.seconds)} in all: {summary}", err=True)
    if json_out:
        count = main_job.write_records_json(main_job.measured(result.records), json_out)
        click.echo(f"compare: {count} record(s) written to {json_out}", err=True)
    if result.report:
        click.echo(result.report)
    else:
        click.echo("compare: no report was written", err=True)
    ctx.exit(result.exit_code)


commands = [compare]
