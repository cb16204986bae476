"""`isoinspect update`: new limits for a container of `isoinspect run`, like `docker update`.

The merged flags are checked with ContainerSpec's rules (Docker's messages: "minimum memory limit
allowed is 6MB", swap below memory ...); a running or paused container's cgroup is then written
by the one update path (cgroups/update.py, shared with `isoinspect-runc update`); the record's
spec is saved so `inspect` shows the new HostConfig. A stopped container only has its record
changed, as Docker changes only its HostConfig.
"""

from __future__ import annotations

import errno
from dataclasses import replace

from isoinspect.runtime.cgroups.update import ResourceUpdate, apply_update
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.spec import ContainerSpec

# ResourceUpdate fields that ContainerSpec records too (the others are written, not recorded).
# Docker's words when the kernel has no I/O weight (no BFQ/CFQ scheduler): it goes on without it.
NO_BLKIO_WEIGHT = ("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                   "Weight discarded.")
_SPEC_FIELDS = ("memory", "memory_swap", "cpu_quota_us", "cpu_period_us", "cpu_shares",
                "cpuset_cpus", "pids_limit")


def update_container(runtime, ref: str, change: ResourceUpdate) -> tuple[ContainerState,
                                                                           list[str]]:
    """Apply ``change`` to container ``ref``; return its new record and the drivers' warnings."""
    record = runtime.get(ref)
    values = change.changes()
    spec = dict(record.spec)
    spec.update({k: v for k, v in values.items() if k in _SPEC_FIELDS})
    ContainerSpec(**spec)  # Docker's cross-field rules on the result (UsageError)
    warnings: list[str] = []
    if record.status == Status.RUNNING:
        manager = runtime.cgroup(record)
        warnings = apply_update(manager, replace(change, blkio_weight=None))
        if change.blkio_weight is not None:
            try:
                warnings += apply_update(manager, ResourceUpdate(
                    blkio_weight=change.blkio_weight))
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                warnings.append(NO_BLKIO_WEIGHT)
    record = record.replace(spec=spec)
    runtime.containers.save(record)
    return record, warnings
