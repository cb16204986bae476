"""cli/oci_args.py: the hot command lines parse to what argparse gives; the rest is left to it."""

from __future__ import annotations

import pytest

from isoinspect.cli import oci_args
from isoinspect.cli.oci_main import _parser

HOT = [
    ["state", "c1"],
    ["--root", "/run/x", "state", "c1"],
    ["--root=/run/x", "--log", "/l", "--log-format", "json", "--systemd-cgroup", "start", "c"],
    ["--debug", "--criu", "x", "--rootless", "false", "kill", "c", "9"],
    ["kill", "--all", "c", "KILL"], ["kill", "-a", "c"], ["kill", "c"],
    ["delete", "--force", "c"], ["delete", "-f", "c"], ["delete", "c.1+x_y-z"],
    ["create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "c"],
    ["create", "-b", "/b", "--no-pivot", "--no-new-keyring", "--preserve-fds", "2", "c"],
    ["create", "c"], ["--log-format=text", "create", "--bundle=/b", "c"],
]
LEFT_TO_ARGPARSE = [
    [], ["--help"], ["state"], ["state", "-h"], ["exec", "c", "true"], ["list"],
    ["state", "a", "b"], ["kill", "c", "9", "x"], ["create", "--bundle"],
    ["create", "--preserve-fds", "x", "c"], ["--log-format", "yaml", "state", "c"],
    ["delete", "c", "--force"], ["--version"], ["--root"], ["start", "--unknown", "c"],
    ["--no-such", "state", "c"], ["delete", "--force=yes", "c"],
]


@pytest.mark.parametrize("argv", HOT, ids=" ".join)
def test_hot_command_lines_parse_as_argparse_does(argv):
    fast = vars(oci_args.parse(argv))
    slow = vars(_parser().parse_args(argv))
    assert fast == {key: slow[key] for key in fast}
    assert set(slow) - set(fast) == set()


@pytest.mark.parametrize("argv", LEFT_TO_ARGPARSE, ids=" ".join)
def test_anything_else_is_left_to_argparse(argv):
    assert oci_args.parse(argv) is None
