"""``ps``'s rows with Docker's field names, without click (the click command and the fast path
in cli/fast_commands.py print the same rows)."""

from __future__ import annotations

import time

from isoinspect.runtime.container_state import ContainerState, Status


def _age(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _status(record: ContainerState, paused: bool = False) -> str:
    """Docker's STATUS column: "Up 3 minutes", "Up 3 minutes (Paused)", "Exited (0) 2 seconds
    ago", "Created"."""
    if record.status == Status.RUNNING:
        return f"Up {_age(record.started_at)}" + (" (Paused)" if paused else "")
    if record.status == Status.STOPPED:
        return f"Exited ({record.exit_code}) {_age(record.finished_at)} ago"
    return "Created"


PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Names}}")
PS_HEADERS = {"ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT"}


def ps_row(record: ContainerState, paused: bool = False) -> dict:
    """One container with ``docker ps``'s field names (``paused``: its cgroup is frozen)."""
    command = " ".join(record.argv)
    command = command if len(command) <= 20 else command[:19] + "…"
    return {"ID": record.id[:12], "Image": record.image, "Command": f'"{command}"',
            "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(record.created)),
            "RunningFor": f"{_age(record.created)} ago",
            "State": "paused" if paused else record.status.docker,
            "Status": _status(record, paused), "Names": record.name, "Pid": record.pid or 0}
