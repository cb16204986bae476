"""``doctor``'s line for bridge networking: can this host give containers a veth and an address?"""

from __future__ import annotations

import shutil


def check() -> dict:
    """pyroute2 importable and netlink answering, iptables present (for the forward rules)."""
    try:
        from isoinspect.runtime.network.netlink import iproute

        with iproute() as ipr:
            links = len(ipr.get_links())
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"name": "bridge networking", "ok": False, "status": "missing",
                "detail": f"pyroute2/netlink unusable: {type(exc).__name__}: {exc}",
                "impact": "only --network none and host work"}
    if not shutil.which("iptables"):
        return {"name": "bridge networking", "ok": None, "status": "degraded",
                "detail": f"netlink ok ({links} links); iptables missing",
                "impact": "containers on one bridge may not reach each other if FORWARD drops"}
    return {"name": "bridge networking", "ok": True, "status": "ok",
            "detail": f"pyroute2 netlink ok ({links} links), iptables present",
            "impact": "--network bridge (default) and user networks"}
