"""Connect a container to its network before its command runs; undo it when it stops.

What ``NetworkHook`` (runtime/network/__init__.py) runs: make the bridge on first use; under
the network's allocation lock, take an address and write /etc/hosts (its own and its peers')
and /etc/resolv.conf; then name the netns in /run/netns, create the veth pair and start the
port proxy. Everything it makes is recorded in the address's holder (or named after the
container), so ``poststop``, ``rm`` and ``gc`` can undo it even when its maker is gone."""

from __future__ import annotations

import fcntl
import os

from isoinspect.runtime import process
from isoinspect.runtime.container_state import ContainerState
from isoinspect.runtime.digests import is_hex
from isoinspect.runtime.errors import NotFound
from isoinspect.runtime.linux.signals import SIGTERM
from isoinspect.runtime.network import files, netns
from isoinspect.runtime.network.ipam import Ipam
from isoinspect.runtime.network.store import NetworkStore, state_dir

# No contextlib at module level: with the collections and functools it imports it costs
# ~2-3 ms of a bridged start (this module is imported after the clone, on the critical path).
# bridge (rtnetlink, struct) is imported by the functions making links: ``rm`` of a
# stopped container needs none of it.


def _is_veth(name: str) -> bool:
    """Our veth host end: iso + 12 hex digits (``re`` costs ~6 ms to import on the start path)."""
    from isoinspect.runtime.network import bridge

    return name.startswith(bridge.VETH_PREFIX) and is_hex(name[len(bridge.VETH_PREFIX):], 12)


def attach(record: ContainerState, pid: int, upper: str) -> dict:
    """Connect container ``record`` (a ContainerState, PID 1 ``pid``) to its network; return
    what it got."""
    from isoinspect.runtime.network import bridge

    network = NetworkStore().get(record.spec["network"])
    ports = _ports(record.spec.get("publish"))
    sockets = []
    if ports:
        from isoinspect.runtime.network.ports import bind_all

        sockets = bind_all(ports)
    cid = record.id
    etc = os.path.join(upper, "etc")
    hosts = os.path.join(etc, "hosts") if os.path.isdir(etc) else ""
    holder = {"id": cid, "name": record.name, "hostname": record.hostname,
              "hosts": hosts, "pid": pid, "ticks": record.pid_ticks, "netns": "",
              "proxy": 0, "proxy_ticks": None}
    state = state_dir()
    try:
        if not bridge.bridge_exists(network):  # first use only: pyroute2 makes the bridge
            with _iproute() as ipr:
                if bridge.ensure_bridge(ipr, network):  # no lock needed (EEXIST-safe)
                    with _FirewallLock() as firewall:
                        firewall.allow_bridge(network["bridge"])
        with Ipam(state, network) as ipam:  # one short critical section per start
            holder["netns"] = netns.path_for(cid)
            address = ipam.allocate(holder)
            if hosts:  # peers may list the name a moment before it answers: harmless
                files.write_new(os.path.join(etc, "resolv.conf"), files.resolv_text(),
                                hosts)
                files.refresh_hosts(ipam.holders)
        netns.bind(cid, pid)
        link = bridge.connect(network, cid, pid, address)
        if sockets:
            from isoinspect.runtime.network.ports import start_proxy

            holder["proxy"] = start_proxy(ports, sockets, address, pid)
            sockets = []
            holder["proxy_ticks"] = process.start_ticks(holder["proxy"])
            with Ipam(state, network) as ipam:  # so rm and gc know the proxy
                ipam.holders[address] = holder
    finally:
        for sock in sockets:
            sock.close()
    return {"name": network["name"], "id": network["id"], "bridge": network["bridge"],
            "ip": address, "prefixlen": link["prefixlen"], "gateway": network["gateway"],
            "mac": link["mac"], "veth": link["veth"], "netns": holder["netns"], "ports": ports}


def _iproute():
    """pyroute2's IPRoute (netlink.py, and contextlib with it, only on the paths using it)."""
    from isoinspect.runtime.network.netlink import iproute as make

    return make()


def _ports(publish: list[str] | None) -> list[dict]:
    """The parsed -p options (the ports module, and its ipaddress, only when there are)."""
    if not publish:
        return []
    from isoinspect.runtime.network.ports import parse_publish

    return [parse_publish(text) for text in publish]


