"""Everyday container commands, Docker's way: ``logs``, ``start``, ``restart``, ``stats``,
``top``. Arguments only; the work is in runtime/ (container_logs, restart, container_stats,
container_top)."""

from __future__ import annotations

import sys
import time

import click

from isoinspect.cli.interrupt import ends_on_interrupt
from isoinspect.cli.listing import emit, format_options
from isoinspect.cli.sizes import bytes_size, human_size
from isoinspect.runtime.errors import IsoinspectError


def _runtime(ctx: click.Context):
    from isoinspect.cli.main import _runtime as runtime_of  # main imports this module

    return runtime_of(ctx)


def _output(timestamps: bool = False):
    from isoinspect.runtime.container_logs import Output

    return Output(sys.stdout.buffer, sys.stderr.buffer, timestamps)


def _tail(value: str) -> int | None:
    """Docker's --tail: a count, anything else (``all``, ``-1``, ``x``) is every line."""
    return int(value) if value.isdigit() else None


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the container exits.")
@click.option("--tail", default="all", metavar="N|all", show_default=True,
              help="Only the last N lines.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with its time "
              "(RFC 3339, nanoseconds, UTC).")
@click.option("--since", metavar="TIME", help="Lines written after TIME: a date-time "
              "(2026-01-02T15:04:05Z), Unix seconds, or a duration before now (10m, 1h30m).")
@click.option("--until", metavar="TIME", help="Lines written before TIME (same forms).")
@click.argument("container")
@click.pass_context
@ends_on_interrupt
def logs_cmd(ctx: click.Context, follow: bool, tail: str, timestamps: bool, since: str | None,
             until: str | None, container: str) -> None:
    """Print a container's output: its stdout to stdout, its stderr to stderr."""
    from isoinspect.runtime.container_logs import show_logs
    from isoinspect.runtime.log_reader import LogQuery
    from isoinspect.runtime.timestamps import parse_time

    query = LogQuery(tail=_tail(tail),
                     since_ns=parse_time(since, "since") if since else None,
                     until_ns=parse_time(until, "until") if until else None)
    show_logs(_runtime(ctx), container, query, _output(timestamps), follow)


@click.command("start")
@click.option("-a", "--attach", is_flag=True,
              help="Print the container's output until it exits, and exit with its code.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start_cmd(ctx: click.Context, attach: bool, containers: tuple) -> None:
    """Start stopped containers again (same command, limits, files; output logged)."""
    from isoinspect.cli.main import _for_each
    from isoinspect.runtime import restart

    runtime = _runtime(ctx)
    if attach:
        if len(containers) > 1:
            raise IsoinspectError("you cannot start and attach multiple containers at once",
                                  exit_code=1)
        ctx.exit(restart.start_attached(runtime, containers[0], _output()))
    _for_each(ctx, containers, lambda ref: restart.start(runtime, ref))


@click.command("restart")
@click.option("-t", "--time", "timeout", default=10, type=int, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart_cmd(ctx: click.Context, timeout: int, containers: tuple) -> None:
    """Stop containers (SIGTERM, then SIGKILL) and start them again."""
    from isoinspect.cli.main import _for_each
    from isoinspect.runtime import restart

    runtime = _runtime(ctx)
    _for_each(ctx, containers, lambda ref: restart.restart(runtime, ref, timeout))


STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
                 "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
                 "Container": "CONTAINER"}
_CLEAR = "\033[2J\033[H"


def _stats_row(stats, ref: str, no_trunc: bool) -> dict:
    """One container with ``docker stats``'s field names and text."""
    return {"Container": ref, "ID": stats.id if no_trunc else stats.id[:12], "Name": stats.name,
            "CPUPerc": f"{stats.cpu_percent:.2f}%",
            "MemUsage": f"{bytes_size(stats.memory)} / {bytes_size(stats.memory_limit)}",
            "MemPerc": f"{stats.memory_percent:.2f}%",
            "NetIO": f"{human_size(stats.net_rx)} / {human_size(stats.net_tx)}",
            "BlockIO": f"{human_size(stats.block_read)} / {human_size(stats.block_write)}",
            "PIDs": str(stats.pids)}


def _still_there(runtime, named: list[tuple[str, str]]) -> list:
    """(name given, current record) of the named containers not removed meanwhile."""
    from isoinspect.runtime.errors import NotFound

    pairs = []
    for ref, cid in named:
        try:
            pairs.append((ref, runtime.containers.load(cid)))
        except NotFound:
            continue
    return pairs


@click.command("stats")
@click.option("-a", "--all", "all_", is_flag=True, help="All containers (default: running).")
@click.option("--no-stream", is_flag=True, help="Print one reading and exit.")
@click.option("--no-trunc", is_flag=True, help="Full container ids.")
@format_options
@click.argument("containers", nargs=-1)
@click.pass_context
@ends_on_interrupt
def stats_cmd(ctx: click.Context, all_: bool, no_stream: bool, no_trunc: bool,
              fmt: str | None, as_json: bool, containers: tuple) -> None:
    """Live resource usage: CPU %, memory / limit, network and block I/O, processes."""
    from isoinspect.cli.template import parse
    from isoinspect.runtime.container_stats import sample

    if fmt:
        parse(fmt)  # a bad template fails before the first reading
    runtime = _runtime(ctx)
    named = [(ref, runtime.get(ref).id) for ref in containers]
    previous: dict = {}
    while True:
        if named:
            pairs = _still_there(runtime, named)
            if not pairs:
                return  # every container named was removed while we watched
        else:
            pairs = [(r.name, r) for r in runtime.list(all_)]
        found, previous = sample(runtime, [record for _, record in pairs], previous, 0.5)
        rows = [_stats_row(stats, ref, no_trunc) for stats, (ref, _) in zip(found, pairs)]
        if not no_stream and sys.stdout.isatty():
            click.echo(_CLEAR, nl=False)
        emit(rows, STATS_TABLE, STATS_HEADERS, fmt, as_json)
        if no_stream:
            return
        sys.stdout.flush()
        time.sleep(1.0)


@click.command("top", context_settings={"allow_interspersed_args": False,
                                        "ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED, metavar="[PS OPTIONS]")
@click.pass_context
def top_cmd(ctx: click.Context, container: str, ps_args: tuple) -> None:
    """The processes of a running container (the host's ps, -ef unless options are given)."""
    from isoinspect.cli.template import align
    from isoinspect.runtime.container_top import top

    table = top(_runtime(ctx), container, list(ps_args))
    for line in align(["\t".join(row) for row in [table.titles, *table.processes]], 20):
        click.echo(line)


commands = [logs_cmd, start_cmd, restart_cmd, stats_cmd, top_cmd]
