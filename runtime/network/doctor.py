"""``doctor``'s line for bridge networking: can this host give containers a veth and an address?

Registered in the diagnostics registry's ``host`` group by runtime.hostcheck (after the
namespaces, where doctor shows it)."""

from __future__ import annotations

import shutil

from isoinspect.runtime.diagnostics import Check, Status

NAME = "bridge networking"


def check() -> Check:
    """pyroute2 importable and netlink answering, iptables present (for the forward rules)."""
    try:
        from isoinspect.runtime.network.netlink import iproute

        with iproute() as ipr:
            links = len(ipr.get_links())
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return Check(NAME, Status.FAIL,
                     f"pyroute2/netlink unusable: {type(exc).__name__}: {exc}",
                     "only --network none and host work")
    if not shutil.which("iptables"):
        return Check(NAME, Status.DEGRADED, f"netlink ok ({links} links); iptables missing",
                     "containers on one bridge may not reach each other if FORWARD drops")
    return Check(NAME, Status.OK, f"pyroute2 netlink ok ({links} links), iptables present",
                 "--network bridge (default) and user networks")
