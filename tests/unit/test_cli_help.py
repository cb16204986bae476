"""Every command's --help: no leaked "(dest)" defaults, a description of its own, help on every
option (issue 18: `run --help` showed "[default: (rm)]", `pull --help` "Upload blobs")."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from isoinspect.cli.main import cli


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, path + (name,))


COMMANDS = list(_walk(cli))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "isoinspect"
                                                        for p, _ in COMMANDS])
def test_help_is_clean(path, command):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "[default: (" not in result.output
    assert command.get_short_help_str(limit=200).strip(), f"{path} has no description"
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"


def test_descriptions_are_not_copied():
    seen: dict[str, str] = {}
    unique = {id(command): (path, command) for path, command in COMMANDS}  # aliases: one entry
    for path, command in unique.values():
        text = (command.help or "").strip()
        assert text not in seen, f"{' '.join(path)} repeats {seen[text]}'s description"
        seen[text] = " ".join(path)


def test_pull_does_not_mention_uploads():
    assert "Upload" not in CliRunner().invoke(cli, ["pull", "--help"]).output
