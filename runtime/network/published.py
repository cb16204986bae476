"""What ``isoinspect port`` shows: the ports a running container publishes (``docker port``).

The network hook records each ``-p`` it bound in the container's state (``network["ports"]``)
while the container runs; a stopped container publishes nothing, as in Docker.
"""

from __future__ import annotations

from dataclasses import dataclass

from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import DAEMON_EXIT_CODE, IsoinspectError, UsageError


@dataclass(frozen=True)
class PublishedPort:
    """One container port reachable on a host address."""

    container_port: int
    proto: str
    host_ip: str
    host_port: int

    @property
    def private(self) -> str:
        return f"{self.container_port}/{self.proto}"

    @property
    def public(self) -> str:
        return f"{self.host_ip}:{self.host_port}"


def published(record: ContainerState) -> list[PublishedPort]:
    """The container's published ports, sorted by container port then protocol."""
    if record.status != Status.RUNNING or not record.network:
        return []
    ports = [PublishedPort(int(p["container_port"]), p["proto"], p["host_ip"],
                           int(p["host_port"])) for p in record.network.get("ports") or []]
    return sorted(ports, key=lambda p: (p.container_port, p.proto, p.host_ip, p.host_port))


def parse_private(text: str) -> tuple[int, str]:
    """``PRIVATE_PORT[/PROTO]`` -> (port, proto); tcp when no protocol is given."""
    port, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    if not port.isdigit() or not 1 <= int(port) <= 65535 or proto not in ("tcp", "udp", "sctp"):
        raise UsageError(f"invalid port {text!r}: expected PRIVATE_PORT[/PROTO], e.g. 80/tcp")
    return int(port), proto


def lookup(record: ContainerState, private: str | None) -> list[PublishedPort]:
    """Every published port, or those of one container port; Docker's error when it has none."""
    ports = published(record)
    if private is None:
        return ports
    port, proto = parse_private(private)
    chosen = [p for p in ports if (p.container_port, p.proto) == (port, proto)]
    if not chosen:
        raise IsoinspectError(f"No public port '{port}/{proto}' published for {record.name}",
                              exit_code=DAEMON_EXIT_CODE)
    return chosen
