"""Benchmark targets: one way each to start an isolated ``true`` (see ``base.Target``).

``default_targets()`` is the set the start-up benchmark compares; ``REFERENCE`` is the peer
ratios are taken against. Add a target by writing a module here and listing it below.
"""

from __future__ import annotations

from isoinspect.benches.targets.base import METRICS, Sample, Target, TargetError, safe_version
from isoinspect.benches.targets.docker import DockerTarget
from isoinspect.benches.targets.host import HostExec, UnshareTarget
from isoinspect.benches.targets.isoinspect import (IsoinspectCLI, IsoinspectCLIBridge,
                                                  IsoinspectLibrary)
from isoinspect.benches.targets.pool import WarmPoolTarget
from isoinspect.benches.targets.runc import CrunTarget, RuncTarget, RunscTarget
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

REFERENCE = "runc"
FLOOR = "host-exec"
ALIASES = {"host": FLOOR}  # `--targets host`

__all__ = ["FLOOR", "METRICS", "REFERENCE", "CrunTarget", "DockerTarget", "HostExec",
           "IsoinspectCLI", "IsoinspectCLIBridge", "IsoinspectLibrary", "RuncTarget",
           "RunscTarget", "Sample", "Target",
           "TargetError", "UnshareTarget", "WarmPoolTarget", "default_targets", "safe_version",
           "select"]


def default_targets() -> list[Target]:
    from isoinspect.benches.vm.target import QemuTarget

    return [HostExec(), UnshareTarget(), IsoinspectCLI(), IsoinspectCLIBridge(),
            IsoinspectLibrary(), WarmPoolTarget(),
            RuncTarget(), CrunTarget(), RunscTarget(), DockerTarget(), QemuTarget()]


def select(names: list[str] | None) -> list[Target]:
    """The default targets, or those named (UsageError naming the unknown ones)."""
    targets = default_targets()
    if not names:
        return targets
    known = {t.name: t for t in targets}
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(known)}",
                         exit_code=USAGE_EXIT_CODE)
    return [known[n] for n in names]
