"""The click commands built from the shared option table (cli/options.py): ``run`` and
``create`` take the same flags, so both are made here and cannot drift apart."""

from __future__ import annotations

import click

from isoinspect.cli.options import DEFAULTS, RUN_OPTIONS


def container_command(name: str, help_text: str, execute, exclude: tuple[str, ...] = ()) \
        -> click.Command:
    """A command taking RUN_OPTIONS (less the ``exclude``d dests), IMAGE and COMMAND...;
    ``execute(root, options, image, command)`` returns its exit code."""

    def callback(**kwargs):
        ctx = click.get_current_context()
        image, command = kwargs.pop("image"), kwargs.pop("command")
        for key, value in list(kwargs.items()):
            if isinstance(value, tuple):
                kwargs[key] = list(value)
        ctx.exit(execute(ctx.obj["root"], kwargs, image, list(command)))

    params: list[click.Parameter] = []
    for flags, dest, kind, metavar, text in RUN_OPTIONS:
        if dest in exclude:
            continue
        if kind == "flag":
            params.append(click.Option([*flags, dest], is_flag=True, help=text))
        else:
            params.append(click.Option([*flags, dest], multiple=kind == "multi",
                                       metavar=metavar, help=text,
                                       default=DEFAULTS["network"] if dest == "network" else None))
    params.append(click.Argument(["image"]))
    params.append(click.Argument(["command"], nargs=-1, type=click.UNPROCESSED))
    return click.Command(name, callback=callback, params=params,
                         context_settings={"allow_interspersed_args": False,
                                           "help_option_names": ["--help"]},
                         help=help_text)
