"""The click command group: argument parsing only; every command calls the library.

``run`` is also served by a click-free fast path (entry.py) built from the same option table.
"""

from __future__ import annotations

import json

import click

from isoinspect.cli.listing import emit, format_options
from isoinspect.cli.container_command import container_command
from isoinspect.cli.ps_rows import PS_HEADERS, PS_TABLE, ps_row
from isoinspect.cli.run_cmd import execute_run
from isoinspect.runtime.errors import (DAEMON_EXIT_CODE, USAGE_EXIT_CODE, IsoinspectError,
                                      UsageError, die_of_closed_pipe, report_error,
                                      report_unexpected)


# Docker's commands whose failures (no such container, image, network...) exit 1, like the
# docker CLI's "Error response from daemon"; run keeps 125 for failures before the command runs.
_DOCKER_DAEMON_CODE_COMMANDS = frozenset((
    "ps", "logs", "exec", "kill", "stop", "rm", "wait", "inspect", "gc", "images", "image", "rmi",
    "tag", "history", "save", "load", "push", "pull", "login", "logout", "build", "network",
    "start", "restart", "stats", "top", "cp", "port", "events", "update", "pause", "unpause",
    "create"))


def _docker_usage_code(exc: click.UsageError) -> int:
    """Docker's codes for a refused command line: 125 for a flag or its value, 1 for the
    wrong number of arguments or an unknown command (``docker rm`` alone, ``docker bogus``)."""
    if isinstance(getattr(exc, "param", None), click.Argument):
        return DAEMON_EXIT_CODE
    if isinstance(exc, (click.NoSuchOption, click.BadOptionUsage, click.BadParameter)):
        return USAGE_EXIT_CODE
    return DAEMON_EXIT_CODE


class _Group(click.Group):
    """Turns IsoinspectError into one line on stderr and Docker's exit code for it."""

    def make_context(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = _docker_usage_code(exc)
            raise

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except IsoinspectError as exc:
            code = exc.exit_code
            if (ctx.invoked_subcommand in _DOCKER_DAEMON_CODE_COMMANDS and code == 125
                    and not isinstance(exc, UsageError)):
                code = DAEMON_EXIT_CODE
            ctx.exit(report_error(exc, exit_code=code))
        except KeyboardInterrupt:
            ctx.exit(report_error("interrupted", exit_code=130))
        except BrokenPipeError:
            die_of_closed_pipe()
        except click.UsageError as exc:
            exc.exit_code = _docker_usage_code(exc)
            raise
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort):
            raise
        except Exception as exc:  # an internal error: one line, the traceback on request
            ctx.exit(report_unexpected(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["--help"]})
@click.option("--root", envvar="ISOINSPECT_ROOT", default=None, metavar="DIR",
              help="State directory (default /var/lib/isoinspect and /run/isoinspect).")
@click.version_option(package_name="isoinspect")
@click.pass_context
def cli(ctx: click.Context, root: str | None) -> None:
    """isoinspect: a container runtime that shows what the kernel did to isolate it."""
    ctx.obj = {"root": root}


def _runtime(ctx: click.Context):
    from isoinspect.runtime.runtime import Runtime, require_root

    require_root()
    return Runtime(ctx.obj["root"])


cli.add_command(container_command("run", "Run a command in a new container (Docker's flags).",
                                  execute_run))


@cli.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only print ids.")
@format_options
@click.pass_context
def ps_cmd(ctx: click.Context, all_: bool, quiet: bool, fmt: str | None, as_json: bool) -> None:
    """List containers."""
    runtime = _runtime(ctx)
    records = runtime.list(all_)
    if quiet:
        for record in records:
            click.echo(record.id[:12])
        return
    from isoinspect.runtime.pausing import is_paused
    emit([ps_row(r, is_paused(runtime, r)) for r in records], PS_TABLE, PS_HEADERS, fmt,
         as_json)


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open (relayed with -t).")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Set an environment variable.")
@click.option("-w", "--workdir", default=None, metavar="DIR", help="Working directory.")
@click.option("-u", "--user", default=None, metavar="UID[:GID]", help="User to run as.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx: click.Context, detach: bool, interactive: bool, tty: bool, env: tuple,
             workdir: str | None, user: str | None, container: str, command: tuple) -> None:
    """Run a command in a running container."""
    from isoinspect.runtime.execute import exec_in_container

    ctx.exit(exec_in_container(_runtime(ctx), container, list(command), env=list(env),
                               workdir=workdir, user=user, detach=detach, tty=tty,
                               interactive=interactive))


