"""A runtime's colour and place for the overhead, density and exposure sections.

The report gives every runtime one colour and one position in every chart and table
(``reports.palette``); these sections ask through ``runtime_color`` and ``runtime_order`` only,
so they follow that module where it exists. Without it, the same mapping is kept here.
"""

from __future__ import annotations

import zlib
from typing import Iterable

#: the report's reading order: host baselines, our runtime, OCI runtimes, Docker, gVisor, VM
ORDER = ("host", "host-exec", "unshare", "isoinspect", "isoinspect-lib", "isoinspect-cli",
         "isoinspect-pool", "runc", "crun", "docker", "runsc", "qemu", "control")
COLOURS = {
    "host": "#7f7f7f", "host-exec": "#7f7f7f", "unshare": "#bcbd22",
    "isoinspect": "#1f77b4", "isoinspect-lib": "#1f77b4", "isoinspect-cli": "#17becf",
    "isoinspect-pool": "#aec7e8", "runc": "#2ca02c", "crun": "#98df8a", "docker": "#9467bd",
    "runsc": "#ff7f0e", "qemu": "#8c564b", "control": "#e377c2",
}
#: names not listed get one of these, picked by a hash of the name (stable across charts)
EXTRA = ("#d62728", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#c5b0d5", "#ffbb78", "#393b79")


def _palette():
    try:
        from isoinspect.reports import palette
    except ImportError:
        return None
    return palette


def runtime_color(name: str) -> str:
    """The colour of ``name`` (a runtime or a start-up target) in every chart of the report."""
    palette = _palette()
    if palette is not None:
        return palette.colour(name)
    return COLOURS.get(name) or EXTRA[zlib.crc32(name.encode()) % len(EXTRA)]


def runtime_order(names: Iterable[str]) -> list[str]:
    """Distinct names in the report's order (unknown names after the known, by name)."""
    palette = _palette()
    if palette is not None:
        return palette.ordered(names)
    return sorted(dict.fromkeys(names),
                  key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
