"""Namespace flags in traced events (decoded with the one namespace table) and the kernel cost
per namespace type."""

from __future__ import annotations

import statistics

from isoinspect.runtime.linux.namespaces import decode


def decode_setns(nstype: int) -> list[str]:
    """setns's nstype: 0 means "whatever the fd is" (reported as ["any"])."""
    return decode(nstype) if nstype else ["any"]


def label(flags: int) -> str:
    names = decode(flags)
    return "+".join(names) if names else "none"


def per_type_costs(events) -> dict[str, dict]:
    """Kernel duration of successful unshare calls grouped by the namespace set they created.

    ``events``: decoded event dicts. A call creating one type measures that type; "net+uts"
    style keys hold combined calls. Values in microseconds: count, mean, p50, min, max.
    """
    groups: dict[str, list[float]] = {}
    for event in events:
        if event.get("event") != "unshare" or event.get("ret", 0) != 0:
            continue
        names = event.get("namespaces") or []
        if not names:
            continue
        groups.setdefault("+".join(names), []).append(event["dur_ns"] / 1000.0)
    return {key: {"count": len(values), "mean_us": round(statistics.fmean(values), 1),
                  "p50_us": round(statistics.median(values), 1),
                  "min_us": round(min(values), 1), "max_us": round(max(values), 1)}
            for key, values in sorted(groups.items())}
