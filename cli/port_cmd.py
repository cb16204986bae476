"""``isoinspect port CONTAINER [PRIVATE_PORT[/PROTO]]``: published ports, as ``docker port``."""

from __future__ import annotations

import click


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@click.pass_context
def port(ctx: click.Context, container: str, private_port: str | None) -> None:
    """List a container's published ports, or the host address of one of them."""
    from isoinspect.runtime.network.published import lookup
    from isoinspect.runtime.runtime import Runtime, require_root

    require_root()
    for item in lookup(Runtime(ctx.obj["root"]).get(container), private_port):
        click.echo(item.public if private_port else f"{item.private} -> {item.public}")


commands = [port]
