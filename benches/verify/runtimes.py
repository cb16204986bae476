"""The runtimes verify can check: the peer adapters of benches/targets, under verify's names.

* ``isoinspect``: our runtime through the library (Runtime.create/start in this process);
* ``runc`` / ``runsc``: OCI bundles (benches/bundle.py) whose ``linux.resources`` carry the
  limits, the same bundles ``bench`` measures;
* ``docker``: ``docker run -d --memory ... --cpus ...``;
* ``qemu``: a QEMU guest configured the way libvirt would (benches/vm/limits.py): guest RAM,
  vCPUs and pinning, a host cgroup around QEMU, a throttled virtual disk;
* ``control``: isoinspect with every limit left out, so each check must FAIL on it.
"""

from __future__ import annotations

from typing import Callable

from isoinspect.benches.targets.base import Target
from isoinspect.benches.targets.docker import DockerTarget
from isoinspect.benches.targets.isoinspect import IsoinspectLibrary
from isoinspect.benches.targets.runc import RuncTarget, RunscTarget
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

RUNTIMES: dict[str, Callable[[], Target]] = {
    "isoinspect": lambda: IsoinspectLibrary(name="isoinspect"),
    "runc": lambda: RuncTarget(name="runc"),
    "runsc": lambda: RunscTarget(name="runsc"),
    "docker": lambda: DockerTarget(name="docker"),
    "qemu": lambda: _qemu(),
    "control": lambda: IsoinspectLibrary(name="control", control=True),
}


def _qemu() -> Target:
    from isoinspect.benches.vm.verify_target import QemuVerifyTarget

    return QemuVerifyTarget(name="qemu")


def select(names: str) -> list[Target]:
    """``isoinspect``, ``runc,docker`` or ``all``; UsageError for an unknown name."""
    wanted = list(RUNTIMES) if names == "all" else [n.strip() for n in names.split(",") if n]
    unknown = [n for n in wanted if n not in RUNTIMES]
    if unknown or not wanted:
        raise UsageError(f"unknown runtime {', '.join(unknown) or names!r}: choose from "
                         f"{', '.join(RUNTIMES)} or all", exit_code=USAGE_EXIT_CODE)
    return [RUNTIMES[n]() for n in wanted]
