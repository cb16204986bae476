"""Network definitions: the default ``bridge`` network and user-defined ones.

A network is a JSON file {name, id, bridge, subnet, gateway, created} under the host-global
network directory. The default network is written on first use with the subnet from
ISOINSPECT_BRIDGE_SUBNET (default 10.213.0.0/16) on bridge ``isoinspect0``; user networks get
bridge ``isoinspect-<4 hex>`` and, unless --subnet is given, the first free 10.214.N.0/24.
"""

from __future__ import annotations

import os
import time

from isoinspect.runtime import json_lite
from isoinspect.runtime.errors import Conflict, IsoinspectError, NotFound
from isoinspect.runtime.fsutil import create_atomic

TYPE_CHECKING = False  # typing itself is not imported on the start path
if TYPE_CHECKING:  # for annotations only
    import ipaddress

# ipaddress, re and json are not imported at module level: a bridged start reads a definition
# here, and those imports (with the enum/functools/collections they pull in) cost several ms.

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "isoinspect0"
DEFAULT_SUBNET = "10.213.0.0/16"
BRIDGE_PREFIX = "isoinspect"
RESERVED = ("none", "host", "default")
_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$"


def base_dir() -> str:
    """Where definitions (lib) and allocations (run) live: host-global, like the bridges."""
    return os.environ.get("ISOINSPECT_NETWORK_DIR") or ""


def definitions_dir() -> str:
    """Network definitions: persistent."""
    base = base_dir()
    return os.path.join(base, "networks") if base else "/var/lib/isoinspect/networks"


def state_dir() -> str:
    """Address allocations: volatile, like the bridges and veths they describe."""
    base = base_dir()
    return os.path.join(base, "state") if base else "/run/isoinspect/networks"


def validate_name(name: str) -> str:
    """Raise a one-line error for a name that cannot be a network's."""
    import re

    if not re.match(_NAME, name) or name in RESERVED:
        raise IsoinspectError(f"invalid network name {name!r}: use letters, digits, '_', '.', "
                              "'-' (not none, host or default)")
    return name


def require_network(name: str) -> None:
    """--network NAME must name a network made by ``network create`` (checked before start)."""
    validate_name(name)
    if not os.path.exists(os.path.join(definitions_dir(), f"{name}.json")):
        raise IsoinspectError(f"invalid --network {name!r}: no such network (see "
                              "isoinspect network ls)")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """An IPv4 subnet with room for a gateway and at least one container."""
    import ipaddress

    try:
        subnet = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise IsoinspectError(f"invalid subnet {text!r}: {exc}") from None
    if subnet.prefixlen > 29:
        raise IsoinspectError(f"subnet {text} is too small (at most /29)")
    return subnet


class NetworkStore:
    """Create, find, list and delete network definitions (files; bridges come later)."""

    def __init__(self) -> None:
        self.dir = definitions_dir()

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.json")

    def get(self, name: str) -> dict:
        """The network called ``name``; the default one is defined on first use."""
        try:
            with open(self._path(name)) as handle:
                return json_lite.loads(handle.read())
        except FileNotFoundError:
            if name == DEFAULT_NETWORK:
                return self._define_default()
            raise NotFound(f"network {name} not found") from None
        except (OSError, ValueError) as exc:
            raise IsoinspectError(f"network {name}: unreadable definition ({exc})") from None

    def _define_default(self) -> dict:
        subnet = parse_subnet(os.environ.get("ISOINSPECT_BRIDGE_SUBNET") or DEFAULT_SUBNET)
        try:
            return self._write(DEFAULT_NETWORK, DEFAULT_BRIDGE, subnet)
        except Conflict:  # defined concurrently
            with open(self._path(DEFAULT_NETWORK)) as handle:
                return json_lite.loads(handle.read())

    def list(self) -> list[dict]:
        self.get(DEFAULT_NETWORK)
        found = []
        for entry in sorted(os.listdir(self.dir)):
            if entry.endswith(".json"):
                try:
                    found.append(self.get(entry[:-5]))
                except IsoinspectError:
                    continue
        return found

    def create(self, name: str, subnet_text: str | None = None) -> dict:
        validate_name(name)
        if name == DEFAULT_NETWORK:
            raise Conflict(f"network {name} already exists (the default network)")
        existing = self.list()
        if subnet_text:
            import ipaddress

            subnet = parse_subnet(subnet_text)
            for other in existing:
                if subnet.overlaps(ipaddress.IPv4Network(other["subnet"])):
                    raise Conflict(f"subnet {subnet} overlaps network {other['name']} "
                                   f"({other['subnet']})")
        else:
            subnet = _free_subnet(existing)
        import secrets

        bridges = {other["bridge"] for other in existing}
        bridge = f"{BRIDGE_PREFIX}-{secrets.token_hex(2)}"
        while bridge in bridges:
            bridge = f"{BRIDGE_PREFIX}-{secrets.token_hex(2)}"
        return self._write(name, bridge, subnet)

    def _write(self, name: str, bridge: str, subnet: ipaddress.IPv4Network) -> dict:
        import secrets

        os.makedirs(self.dir, exist_ok=True)
        network = {"name": name, "id": secrets.token_hex(32), "bridge": bridge,
                   "subnet": str(subnet), "gateway": str(next(subnet.hosts())),
                   "created": time.time()}
        try:  # two creates cannot both win
            create_atomic(self._path(name), json_lite.dumps(network).encode())
        except FileExistsError:
            raise Conflict(f"network with name {name} already exists") from None
        return network

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            raise NotFound(f"network {name} not found") from None


def _free_subnet(existing: list[dict]) -> ipaddress.IPv4Network:
    import ipaddress

    taken = [ipaddress.IPv4Network(other["subnet"]) for other in existing]
    for third in range(256):
        candidate = ipaddress.IPv4Network(f"10.214.{third}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise IsoinspectError("no free subnet left in 10.214.0.0/16: pass --subnet")
