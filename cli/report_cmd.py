"""``isoinspect report RUN [RUN...] -o report.html``: render run records into one HTML file.

Argument parsing only: loading, rendering and the atomic write live in isoinspect.reports (whose
pandas / matplotlib / Jinja2 imports happen there, when the command runs).
"""

from __future__ import annotations

import click


@click.command("report")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("-o", "--output", metavar="FILE",
              help="HTML file to write (default: isoinspect-report-<run id>.html here).")
@click.option("--results-dir", metavar="DIR", envvar="ISOINSPECT_RESULTS",
              help="Where run records live (default: $ISOINSPECT_RESULTS or "
                   "/var/lib/isoinspect/results).")
def report(runs: tuple[str, ...], output: str | None, results_dir: str | None) -> None:
    """Write a self-contained HTML report of RUNs and print its path.

    A RUN is a record file, a run id, a unique prefix of one, 'latest', or a folder (every
    record in it). Several RUNs are combined (e.g. a benchmark run and a verification run; the
    newest result of a measurement wins), and measurements found in more than one run are
    compared, each later run against the oldest. Records from several machines (copied from
    several hosts into one folder) give one report with the machine as a dimension: each
    runtime named "runtime @ host (kernel)", side by side.
    """
    from isoinspect.reports.render import write_report

    click.echo(write_report(list(runs), output, results_dir))


commands = [report]
