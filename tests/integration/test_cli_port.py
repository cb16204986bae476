"""``isoinspect port`` against a real container publishing ports on 127.0.0.1 (Docker's output)."""

from __future__ import annotations

import socket


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_port_lists_published_ports_like_docker(iso):
    tcp, udp = _free_port(), _free_port()
    iso("run", "-d", "--name", "isotest-port", "-p", f"127.0.0.1:{tcp}:80",
        "-p", f"127.0.0.1:{udp}:53/udp", "busybox", "sleep", "60", check=True)
    listed = iso("port", "isotest-port", check=True).stdout.splitlines()
    assert listed == [f"53/udp -> 127.0.0.1:{udp}", f"80/tcp -> 127.0.0.1:{tcp}"]
    assert iso("port", "isotest-port", "80", check=True).stdout == f"127.0.0.1:{tcp}\n"
    assert iso("port", "isotest-port", "53/udp", check=True).stdout == f"127.0.0.1:{udp}\n"
    # The address it prints is really served: a connection is accepted there.
    with socket.create_connection(("127.0.0.1", tcp), timeout=10):
        pass
    # Docker: "No public port '81/tcp' published for NAME", exit 1.
    missing = iso("port", "isotest-port", "81")
    assert missing.returncode == 1 and "No public port '81/tcp'" in missing.stderr
    bad = iso("port", "isotest-port", "http")
    assert bad.returncode == 125 and bad.stderr.count("\n") == 1
    iso("stop", "-t", "0", "isotest-port", check=True)
    # A stopped container publishes nothing (docker port prints nothing, exit 0).
    stopped = iso("port", "isotest-port")
    assert stopped.returncode == 0 and stopped.stdout == ""


def test_port_of_unknown_container_exits_1(iso):
    result = iso("port", "isotest-nosuch")
    assert result.returncode == 1 and "no such container" in result.stderr
