"""eBPF probes (BCC TRACEPOINT_PROBEs), one module per probe, composed into one program.

    from isoinspect.inspector.probes import program
    print(program(["namespaces", "startup", "enforcement"], filter_enabled=True))
"""

from __future__ import annotations

from . import enforcement, namespaces, startup, syscall_counts
from .common import compose, tracepoints_used

PROBES = {"namespaces": namespaces, "startup": startup, "enforcement": enforcement,
          "syscall_counts": syscall_counts}
#: the probes ``trace`` loads by default (syscall_counts is opt-in: raw_syscalls fires on every
#: system call of the machine, and only ``exposure`` asks which syscalls)
ALL = ("namespaces", "startup", "enforcement")


def program(probes=ALL, filter_enabled: bool = True, available=None, **options) -> str:
    """The BCC C text for ``probes``; options go to the probes' ``parts()`` that take them."""
    parts = []
    for name in probes:
        module = PROBES[name]
        if name == "namespaces":
            parts.append(module.parts(all_clones=bool(options.get("all_clones"))))
        elif name == "startup":
            parts.append(module.parts(all_prctl=bool(options.get("all_prctl"))))
        else:
            parts.append(module.parts())
    return compose(parts, filter_enabled=filter_enabled, available=available,
                   buffer=options.get("buffer", "ring"))


def tracepoints(probes=ALL) -> list[str]:
    return sorted({tp for name in probes for tp in PROBES[name].TRACEPOINTS})


__all__ = ["ALL", "PROBES", "program", "tracepoints", "tracepoints_used"]
