"""``isoinspect cp``: copy files between a container and the host, as ``docker cp``."""

from __future__ import annotations

import click


@click.command("cp")
@click.option("-a", "--archive", is_flag=True, help="Archive mode: keep uid/gid.")
@click.option("-L", "--follow-link", "follow", is_flag=True,
              help="Always follow a symlink given as SRC_PATH.")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.pass_context
def cp(ctx: click.Context, archive: bool, follow: bool, src: str, dest: str) -> None:
    """Copy between a container and the host: CONTAINER:SRC DEST|- or SRC|- CONTAINER:DEST.

    Paths in the container are resolved inside its root (its symlinks included, as Docker
    does); `-` is a tar stream on stdin or stdout. Works on stopped containers too."""
    from isoinspect.cli.main import _runtime
    from isoinspect.runtime.copy import CopyOptions, copy

    copy(_runtime(ctx), src, dest, CopyOptions(archive=archive, follow=follow))


commands = [cp]
