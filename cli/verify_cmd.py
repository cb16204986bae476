"""``isoinspect verify``: prove each runtime enforces the limits it promises, actively."""

from __future__ import annotations

import click


@click.command("verify")
@click.option("--runtime", "runtime", default="isoinspect", show_default=True,
              metavar="NAME", help="isoinspect, runc, runsc, docker, control (isoinspect with "
              "the limits left out: its checks must FAIL), a comma list, or all.")
@click.option("--checks", metavar="A,B", help="Families (memory,cpu,cpuset,pids,io) or "
              "check names (e.g. cpu-shares); default: all.")
@click.option("--json", "json_out", is_flag=True, help="Print the results as JSON.")
@click.option("--quick", is_flag=True, help="Shorter measuring windows (1.5 s).")
@click.option("--results-dir", metavar="DIR", help="Where the run record goes (default "
              "$ISOINSPECT_RESULTS or /var/lib/isoinspect/results).")
@click.option("--workdir", metavar="DIR", help="Prepare images and bundles here (default: a "
              "temp dir, removed at the end).")
@click.option("--trace/--no-trace", default=True, show_default=True,
              help="Also watch OOM kills and EAGAIN forks with the inspector's eBPF probes.")
@click.pass_context
def verify(ctx: click.Context, runtime: str, checks: str | None, json_out: bool, quick: bool,
           results_dir: str | None, workdir: str | None, trace: bool) -> None:
    """Start containers with limits, drive a workload against each and report whether the
    kernel enforced it: PASS / FAIL / UNSUPPORTED with measured, expected and tolerance.
    Exits 1 if a real runtime FAILs or a control check PASSes."""
    from isoinspect.benches.verify.verify import run_command

    ctx.exit(run_command(runtime, checks, quick, json_out, results_dir, workdir, trace))


commands = [verify]
