"""Skip reasons from ``isoinspect doctor``'s own checks (the diagnostics registry).

A test may skip only for a feature this host truly lacks, and then it says why in doctor's
words: the reason is the very check doctor prints, so the suite and ``isoinspect doctor`` can
never disagree about what the host can do.
"""

from __future__ import annotations

import importlib

from isoinspect.cli.doctor_cmd import PROVIDERS
from isoinspect.runtime import diagnostics
from isoinspect.runtime.diagnostics import Status


def lacks(group: str, name: str) -> str | None:
    """None when doctor's check *name* (group *group*) is ok here, else the skip reason."""
    for module in PROVIDERS:
        importlib.import_module(module)
    for _, check in diagnostics.REGISTRY.run(group, [name]):
        if check.status is not Status.OK:
            return f"isoinspect doctor: {check.name}: {check.status}: {check.detail}"
    return None
