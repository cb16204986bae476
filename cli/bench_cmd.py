"""``isoinspect bench ...``: start-up benchmarks against peer runtimes."""

from __future__ import annotations

import click

from isoinspect.runtime.errors import IsoinspectError


@click.group("bench")
def bench() -> None:
    """Benchmarks: isoinspect against its peers, measured in the same run."""


@bench.command("startup")
@click.option("--runs", default=100, show_default=True, help="Measured rounds per target.")
@click.option("--warmup", default=5, show_default=True, help="Warm-up rounds per target.")
@click.option("--quick", is_flag=True, help="A few runs only, no slow targets.")
@click.option("--json", "json_out", metavar="OUT", help="Write samples and statistics here.")
@click.option("--targets", metavar="A,B", help="Comma-separated target names (default: all).")
@click.option("--workdir", metavar="DIR", help="Prepare images here (default: a temp dir).")
@click.pass_context
def startup(ctx: click.Context, runs: int, warmup: int, quick: bool, json_out: str | None,
            targets: str | None, workdir: str | None) -> None:
    """Start-up latency: host exec, unshare, isoinspect CLI and library, runc."""
    from isoinspect.benches.startup import run_command

    try:
        ctx.exit(run_command(targets, runs, warmup, quick, json_out, workdir))
    except ValueError as exc:
        raise IsoinspectError(str(exc), exit_code=2) from None


commands = [bench]
