"""``--format`` and ``--json`` for the listing commands (ps, images, network ls, history).

Each command builds its rows as dicts with Docker's field names and hands them here with its
default table; the same rows serve the table, ``--format`` and ``--json``. Click-free but for
the decorator: ``ps``'s fast path (cli/fast_commands.py) prints through emit too.
"""

from __future__ import annotations

import sys
# collections.abc's classes, from the module os has already loaded: collections.abc itself
# imports collections (~1.5 ms on ps's fast path)
from _collections_abc import Callable, Mapping, Sequence

from isoinspect.cli.template import format_rows
from isoinspect.runtime.errors import UsageError

FORMAT_HELP = ("Go-template-like output: '{{.ID}}\\t{{.Names}}', 'table {{.ID}}...' (with a "
               "header), '{{json .}}' or 'json' (one JSON object per line).")


def format_options(func: Callable) -> Callable:
    """Add ``--format TEMPLATE`` and ``--json`` to a listing command."""
    import click

    func = click.option("--json", "as_json", is_flag=True,
                        help="One JSON object per line (the same as --format json).")(func)
    return click.option("--format", "fmt", metavar="TEMPLATE", help=FORMAT_HELP)(func)


def emit(rows: Sequence[Mapping[str, object]], default: str, headers: Mapping[str, str],
         fmt: str | None = None, as_json: bool = False) -> None:
    """Print ``rows`` with the user's --format, as JSON lines, or as the default table."""
    if fmt and as_json:
        raise UsageError("--format and --json cannot be used together")
    for line in format_rows("json" if as_json else fmt or default, rows, headers):
        sys.stdout.write(line + "\n")
