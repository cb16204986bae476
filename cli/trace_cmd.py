"""``isoinspect trace``: stream the kernel's namespace, start-up and enforcement events."""

from __future__ import annotations

import json
import sys
import time

import click

PROBE_NAMES = ("namespaces", "startup", "enforcement")


def _probes(value: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in value.split(",") if p.strip())
    bad = [p for p in names if p not in PROBE_NAMES]
    if bad:
        raise click.BadParameter(f"unknown probe(s) {', '.join(bad)}; "
                                 f"choose from {', '.join(PROBE_NAMES)}")
    return names


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.origin: int | None = None
        self.header = False
        self.broken = False

    def __call__(self, event: dict) -> None:
        if self.broken:
            return
        try:
            self._write(event)
        except BrokenPipeError:        # `| head`: stop printing, keep tracing quietly
            self.broken = True
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def _write(self, event: dict) -> None:
        from isoinspect.inspector.events import describe

        out = sys.stdout
        if self.as_json:
            out.write(json.dumps(event, sort_keys=True) + "\n")
        else:
            if not self.header:
                out.write(f"{'TIME ms':>10}  {'EVENT':<14}{'PID':>8}  {'COMM':<16}"
                          f"{'CONTAINER':<22}DETAIL\n")
                self.header = True
            if self.origin is None:
                self.origin = event["ts_ns"]
            rel = (event["ts_ns"] - self.origin) / 1e6
            out.write(f"{rel:>10.3f}  {event['event']:<14}{event['pid']:>8}  "
                      f"{event['comm'][:15]:<16}{event.get('container', '-')[:21]:<22}"
                      f"{describe(event)}\n")
        out.flush()


def _summary(tracer, as_json: bool) -> None:
    from isoinspect.inspector import nsflags

    costs = nsflags.per_type_costs(tracer.events)
    cost = tracer.cost()
    if as_json:
        sys.stdout.write(json.dumps({"event": "summary", "unshare_cost": costs,
                                     "tracer": cost}, sort_keys=True) + "\n")
        return
    err = sys.stderr
    if costs:
        err.write("unshare kernel cost per namespace set: " + ", ".join(
            f"{k} {v['mean_us']}us (n={v['count']})" for k, v in costs.items()) + "\n")
    err.write(f"tracer ({cost['mode']} mode): {cost['programs']} programs, {cost['run_cnt']} runs, "
              f"{cost['run_time_ns'] / 1e3:.0f}us in BPF ({cost['ns_per_run']}ns/run), "
              f"{cost['lost_events']} events lost"
              + (f", missing tracepoints: {', '.join(cost['missing_tracepoints'])}"
                 if cost["missing_tracepoints"] else "") + "\n")


def _our_name(container, root) -> str | None:
    """The name isoinspect gave one of its containers (others keep their short id)."""
    if container.runtime != "isoinspect":
        return None
    from isoinspect.inspector.runtime_adapter import find_ours

    ours = find_ours(container.id, root)
    return ours.name if ours is not None else None


@click.command("trace", context_settings={"allow_interspersed_args": False,
                                          "help_option_names": ["--help"]})
@click.option("--container", "container", metavar="NAME|ID",
              help="Only this container (ours by name/id, Docker/runc by id, a pid, or a cgroup "
                   "path).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--probes", default=",".join(PROBE_NAMES), show_default=True,
              help="Comma-separated probes to load.")
@click.option("--all-clones", is_flag=True,
              help="Report every clone, not only those creating namespaces.")
@click.option("--duration", type=float, default=None, metavar="SECONDS",
              help="Stop after this long (default: until Ctrl-C, or until CMD exits).")
@click.option("--ebpf", "print_program", is_flag=True,
              help="Print the generated BPF program and exit (no root needed).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def trace(ctx: click.Context, container: str | None, as_json: bool, probes: str,
          all_clones: bool, duration: float | None, print_program: bool,
          command: tuple) -> None:
    """Stream namespace, start-up and enforcement events from eBPF tracepoints.

    With `-- CMD...` runs CMD and traces its process tree until it exits.
    """
    names = _probes(probes)
    filtered = bool(container or command)
    if print_program:
        from isoinspect.inspector.probes import program

        click.echo(program(names, filter_enabled=filtered, all_clones=all_clones))
        return
    from isoinspect.inspector.resolve import find_container
    from isoinspect.inspector.tracer import Tracer, TracerUnavailable

    root = (ctx.obj or {}).get("root")
    target = None
    if container:
        target = find_container(container, our_root=root)
        if target is None:
            raise click.ClickException(f"no container or cgroup matches {container!r}")
    printer = _Printer(as_json)
    from isoinspect.inspector.attribution import Attributor
    from isoinspect.inspector.cgroupfs import find_by_id
    from isoinspect.runtime.cgroups.layout import read_layout

    try:
        layout = read_layout()
    except OSError:
        layout = None
    # containers that existed before tracing began: their cgroup ids are looked up in cgroupfs
    attributor = Attributor(resolve_id=(lambda cgroup_id: find_by_id(cgroup_id, layout=layout))
                            if layout else None, namer=lambda found: _our_name(found, root))
    try:
        tracer = Tracer(names, filter_enabled=filtered, on_event=printer, keep=True,
                        all_clones=all_clones, attributor=attributor)
    except TracerUnavailable as exc:
        click.echo(f"isoinspect trace: {exc}", err=True)
        if target is not None:
            from isoinspect.inspector.cgroupfs import CgroupView

            click.echo(json.dumps(CgroupView.for_path(target.cgroup_path).snapshot(), indent=2))
        if command:
            import subprocess

            ctx.exit(subprocess.call(list(command)))
        return
    code = 0
    try:
        if target is not None:
            tracer.attributor.register(target)
            if target.cgroup_id:
                tracer.watch_cgroup(target.cgroup_id)
            else:   # no cgroup2 hierarchy (legacy v1 host): follow its processes' trees
                from isoinspect.inspector.cgroupfs import CgroupView

                for pid in CgroupView.for_path(target.cgroup_path).pids():
                    tracer.watch_pid(pid)
            click.echo(f"tracing {target.runtime} container {target.name} "
                       f"(cgroup {target.cgroup_path}, id {target.cgroup_id})", err=True)
        elif not command:
            click.echo("tracing all processes", err=True)
        if command:
            from isoinspect.inspector.command import run_traced

            code = run_traced(tracer, list(command))
        else:
            deadline = time.monotonic() + duration if duration else None
            try:
                while deadline is None or time.monotonic() < deadline:
                    tracer.poll(100)
            except KeyboardInterrupt:
                pass
            tracer.drain()
        _summary(tracer, as_json)
    finally:
        tracer.close()
    ctx.exit(code)


@click.command("scorecard")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("target", metavar="CONTAINER|PID")
@click.pass_context
def scorecard(ctx: click.Context, as_json: bool, target: str) -> None:
    """Isolation scorecard: namespaces shared with the host, capabilities, seccomp,
    no_new_privs, read-only root, masked paths, cgroup limits (any runtime)."""
    from isoinspect.inspector.resolve import pid_of
    from isoinspect.inspector.guest_view import unit_card as make_card
    from isoinspect.inspector.scorecard import format_card

    pid = pid_of(target, our_root=(ctx.obj or {}).get("root"))
    if pid is None:
        raise click.ClickException(f"no running container or process matches {target!r}")
    try:
        card = make_card(pid)
    except FileNotFoundError:
        raise click.ClickException(f"process {pid} is gone") from None
    except OSError as exc:      # a sandbox whose workload view could not be read
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(card, indent=2) if as_json else format_card(card))


commands = [trace, scorecard]
