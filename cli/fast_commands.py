"""Click-free fast paths for the hot small commands: ``rm``, ``stop``, ``kill``, ``ps``,
``exec`` and ``--version``.

Importing click and registering every command costs ~45 ms, ten times what ``runc delete``
takes in all, so these commands are parsed by the option tables below and run the same library
calls as their click commands in cli/main.py, with the same output, messages and exit codes.
Anything the fast parser does not handle (``--help``, an unknown flag, a bad value, a missing
argument) returns None and the click command reports it with its usual message and code.
tests/unit/test_fast_commands.py checks that every flag here is the click command's, with
the same kind.
"""

from __future__ import annotations

import sys

from isoinspect.cli.options import FastParseError, parse_options

# command -> option table: (flags, dest, kind) as in options.RUN_OPTIONS (kind: flag, value,
# multi). The click commands declare the same options (cli/main.py).
COMMAND_OPTIONS: dict[str, tuple[tuple[tuple[str, ...], str, str], ...]] = {
    "rm": ((("-f", "--force"), "force", "flag"),),
    "stop": ((("-t", "--time"), "timeout", "value"),),
    "kill": ((("-s", "--signal"), "sig", "value"),),
    "ps": ((("-a", "--all"), "all_", "flag"), (("-q", "--quiet"), "quiet", "flag"),
           (("--format",), "fmt", "value"), (("--json",), "as_json", "flag")),
    "exec": ((("-d", "--detach"), "detach", "flag"),
             (("-i", "--interactive"), "interactive", "flag"),
             (("-t", "--tty"), "tty", "flag"), (("-e", "--env"), "env", "multi"),
             (("-w", "--workdir"), "workdir", "value"), (("-u", "--user"), "user", "value")),
}
# Defaults the click commands give (stop's -t: 10 seconds; kill's -s: KILL).
_DEFAULTS = {"timeout": "10", "sig": "KILL"}
# exec's options stop at the container (the rest is its command); the others take options
# anywhere, as click does.
_INTERSPERSED = {"rm": True, "stop": True, "kill": True, "ps": True, "exec": False}


def defaults(command: str) -> dict:
    return {dest: [] if kind == "multi" else (False if kind == "flag" else _DEFAULTS.get(dest))
            for _, dest, kind in COMMAND_OPTIONS[command]}


def parse(command: str, args: list[str]) -> tuple[dict, list[str]]:
    """(options, positionals) of one fast command; FastParseError when click must answer."""
    options, positionals = parse_options(COMMAND_OPTIONS[command], defaults(command), args,
                                         _INTERSPERSED[command])
    if (command == "ps") != (not positionals):  # ps takes none; the others need some
        raise FastParseError("arguments")
    if command == "exec" and len(positionals) < 2:
        raise FastParseError("missing command")
    if command == "stop":
        try:
            options["timeout"] = float(options["timeout"])
        except ValueError:
            raise FastParseError("--time") from None
    return options, positionals


def run_fast(root: str | None, command: str, args: list[str]) -> int | None:
    """Run ``command`` if the fast parser accepts ``args``; None hands it to click."""
    if command not in COMMAND_OPTIONS:
        return None
    try:
        options, positionals = parse(command, args)
    except FastParseError:
        return None
    from isoinspect.runtime.errors import (DAEMON_EXIT_CODE, IsoinspectError, UsageError,
                                           report_error, report_unexpected)

    try:
        return _COMMANDS[command](root, options, positionals)
    except IsoinspectError as exc:  # the codes click's _Group gives these commands
        code = exc.exit_code
        if code == 125 and not isinstance(exc, UsageError):
            code = DAEMON_EXIT_CODE
        return report_error(exc, exit_code=code)
    except KeyboardInterrupt:
        return report_error("interrupted", exit_code=130)
    except BrokenPipeError:
        raise
    except Exception as exc:  # an internal error: one line, the traceback on request
        return report_unexpected(exc)


def _runtime(root: str | None):
    from isoinspect.runtime.errors import require_root
    from isoinspect.runtime.runtime import Runtime

    require_root()
    return Runtime(root)


def _for_each(refs: list[str], action) -> int:
    """As cli/main.py's: echo each container done, one line per failure, 1 if any failed."""
    from isoinspect.runtime.errors import IsoinspectError, report_error

    failed = False
    for ref in refs:
        try:
            action(ref)
            sys.stdout.write(ref + "\n")
        except IsoinspectError as exc:
            report_error(exc)
            failed = True
    return 1 if failed else 0


def _rm(root: str | None, options: dict, refs: list[str]) -> int:
    runtime = _runtime(root)
    return _for_each(refs, lambda ref: runtime.remove(ref, options["force"]))


def _stop(root: str | None, options: dict, refs: list[str]) -> int:
    runtime = _runtime(root)
    return _for_each(refs, lambda ref: runtime.stop(ref, options["timeout"]))


def _kill(root: str | None, options: dict, refs: list[str]) -> int:
    from isoinspect.runtime.errors import DAEMON_EXIT_CODE, IsoinspectError
    from isoinspect.runtime.linux.signals import parse_signal

    number = parse_signal(options["sig"])
    if number is None:
        raise IsoinspectError(f"invalid signal: {options['sig']}", exit_code=DAEMON_EXIT_CODE)
    runtime = _runtime(root)
    return _for_each(refs, lambda ref: runtime.kill(ref, number))


def _ps(root: str | None, options: dict, _: list[str]) -> int:
    runtime = _runtime(root)
    records = runtime.list(options["all_"])
    if options["quiet"]:
        sys.stdout.write("".join(record.id[:12] + "\n" for record in records))
        return 0
    from isoinspect.cli.listing import emit
    from isoinspect.cli.ps_rows import PS_HEADERS, PS_TABLE, ps_row
    from isoinspect.runtime.pausing import is_paused

    emit([ps_row(r, is_paused(runtime, r)) for r in records], PS_TABLE, PS_HEADERS,
         options["fmt"], options["as_json"])
    return 0


def _exec(root: str | None, options: dict, positionals: list[str]) -> int:
    from isoinspect.runtime.execute import exec_in_container

    sys.stdout.flush()  # nothing of ours may come after the command's output
    return exec_in_container(_runtime(root), positionals[0], positionals[1:],
                             env=options["env"], workdir=options["workdir"],
                             user=options["user"], detach=options["detach"],
                             tty=options["tty"], interactive=options["interactive"])


_COMMANDS = {"rm": _rm, "stop": _stop, "kill": _kill, "ps": _ps, "exec": _exec}


def version_text() -> str:
    """What ``isoinspect --version`` prints (click's version_option format)."""
    from isoinspect import __version__

    return f"isoinspect, version {__version__}\n"
