"""``start``, ``restart`` and ``start -a``: a stopped container run again, like Docker's.

A container keeps what it was created with (its record's spec, argv, environment, its upper
directory with everything it wrote); on exit its monitor released the cgroup and undid the
network. Starting it again re-creates the cgroup with the same limits, puts the record back
to "created" and starts it detached (runtime/detach.py), its output appended to its log. A
POSIX lock (not inherited by the forked monitor) keeps two starts of one container apart.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator

from isoinspect.runtime.container_logs import Output, follow
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import Conflict, IsoinspectError, NotFound
from isoinspect.runtime.log_reader import LogFile, LogQuery
from isoinspect.runtime.records import LOG_FILE
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.spec import ContainerSpec


@contextmanager
def start_lock(runtime: Runtime, cid: str) -> Iterator[None]:
    """Exclusive right to start ``cid``; Conflict if another command is starting it."""
    try:
        fd = os.open(runtime.containers.dir(cid, "start.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise NotFound(f"no such container: {cid[:12]}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Conflict(f"container {cid[:12]} is being started by another command") from None
        yield
    finally:
        os.close(fd)


def _spec(record: ContainerState) -> ContainerSpec:
    """The spec the container was created with (fields a newer isoinspect added: defaults)."""
    known = set(ContainerSpec.__slots__)
    return ContainerSpec(**{k: v for k, v in record.spec.items() if k in known})


def _ready_again(runtime: Runtime, record: ContainerState) -> ContainerState:
    """A stopped container back to "created": cgroup and limits made again, run state reset."""
    if record.status == Status.CREATED:
        if runtime.containers.creator_alive(record.id):
            raise Conflict(f"container {record.name} is being created")
    # The last monitor records the exit first, then removes the cgroup and undoes the
    # network, then drops its lock: wait for that before making them again.
    with runtime.containers.monitor_lock(record.id, blocking=True):
        pass
    runtime.containers.mark_creator(record.id)
    manager = runtime.cgroup(record)
    manager.create()
    manager.apply(_spec(record).resources())
    record = record.replace(status=Status.CREATED, pid=0, pid_ticks=None, exit_code=None,
                            error="", network=None, released=False)
    runtime.containers.save(record)
    return record


def start(runtime: Runtime, ref: str) -> ContainerState:
    """Start a stopped or created container in the background (a running one is left as it
    is, as ``docker start`` does); return its record."""
    from isoinspect.runtime.detach import start_detached

    cid = runtime.containers.lookup(ref)
    with start_lock(runtime, cid):
        record = runtime.get(cid)
        if record.status == Status.RUNNING:
            return record
        if record.status == Status.PAUSED:
            raise Conflict(f"container {record.name} is paused: unpause it instead")
        if record.spec.get("tty"):  # without its terminal it would run differently, or end
            raise Conflict(f"container {record.name} was created with -t: start cannot give "
                           "it a terminal (run it again with run -it)", exit_code=1)
        return start_detached(runtime, _ready_again(runtime, record))


def restart(runtime: Runtime, ref: str, timeout: float = 10.0) -> ContainerState:
    """``docker restart``: stop (SIGTERM, SIGKILL after ``timeout``), then start."""
    record = runtime.stop(ref, timeout)
    return start(runtime, record.id)


def start_attached(runtime: Runtime, ref: str, output: Output) -> int:
    """``start -a``: start the container, print what it writes from now on (stdout and
    stderr to ours) with signals forwarded to it, and return its exit code."""
    from isoinspect.runtime.signal_forwarding import SignalForwarder

    cid = runtime.containers.lookup(ref)
    path = runtime.containers.dir(cid, LOG_FILE)
    offset = os.path.getsize(path) if os.path.exists(path) else 0
    forwarder = SignalForwarder()
    try:
        try:
            record = start(runtime, cid)
        except IsoinspectError as exc:  # Docker: 1 when the start fails, whatever the cause
            raise IsoinspectError(str(exc), exit_code=1) from None
        forwarder.attach(record.pid)
        if record.log != path:  # it was already running, logging to an older file
            path, offset = record.log, os.path.getsize(record.log)
        with LogFile(path, offset) as log:
            follow(runtime, cid, log, LogQuery(), output)
        try:
            return runtime.wait(cid).exit_code
        except NotFound:  # --rm: removed once exited; its code went with it
            return 0
    finally:
        forwarder.restore()
