"""``isoinspect pause`` / ``unpause``: Docker's commands for containers of `isoinspect run`
(runtime/pausing.py freezes and thaws their cgroup)."""

from __future__ import annotations

import click


def _each(action_name: str):
    def callback(containers: tuple) -> None:
        from isoinspect.cli.main import _for_each, _runtime
        from isoinspect.runtime import pausing

        ctx = click.get_current_context()
        runtime = _runtime(ctx)
        action = getattr(pausing, action_name)
        _for_each(ctx, containers, lambda ref: action(runtime, ref))
    return callback


pause = click.Command("pause", callback=_each("pause"),
                      params=[click.Argument(["containers"], nargs=-1, required=True)],
                      help="Pause all processes within containers (cgroup freezer).")
unpause = click.Command("unpause", callback=_each("unpause"),
                        params=[click.Argument(["containers"], nargs=-1, required=True)],
                        help="Unpause all processes within containers.")
commands = [pause, unpause]
