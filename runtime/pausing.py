"""`isoinspect pause`/`unpause`: freeze and thaw a container of `isoinspect run` in its cgroup's
freezer, with Docker's rules and messages.

A pause leaves the record as it is ("running"): whether a container is paused is read from the
freezer (``CgroupManager.frozen``), as runc reads it, so a monitor that records the exit of a
container killed while paused can never be contradicted by a stale "paused" field.
Docker's behaviour (20.10, checked on this host): `kill` with any signal on a paused container
signals then unpauses it; `stop` and `rm -f` work on a paused container; `rm` without -f refuses.
"""

from __future__ import annotations

from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import Conflict


def is_paused(runtime, record: ContainerState) -> bool:
    """A running container whose cgroup is frozen (read without building its cgroup driver)."""
    if record.status != Status.RUNNING:
        return False
    from isoinspect.runtime.cgroups.manager import is_frozen
    return is_frozen(record.cgroup, runtime.roots.cgroup_root)


def pause(runtime, ref: str) -> ContainerState:
    record = runtime.get(ref)
    if record.status != Status.RUNNING:
        raise Conflict(f"Container {record.id} is not running")
    if is_paused(runtime, record):
        raise Conflict(f"Container {record.id} is already paused")
    runtime.cgroup(record).freeze()
    return record


def unpause(runtime, ref: str) -> ContainerState:
    record = runtime.get(ref)
    if not is_paused(runtime, record):
        raise Conflict(f"Container {record.id} is not paused")
    runtime.cgroup(record).thaw()
    return record


def thaw_if_paused(runtime, record: ContainerState) -> None:
    """Before or after signalling a container that may be paused: a frozen process takes no
    signal, not even SIGKILL (cgroup v1), until thawed. Docker unpauses it then."""
    if is_paused(runtime, record):
        runtime.cgroup(record).thaw()
