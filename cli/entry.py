"""The ``isoinspect`` entry point: click-free fast paths for ``run`` and the hot small
commands (rm, stop, kill, ps, exec, --version: cli/fast_commands.py), click for the rest.

Importing click costs ~45 ms, more than a whole runc start, so ``isoinspect run ...`` is parsed
by the option table's small parser and goes straight to the runtime. Anything the fast parser
does not handle (``--help``, an unknown flag, a parse error) is handed to the click command,
which then produces the usual help or error message.
"""

from __future__ import annotations

import sys


def _split_globals(args: list[str]) -> tuple[str | None, list[str]] | None:
    """Take a leading ``--root DIR`` off; None when other global options are present."""
    root = None
    while args and args[0].startswith("--root"):
        if args[0] == "--root" and len(args) > 1:
            root, args = args[1], args[2:]
        elif args[0].startswith("--root="):
            root, args = args[0][7:], args[1:]
        else:
            return None
    return root, args


def _fast_run(argv: list[str]) -> int | None:
    split = _split_globals(argv)
    if split is None or not split[1]:
        return None
    root, args = split
    if args == ["--version"]:
        from isoinspect.cli.fast_commands import version_text

        sys.stdout.write(version_text())
        return 0
    if args[0] != "run":
        import os

        from isoinspect.cli.fast_commands import run_fast

        return run_fast(root or os.environ.get("ISOINSPECT_ROOT"), args[0], args[1:])
    from isoinspect.cli.options import FastParseError, parse_run_args

    try:
        options, image, command = parse_run_args(args[1:])
    except FastParseError:
        return None
    from isoinspect.cli.run_cmd import execute_run
    from isoinspect.runtime.errors import IsoinspectError, report_error, report_unexpected

    import os
    try:
        return execute_run(root or os.environ.get("ISOINSPECT_ROOT"), options, image, command)
    except IsoinspectError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an internal error: one line, the traceback only on request
        return report_unexpected(exc)


def _enable_site() -> None:
    """The fast launcher starts Python with -I -S; load site-packages before importing click."""
    if sys.flags.no_site and "click" not in sys.modules:
        import site

        site.main()


def _flush_stdout() -> None:
    """Flush now, while a closed pipe can still end us quietly (not at interpreter exit)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from isoinspect.runtime.errors import die_of_closed_pipe

        die_of_closed_pipe()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _fast_run(args)
        if code is not None:
            _flush_stdout()
            return code
        _enable_site()
        from isoinspect.cli.main import cli

        return cli.main(args=args, prog_name="isoinspect", standalone_mode=True) or 0
    except BrokenPipeError:
        from isoinspect.runtime.errors import die_of_closed_pipe

        die_of_closed_pipe()
        raise
    finally:
        _flush_stdout()
