"""``isoinspect events``: container and image lifecycle events, as ``docker events``."""

from __future__ import annotations

import time

import click

from isoinspect.cli.interrupt import ends_on_interrupt


@click.command("events")
@click.option("--since", metavar="TIME", help="Show events from TIME: a duration before now "
              "(10m, 1h30m), Unix seconds or an RFC 3339 date.")
@click.option("--until", metavar="TIME", help="Stop at TIME (same forms); without it, keep "
              "following until Ctrl-C.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="container=NAME|ID, event=ACTION, type=container|image, image=NAME "
                   "(repeat a key for alternatives).")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="Go-template-like output per event: '{{.Action}} {{.Actor.ID}}', "
                   "'{{.Actor.Attributes.exitCode}}', '{{json .}}' or 'json'.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (Docker's "
              "fields: Type, Action, Actor, time, timeNano...).")
@click.pass_context
@ends_on_interrupt
def events(ctx: click.Context, since: str | None, until: str | None, filters: tuple,
           fmt: str | None, as_json: bool) -> None:
    """Print lifecycle events (create, start, die, kill, stop, destroy; pull, tag, untag,
    delete) as they happen, or those of a past interval with --until."""
    from isoinspect.cli.template import parse, render
    from isoinspect.runtime import event_query
    from isoinspect.runtime.errors import UsageError
    from isoinspect.runtime.events import log_path
    from isoinspect.runtime.roots import Roots

    if fmt and as_json:
        raise UsageError("--format and --json cannot be used together")
    template = parse("json" if as_json else fmt) if (fmt or as_json) else None
    if template is not None and template.table:
        raise UsageError("--format table is not supported by events (a stream has no columns)")
    now = time.time()
    start = event_query.parse_time(since, now) if since else None
    end = event_query.parse_time(until, now) if until else None
    match = event_query.EventFilter.parse(list(filters))
    log = log_path(Roots(ctx.obj["root"]))
    if end is not None and end <= now:
        found = iter(event_query.read(log, start, end, match))
    else:
        found = event_query.follow(log, match, start, end)
    for event in found:  # a follow ends on Ctrl-C, as docker events (cli/interrupt.py)
        line = (render(template, event_query.docker_shape(event)) if template
                else event_query.docker_line(event))
        click.echo(line)


commands = [events]
