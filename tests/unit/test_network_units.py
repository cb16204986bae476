"""Network pieces without containers: -p parsing, addresses under concurrency, hosts files,
network definitions, and the port proxy forwarding real TCP and UDP on loopback."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import socket
import subprocess
import threading

import pytest

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.network import files
from isoinspect.runtime.network.ipam import Ipam
from isoinspect.runtime.network.ports import check_unique, parse_publish
from isoinspect.runtime.network.store import NetworkStore, parse_subnet, validate_name
from isoinspect.runtime.spec import ContainerSpec


@pytest.mark.parametrize("text, expected", [
    ("8080:80", ("0.0.0.0", 8080, 80, "tcp")),
    ("127.0.0.1:8080:80", ("127.0.0.1", 8080, 80, "tcp")),
    ("127.0.0.1:53:5353/udp", ("127.0.0.1", 53, 5353, "udp")),
    ("9000:9000/tcp", ("0.0.0.0", 9000, 9000, "tcp")),
])
def test_parse_publish(text, expected):
    got = parse_publish(text)
    assert (got["host_ip"], got["host_port"], got["container_port"], got["proto"]) == expected


@pytest.mark.parametrize("text", ["80", "a:80", "8080:0", "8080:70000", "1.2.3:80:80",
                                  "8080:80/sctp", "x:y:z:w", ""])
def test_parse_publish_rejects(text):
    with pytest.raises(IsoinspectError):
        parse_publish(text)


def test_duplicate_publish_and_bad_network_are_spec_errors():
    with pytest.raises(IsoinspectError, match="twice"):
        check_unique([parse_publish("8080:80"), parse_publish("0.0.0.0:8080:81")])
    with pytest.raises(IsoinspectError, match="bridge network"):
        ContainerSpec("busybox", ["true"], network="none", publish=["8080:80"])
    with pytest.raises(IsoinspectError, match="invalid network name"):
        ContainerSpec("busybox", ["true"], network="bad/name")
    with pytest.raises(IsoinspectError, match="no such network"):
        ContainerSpec("busybox", ["true"], network="isoinspect-never-made")
    assert ContainerSpec("busybox", ["true"]).network == "bridge"
    for bad in ("none", "host", "-x", "a" * 65):
        with pytest.raises(IsoinspectError):
            validate_name(bad)
    for bad in ("10.0.0.1/24", "10.0.0.0/30", "nonsense"):
        with pytest.raises(IsoinspectError):
            parse_subnet(bad)


def _grab(directory: str, network: dict, worker: int, count: int, out) -> None:
    got = []
    for index in range(count):
        with Ipam(directory, network) as ipam:
            got.append(ipam.allocate({"id": f"{worker:04d}{index:060d}", "name": "x",
                                      "hostname": "x", "pid": 0, "ticks": None}))
    out.put(got)


def test_ipam_concurrent_processes_never_share_an_address(tmp_path):
    network = {"name": "t", "subnet": "10.99.0.0/24", "gateway": "10.99.0.1"}
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_grab, args=(str(tmp_path), network, w, 25, out))
               for w in range(8)]
    for proc in workers:
        proc.start()
    results = [out.get(timeout=60) for _ in workers]
    for proc in workers:
        proc.join(60)
    addresses = [a for chunk in results for a in chunk]
    assert len(addresses) == 200 and len(set(addresses)) == 200
    assert "10.99.0.1" not in addresses
    assert all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("10.99.0.0/24")
               for a in addresses)
    with open(tmp_path / "t.json") as handle:
        assert len(json.load(handle)) == 200
    with Ipam(str(tmp_path), network) as ipam:  # released addresses come back, lowest first
        released = ipam.find("0003" + "0" * 60)
        assert ipam.release("0003" + "0" * 60)["id"].startswith("0003")
        assert ipam.allocate({"id": "new", "name": "n", "hostname": "n", "pid": 0,
                              "ticks": None}) == released
        for _ in range(53):
            ipam.allocate({"id": "fill"})
        with pytest.raises(IsoinspectError, match="no free address"):
            ipam.allocate({"id": "one too many"})


def test_network_definitions(tmp_path, monkeypatch):
    monkeypatch.setenv("ISOINSPECT_NETWORK_DIR", str(tmp_path))
    monkeypatch.setenv("ISOINSPECT_BRIDGE_SUBNET", "10.77.0.0/16")
    store = NetworkStore()
    default = store.get("bridge")
    assert (default["bridge"], default["subnet"], default["gateway"]) == \
        ("isoinspect0", "10.77.0.0/16", "10.77.0.1")
    first = store.create("one")
    second = store.create("two", "10.215.3.0/24")
    assert first["subnet"] == "10.214.0.0/24" and second["gateway"] == "10.215.3.1"
    assert first["bridge"].startswith("isoinspect-") and len(first["bridge"]) <= 15
    with pytest.raises(IsoinspectError, match="already exists"):
        store.create("one")
    with pytest.raises(IsoinspectError, match="overlaps"):
        store.create("three", "10.215.0.0/16")
    assert [n["name"] for n in store.list()] == ["bridge", "one", "two"]
    store.delete("one")
    with pytest.raises(IsoinspectError, match="not found"):
        store.get("one")


def test_hosts_file_lists_every_peer_and_is_rewritten_in_place(tmp_path):
    own, peer = tmp_path / "own", tmp_path / "peer"
    own.write_text("old\n")
    peer.write_text("old\n")
    inode = os.stat(own).st_ino
    holders = {"10.1.0.2": {"name": "web", "hostname": "abc", "hosts": str(own)},
               "10.1.0.3": {"name": "db", "hostname": "db", "hosts": str(peer)}}
    files.refresh_hosts(holders)
    assert own.read_text().splitlines()[2:] == ["10.1.0.2\tabc web", "10.1.0.3\tdb"]
    assert peer.read_text().splitlines()[2] == "10.1.0.3\tdb"
    assert os.stat(own).st_ino == inode
    resolv = tmp_path / "resolv"
    resolv.write_text("# c\nnameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch lan\n")
    assert files.resolv_text(str(resolv)) == "nameserver 9.9.9.9\nsearch lan\n"


def _echo_server(kind: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, kind)
    server.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        server.listen(4)

        def serve():
            conn, _ = server.accept()
            with conn:
                conn.sendall(conn.recv(1024).upper())
    else:
        def serve():
            data, peer = server.recvfrom(1024)
            server.sendto(data.upper(), peer)
    threading.Thread(target=serve, daemon=True).start()
    return server


def test_proxy_forwards_tcp_and_udp_and_stops_with_the_container():
    from isoinspect.runtime.network.ports import bind_all, start_proxy

    tcp, udp = _echo_server(socket.SOCK_STREAM), _echo_server(socket.SOCK_DGRAM)
    ports = [{"host_ip": "127.0.0.1", "host_port": 0, "container_port":
              tcp.getsockname()[1], "proto": "tcp"},
             {"host_ip": "127.0.0.1", "host_port": 0, "container_port":
              udp.getsockname()[1], "proto": "udp"}]
    sockets = bind_all(ports)
    published = [s.getsockname()[1] for s in sockets]
    with pytest.raises(IsoinspectError, match="cannot publish"):  # the port is taken now
        bind_all([dict(ports[0], host_port=published[0])])
    container = subprocess.Popen(["sleep", "60"])
    proxy = start_proxy(ports, sockets, "127.0.0.1", container.pid)
    try:
        with socket.create_connection(("127.0.0.1", published[0]), timeout=10) as client:
            client.sendall(b"hello tcp")
            assert client.recv(1024) == b"HELLO TCP"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(b"hello udp", ("127.0.0.1", published[1]))
            assert client.recv(1024) == b"HELLO UDP"
    finally:
        container.kill()
        container.wait()
    _, status = os.waitpid(proxy, 0)  # exits on its own once the "container" is gone
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_gc_lists_only_container_netns_entries(tmp_path):
    """gc removes /run/netns names no live container claims; the private test/bench dockerd's
    isoinspect-dockerd-* name is not a container's and must survive a concurrent gc."""
    from isoinspect.runtime.network import netns

    for name in ("isoinspect-0123456789ab", "isoinspect-dockerd-42-a1b2c3", "isoinspect-XYZ",
                 "other"):
        (tmp_path / name).touch()
    assert netns.ours(str(tmp_path)) == [str(tmp_path / "isoinspect-0123456789ab")]
