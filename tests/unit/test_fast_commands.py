"""The click-free parsers of the hot commands agree with their click commands."""

from __future__ import annotations

import click
import click.testing
import pytest

from isoinspect.cli.fast_commands import COMMAND_OPTIONS, parse, version_text
from isoinspect.cli.main import cli
from isoinspect.cli.options import FastParseError


def _kind(option: click.Option) -> str:
    if option.is_flag:
        return "flag"
    return "multi" if option.multiple else "value"


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS))
def test_every_fast_flag_is_the_click_commands_with_the_same_kind(command):
    click_options = {flag: (param.name, _kind(param))
                     for param in cli.commands[command].params
                     if isinstance(param, click.Option) for flag in param.opts}
    for flags, dest, kind in COMMAND_OPTIONS[command]:
        for flag in flags:
            assert click_options.get(flag) == (dest, kind), (command, flag)


def test_defaults_are_the_click_commands():
    assert parse("stop", ["x"])[0]["timeout"] == cli.commands["stop"].params[0].default
    assert parse("kill", ["x"])[0]["sig"] == "KILL"


def test_options_anywhere_for_rm_but_not_after_execs_container():
    assert parse("rm", ["a", "-f", "b"]) == ({"force": True}, ["a", "b"])
    assert parse("rm", ["--", "-f"]) == ({"force": False}, ["-f"])
    options, rest = parse("exec", ["-it", "-e", "A=1", "box", "sh", "-c", "echo -f"])
    assert options["tty"] and options["interactive"] and options["env"] == ["A=1"]
    assert rest == ["box", "sh", "-c", "echo -f"]
    assert parse("stop", ["-t", "2.5", "a"])[0]["timeout"] == 2.5
    assert parse("ps", ["-aq"])[0] == {"all_": True, "quiet": True, "fmt": None,
                                        "as_json": False}


@pytest.mark.parametrize("command,args", [
    ("rm", []), ("rm", ["--help"]), ("rm", ["-x", "a"]), ("stop", ["-t", "x", "a"]),
    ("stop", ["-t"]), ("ps", ["extra"]), ("ps", ["--bogus"]), ("exec", ["box"]),
    ("exec", ["--help"]), ("kill", ["--signal=", "a", "--nope"]), ("ps", ["--all=yes"]),
])
def test_click_answers_anything_unusual(command, args):
    with pytest.raises(FastParseError):
        parse(command, args)


def test_version_is_the_click_options():
    runner = click.testing.CliRunner()
    assert runner.invoke(cli, ["--version"], prog_name="isoinspect").output == version_text()
