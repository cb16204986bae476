"""Bridges and veth pairs, through netlink (no ``ip`` command): a start's veth through the
direct rtnetlink requests (rtnetlink.py), bridges and listings through pyroute2.

The host end of a container's veth is ``iso<id12>`` (enslaved to the network's bridge), the
other end is created directly in the container's netns as ``eth0``: no rename, no move.
Deleting the host end deletes both; so does the container's netns going away.
"""

from __future__ import annotations

import errno
import os

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.network.addresses import prefixlen
from isoinspect.runtime.network.rtnetlink import Rtnl, rtnl_in

VETH_PREFIX = "iso"
BRIDGE_PREFIX = "isoinspect"


def veth_name(container_id: str) -> str:
    return f"{VETH_PREFIX}{container_id[:12]}"


def _netlink_errno(exc: BaseException) -> int | None:
    return getattr(exc, "code", None)


def bridge_exists(network: dict) -> bool:
    return os.path.exists(f"/sys/class/net/{network['bridge']}")


def ensure_bridge(ipr, network: dict) -> bool:
    """Create the network's bridge with its gateway address, up; True if it was made now."""
    if bridge_exists(network):
        return False
    try:
        ipr.link("add", ifname=network["bridge"], kind="bridge")
    except Exception as exc:  # pyroute2's NetlinkError
        if _netlink_errno(exc) != errno.EEXIST:
            raise IsoinspectError(f"cannot create bridge {network['bridge']}: {exc} (no bridge "
                                  "support in this kernel? use --network none)") from None
        return False
    index = ipr.link_lookup(ifname=network["bridge"])[0]
    ipr.addr("add", index=index, address=network["gateway"], prefixlen=prefixlen(network["subnet"]))
    ipr.link("set", index=index, state="up")
    return True


def delete_link(ipr, name: str) -> bool:
    """Delete a link by name if it exists (a veth takes its peer with it)."""
    found = ipr.link_lookup(ifname=name)
    if not found:
        return False
    try:
        ipr.link("del", index=found[0])
    except Exception as exc:  # gone meanwhile
        if _netlink_errno(exc) != errno.ENODEV:
            raise
    return True


def connect(network: dict, container_id: str, pid: int, address: str) -> dict:
    """veth pair bridge <-> container's eth0 with ``address``, default route via the gateway."""
    host_end = veth_name(container_id)
    prefix = prefixlen(network["subnet"])
    with Rtnl() as here:
        master = here.link(network["bridge"]).index
        try:
            here.add_veth(host_end, "eth0", pid, master)
        except FileExistsError:  # this container's last veth, still on its way out (restart)
            here.delete_link(host_end)
            here.add_veth(host_end, "eth0", pid, master)
    with rtnl_in(pid) as inside:
        eth0 = inside.link("eth0")
        inside.add_address(eth0.index, address, prefix)
        inside.set_up(eth0.index)
        inside.add_default_route(network["gateway"])
    return {"veth": host_end, "mac": eth0.mac, "prefixlen": prefix}


def links_named(ipr, prefix: str) -> list[str]:
    """Names of this netns's links starting with ``prefix``."""
    names = []
    for link in ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        if name and name.startswith(prefix):
            names.append(name)
    return names