def detach(network_name: str, container_id: str) -> list[str]:
    """Give back the container's address, veth, netns name and proxy; refresh peers' hosts."""
    try:
        network = NetworkStore().get(network_name)
    except NotFound:
        return []
    with Ipam(state_dir(), network) as ipam:
        holder = ipam.release(container_id)
        if holder is not None:
            files.refresh_hosts(ipam.holders)
    done = _teardown(holder or {"id": container_id})  # outside the lock: starts go on
    if holder is not None:
        done.insert(0, f"released address of {holder['name']} in network {network_name}")
    return done


def _teardown(holder: dict) -> list[str]:
    done = []
    if holder.get("proxy") and process.is_alive(holder["proxy"], holder.get("proxy_ticks")):
        try:
            os.kill(holder["proxy"], SIGTERM)
            done.append(f"stopped port proxy {holder['proxy']}")
        except ProcessLookupError:
            pass
    # The veth is left to the kernel: once its netns has no process and no name left, the
    # netns's cleanup (asynchronous) destroys eth0 and its host end with it. RTM_DELLINK here
    # would wait for the same RCU grace period (12-25 ms measured) inside every stop; Docker
    # deletes it synchronously (libnetwork's bridge DeleteEndpoint). A start that finds the
    # name still taken deletes the old link (bridge.connect); gc sweeps any that outlive this.
    if netns.unbind(holder.get("netns") or netns.path_for(holder["id"])):
        done.append(f"removed netns {netns.path_for(holder['id'])}")
    return done


def collect() -> list[str]:
    """``gc``: free what dead containers held, then anything of ours no holder claims."""
    from contextlib import ExitStack

    from isoinspect.runtime.network import bridge

    done: list[str] = []
    store = NetworkStore()
    live: set[str] = set()
    with ExitStack() as stack:  # every network's lock (sorted: starts take only one)
        for network in sorted(store.list(), key=lambda n: n["name"]):
            ipam = stack.enter_context(Ipam(state_dir(), network))
            dead = [holder for holder in ipam.holders.values()
                    if not process.is_alive(holder["pid"], holder["ticks"])]
            for holder in dead:
                ipam.release(holder["id"])
                done.append(f"released address of dead container {holder['name']} "
                            f"in network {network['name']}")
                done += _teardown(holder)
            if dead:
                files.refresh_hosts(ipam.holders)
            live.update(holder["id"][:12] for holder in ipam.holders.values())
        for path in netns.ours():
            if os.path.basename(path)[len(netns.PREFIX):] not in live:
                netns.unbind(path)
                done.append(f"removed orphan netns {path}")
        with _iproute() as ipr:
            for name in bridge.links_named(ipr, bridge.VETH_PREFIX):
                if _is_veth(name) and name[len(bridge.VETH_PREFIX):] not in live:
                    bridge.delete_link(ipr, name)
                    done.append(f"deleted orphan veth {name}")
    return done


def remove_network(name: str) -> dict:
    """``network rm``: refuse while containers use it; delete its bridge, rules and file."""
    from isoinspect.runtime.errors import Conflict
    from isoinspect.runtime.network import bridge

    store = NetworkStore()
    network = store.get(name)
    with Ipam(state_dir(), network) as ipam:
        users = [h["name"] for h in ipam.holders.values()
                 if process.is_alive(h["pid"], h["ticks"])]
        if users:
            raise Conflict(f"network {name} has active endpoints ({', '.join(sorted(users))})")
        for holder in list(ipam.holders.values()):
            ipam.release(holder["id"])
            _teardown(holder)
        with _iproute() as ipr:
            bridge.delete_link(ipr, network["bridge"])
            last = not bridge.links_named(ipr, bridge.BRIDGE_PREFIX)
        with _FirewallLock() as firewall:
            firewall.forget_bridge(network["bridge"])
            if last:
                firewall.remove_chain()
        store.delete(name)
    for suffix in (".json", ".lock"):
        try:
            os.unlink(os.path.join(state_dir(), name + suffix))
        except FileNotFoundError:
            pass
    return network


def endpoints(network: dict) -> dict[str, dict]:
    """The live containers of a network: {address: holder}."""
    with Ipam(state_dir(), network) as ipam:
        return {address: holder for address, holder in ipam.holders.items()
                if process.is_alive(holder["pid"], holder["ticks"])}


class _FirewallLock:
    """Serialise changes to our iptables chain across networks; ``with`` gives the firewall
    module (imported only then). A class, not @contextmanager: see the imports above."""

    def __enter__(self):
        from isoinspect.runtime.network import firewall

        os.makedirs(state_dir(), exist_ok=True)
        self.fd = os.open(os.path.join(state_dir(), "firewall.lock"),
                          os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return firewall

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
