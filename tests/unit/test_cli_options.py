"""The click-free fast parser agrees with the option table and gives up on anything odd."""

from __future__ import annotations

import pytest

from isoinspect.cli.entry import _split_globals
from isoinspect.cli.options import RUN_OPTIONS, FastParseError, parse_run_args


def test_parses_flags_values_and_repeats():
    options, image, command = parse_run_args(
        ["--rm", "-d", "--name", "x1", "-e", "A=1", "--env=B=2", "-m", "64m", "--cpus", "0.5",
         "busybox", "sh", "-c", "echo --rm"])
    assert options["rm"] and options["detach"]
    assert options["name"] == "x1" and options["env"] == ["A=1", "B=2"]
    assert options["memory"] == "64m" and options["cpus"] == "0.5"
    assert (image, command) == ("busybox", ["sh", "-c", "echo --rm"])
    assert options["network"] == "bridge"


def test_defaults_are_fresh_lists():
    first, _, _ = parse_run_args(["-e", "A=1", "img"])
    second, _, _ = parse_run_args(["img"])
    assert first["env"] == ["A=1"] and second["env"] == []


@pytest.mark.parametrize("args", [["--help"], ["--bogus", "img"], ["--name"], [], ["--rm"],
                                  ["--rm=yes", "img"]])
def test_gives_up_on_anything_unusual(args):
    with pytest.raises(FastParseError):
        parse_run_args(args)


def test_every_option_has_a_unique_flag_and_dest():
    flags = [f for entry in RUN_OPTIONS for f in entry[0]]
    dests = [entry[1] for entry in RUN_OPTIONS]
    assert len(flags) == len(set(flags)) and len(dests) == len(set(dests))


def test_global_root_is_split_off():
    assert _split_globals(["--root", "/x", "run", "img"]) == ("/x", ["run", "img"])
    assert _split_globals(["--root=/y", "ps"]) == ("/y", ["ps"])
    assert _split_globals(["run", "img"]) == (None, ["run", "img"])
