"""``isoinspect isolation``: the isolation matrix of every runtime, from running instances."""

from __future__ import annotations

import click


@click.command("isolation")
@click.option("--runtime", default="all", show_default=True, metavar="NAME",
              help="isoinspect, runc, runsc, docker, qemu, a comma list, or all.")
@click.option("--json", "json_out", metavar="OUT", help="Write the results as JSON to OUT "
              "('-': stdout instead of the table).")
@click.option("--results-dir", metavar="DIR", help="Where the run record goes (default "
              "$ISOINSPECT_RESULTS or /var/lib/isoinspect/results).")
@click.pass_context
def isolation(ctx: click.Context, runtime: str, json_out: str | None,
              results_dir: str | None) -> None:
    """Start one instance (sleep) of each runtime and measure what its workload can reach:
    namespaces, capabilities, seccomp, no_new_privs, masked and read-only paths, whether the
    host kernel is shared, with a verdict against Docker's default container."""
    from isoinspect.benches.isolation import run_command

    ctx.exit(run_command(runtime, json_out, results_dir))


commands = [isolation]