def _for_each(ctx: click.Context, refs: tuple, action) -> None:
    """Apply ``action`` to every container like Docker: echo each one done, report each
    failure on its own line, and exit 1 at the end if any failed."""
    failed = False
    for ref in refs:
        try:
            action(ref)
            click.echo(ref)
        except IsoinspectError as exc:
            report_error(exc)
            failed = True
    if failed:
        ctx.exit(1)


@cli.command("kill")
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send (name or number).")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill_cmd(ctx: click.Context, sig: str, containers: tuple) -> None:
    """Send a signal to running containers."""
    from isoinspect.runtime.linux.signals import parse_signal

    number = parse_signal(sig)
    if number is None:
        raise IsoinspectError(f"invalid signal: {sig}", exit_code=DAEMON_EXIT_CODE)  # Docker: 1
    runtime = _runtime(ctx)
    _for_each(ctx, containers, lambda ref: runtime.kill(ref, number))


@cli.command("stop")
@click.option("-t", "--time", "timeout", default=10, type=float, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop_cmd(ctx: click.Context, timeout: float, containers: tuple) -> None:
    """Stop running containers (SIGTERM, then SIGKILL)."""
    runtime = _runtime(ctx)
    _for_each(ctx, containers, lambda ref: runtime.stop(ref, timeout))


@cli.command("rm")
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force: bool, containers: tuple) -> None:
    """Remove containers."""
    runtime = _runtime(ctx)
    _for_each(ctx, containers, lambda ref: runtime.remove(ref, force))


@cli.command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait_cmd(ctx: click.Context, containers: tuple) -> None:
    """Block until containers stop, then print their exit codes."""
    runtime = _runtime(ctx)
    for ref in containers:
        click.echo(runtime.wait(ref).exit_code)


@cli.command("inspect")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE",
              help="Print each container through a Go-template-like format, e.g. "
                   "'{{.State.Pid}}' or '{{json .Config}}'.")
@click.option("--scorecard", is_flag=True,
              help="Print the isolation scorecard (namespaces shared with the host, "
                   "capabilities, seccomp, no_new_privs, masked paths, read-only root, limits).")
@click.argument("targets", nargs=-1, required=True, metavar="CONTAINER|PID...")
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt: str | None, scorecard: bool, targets: tuple) -> None:
    """Show containers' configuration and state as JSON (like docker inspect); a PID, or any
    target with --scorecard, gets the isolation scorecard, whatever runtime started it."""
    from isoinspect.runtime.describe import describe_container
    from isoinspect.runtime.errors import NotFound

    runtime = _runtime(ctx)
    described = []
    for ref in targets:
        try:
            record = None if scorecard else runtime.get(ref)
        except NotFound:
            if not ref.isdigit():
                raise
            record = None
        if record is None:
            from isoinspect.cli.trace_cmd import scorecard as scorecard_cmd

            ctx.invoke(scorecard_cmd, as_json=False, target=ref)
            continue
        described.append(describe_container(runtime, record))
    if described and fmt:
        from isoinspect.cli.template import format_rows

        for line in format_rows(fmt, described, {}):
            click.echo(line)
    elif described:
        click.echo(json.dumps(described, indent=4))


@cli.command("gc")
@click.pass_context
def gc_cmd(ctx: click.Context) -> None:
    """Clean what crashed runtimes left behind (cgroups, records, mounts)."""
    from isoinspect.runtime.gc import collect

    for line in collect(_runtime(ctx)):
        click.echo(line)


# Command modules owned by other parts of the project. Each exposes ``commands``, a list of
# click commands (or one command under the module's own name, for older modules).
_OPTIONAL_COMMAND_MODULES = ("doctor_cmd", "trace_cmd", "network_cmd", "image_cmd", "bench_cmd",
                            "vm_cmd", "report_cmd", "results_cmd", "verify_cmd",
                            "exposure_cmd", "isolation_cmd", "compare_cmd", "lifecycle_cmd",
                            "port_cmd", "copy_cmd", "events_cmd", "update_cmd", "pause_cmd",
                            "create_cmd")


def _register_optional() -> None:
    import importlib

    for module_name in _OPTIONAL_COMMAND_MODULES:
        try:
            module = importlib.import_module(f"isoinspect.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"isoinspect.cli.{module_name}":
                raise
            continue
        commands = getattr(module, "commands", None)
        if commands is None:
            commands = [getattr(module, module_name.removesuffix("_cmd"))]
        for command in commands:
            cli.add_command(command)


_register_optional()
