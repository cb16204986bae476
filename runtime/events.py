"""Lifecycle events (``isoinspect events``): one JSON line appended per step, like the events
dockerd keeps for ``docker events``.

There is no daemon to hold them in memory, so each command that makes a container (or image)
change appends its event to ``<run dir>/events.log``: one ``O_APPEND`` write of one line, atomic
against other writers, no lock, no new import on the start path (not even json).
The file is rotated once past ``MAX_BYTES`` to ``events.log.1`` (one old generation kept):
bounded like dockerd's in-memory buffer, and gone at reboot like it (/run is a tmpfs).

A failure to record an event never fails the step itself (a full disk must not lose an exit
code). Reading, filtering and following are in runtime/event_query.py.
"""

from __future__ import annotations

import os
import time

from isoinspect.runtime.frozen import Frozen

MAX_BYTES = 1 << 20  # ~5000 events, dockerd keeps 1000 in memory
LOG_NAME = "events.log"


class Event(Frozen):
    """One lifecycle step of a container or image (Docker's Type, Action, Actor)."""

    time_ns: int  # time.time_ns() when it happened
    type: str  # "container" or "image"
    action: str  # create, start, die, kill, stop, destroy; pull, tag, untag, delete
    id: str  # container id, or image id
    attributes: dict = {}  # Docker's Actor.Attributes: name, image, exitCode, signal...


def log_path(roots) -> str:
    return roots.run(LOG_NAME)


def _rotate(path: str, fd: int) -> None:
    """Move the full log aside, unless another writer already did (checked under a lock)."""
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass


def encode(event: Event) -> bytes:
    """The event as one JSON line (read back with json.loads); json_lite, since ``import
    json`` pulls in re and enum: ~10 ms on the start path (and plain text, names, ids and
    numbers, needs not even ``_json``)."""
    from isoinspect.runtime.json_lite import dumps

    return (dumps({"time_ns": int(event.time_ns), "type": event.type, "action": event.action,
                   "id": event.id, "attributes": {str(k): str(v)
                                                  for k, v in event.attributes.items()}})
            + "\n").encode(errors="replace")


def record(roots, event: Event) -> None:
    """Append ``event`` to the log (best effort)."""
    line = encode(event)
    path = log_path(roots)
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size >= MAX_BYTES:
                _rotate(path, fd)
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                             0o644)
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def container_event(roots, action: str, state, **extra: object) -> None:
    """Record ``action`` of a container (a ContainerState), with Docker's attributes."""
    attributes = {"name": state.name, "image": state.image}
    attributes.update({key: str(value) for key, value in extra.items()})
    record(roots, Event(time_ns=time.time_ns(), type="container", action=action, id=state.id,
                        attributes=attributes))


def image_event(roots, action: str, image_id: str, name: str) -> None:
    record(roots, Event(time_ns=time.time_ns(), type="image", action=action,
                        id=f"sha256:{image_id}", attributes={"name": name}))
