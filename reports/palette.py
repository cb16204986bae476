"""One colour and one place per runtime, for every chart and table of the report.

Charts and tables ask here (never pick colours or sort runtimes themselves), so a runtime keeps
its colour from one chart to the next and its row or column position from one table to the next.
A name is a runtime (``runc``), a startup target (``isoinspect-cli``) or either with a machine
(``runc @ host-a (6.18)``, see ``machine_label``): the machine changes the line style, not the
colour. Names this module does not know get a colour from their own name (a hash), so it is the
same whatever else a chart shows.
"""

from __future__ import annotations

import zlib
from typing import Iterable

#: the reading order: bare host baselines, our runtime, OCI runtimes, Docker, gVisor, the VM,
#: then the control (verify's isoinspect without limits)
ORDER = ("host", "host-exec", "unshare", "isoinspect", "isoinspect-lib", "isoinspect-cli",
         "isoinspect-cli-bridge", "isoinspect-pool", "runc", "crun", "docker", "runsc", "qemu",
         "control")
COLOURS = {
    "host": "#7f7f7f", "host-exec": "#7f7f7f", "unshare": "#bcbd22",
    "isoinspect": "#1f77b4", "isoinspect-lib": "#1f77b4", "isoinspect-cli": "#17becf",
    "isoinspect-cli-bridge": "#0e7c8a", "isoinspect-pool": "#aec7e8", "runc": "#2ca02c",
    "crun": "#98df8a", "docker": "#9467bd",
    "runsc": "#ff7f0e", "qemu": "#8c564b", "control": "#e377c2",
}
#: colours for names not in COLOURS (picked by a hash of the name)
EXTRA = ("#d62728", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#c5b0d5", "#ffbb78", "#17344f")
#: phases of a start-up (up to ~15 from the inspector): tab20b's hues, none of a runtime's, so a
#: bar coloured by phase is never read as a runtime
PHASES = ("#393b79", "#e7ba52", "#637939", "#ad494a", "#6b6ecf", "#8ca252", "#7b4173",
          "#bd9e39", "#d6616b", "#9c9ede", "#b5cf6b", "#a55194", "#8c6d31", "#e7969c",
          "#5254a3", "#cedb9c", "#ce6dbd", "#843c39", "#e7cb94", "#de9ed6")
#: colours of series that are not runtimes (operations, verdicts of a comparison)
SERIES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
BETTER, WORSE, NEUTRAL = "#2ca02c", "#d62728", "#888888"
#: line styles per machine, in the order machines are listed
LINESTYLES = ("-", "--", ":", "-.")
MACHINE_SEPARATOR = " @ "


def runtime_of(name: str) -> str:
    """The runtime part of a possibly machine-qualified name."""
    return str(name).split(MACHINE_SEPARATOR, 1)[0]


def machine_of(name: str) -> str:
    parts = str(name).split(MACHINE_SEPARATOR, 1)
    return parts[1] if len(parts) == 2 else ""


def colour(name: str) -> str:
    runtime = runtime_of(name)
    if runtime in COLOURS:
        return COLOURS[runtime]
    return EXTRA[zlib.crc32(runtime.encode()) % len(EXTRA)]


def key(name: str) -> tuple:
    """Sort key: the runtime's place in ORDER (unknown ones after, by name), then machine."""
    runtime = runtime_of(name)
    place = ORDER.index(runtime) if runtime in ORDER else len(ORDER)
    return place, runtime, machine_of(name)


def ordered(names: Iterable[str]) -> list[str]:
    """Distinct names in the report's order."""
    return sorted(dict.fromkeys(names), key=key)


def linestyle(name: str, machines: Iterable[str] = ()) -> str:
    """The line style of a name's machine: solid for the first (or only) machine."""
    machine = machine_of(name)
    listed = sorted(set(machines))
    return LINESTYLES[listed.index(machine) % len(LINESTYLES)] if machine in listed else "-"


def machine_label(runtime: str, machine: str) -> str:
    """``runc @ host-a (6.18)``; the bare runtime when there is no machine to tell apart."""
    return f"{runtime}{MACHINE_SEPARATOR}{machine}" if machine else runtime
