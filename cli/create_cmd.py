"""``isoinspect create``: docker create, run's flags without -d/--trace (run = create +
start; run keeps its own fast path)."""

from __future__ import annotations

from isoinspect.cli.container_command import container_command
from isoinspect.cli.run_cmd import execute_create

create = container_command(
    "create", "Create a container (run's flags) and print its id; `start` runs it.",
    execute_create, exclude=("detach", "trace"))

commands = [create]
