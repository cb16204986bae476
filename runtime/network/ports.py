"""``-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]``: parse, bind, and proxy to the container.

Published ports are served by a small userspace proxy (like docker-proxy), not by DNAT rules:
reaching a container from 127.0.0.1 with DNAT needs route_localnet on the bridge plus
masquerading, i.e. host sysctl and NAT changes that outlive a crash; a proxy owns nothing but
its sockets. The listening sockets are bound by the runtime before the container runs (a busy
port fails the start cleanly), then a forked proxy serves them and exits by itself when the
container's PID 1 exits (it watches a pidfd), so even a killed monitor cannot leave it behind.
"""

from __future__ import annotations

import ipaddress
import os

from isoinspect.runtime.errors import IsoinspectError


def parse_publish(text: str) -> dict:
    """One -p value -> {host_ip, host_port, container_port, proto}; one-line error if bad."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise IsoinspectError(f"invalid -p {text!r}: protocol must be tcp or udp")
    parts = spec.rsplit(":", 2)
    if len(parts) == 2:
        host_ip, host_port, container_port = "0.0.0.0", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_port, container_port = parts
        host_ip = host_ip.strip("[]") or "0.0.0.0"
    else:
        raise IsoinspectError(f"invalid -p {text!r}: expected "
                              "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]")
    try:
        ipaddress.IPv4Address(host_ip)
    except ValueError:
        raise IsoinspectError(f"invalid -p {text!r}: {host_ip!r} is not an IPv4 address") \
            from None
    return {"host_ip": host_ip, "host_port": _port(host_port, text),
            "container_port": _port(container_port, text), "proto": proto}


def _port(value: str, text: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise IsoinspectError(f"invalid -p {text!r}: port {value!r} is not in 1-65535")
    return int(value)


def check_unique(ports: list[dict]) -> None:
    seen = set()
    for port in ports:
        key = (port["host_ip"], port["host_port"], port["proto"])
        if key in seen:
            raise IsoinspectError(f"port {port['host_port']}/{port['proto']} is published twice")
        seen.add(key)


def bind_all(ports: list[dict]) -> list:
    """Listening sockets for every published port; a busy port is a one-line error."""
    import socket

    sockets = []
    try:
        for port in ports:
            kind = socket.SOCK_STREAM if port["proto"] == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((port["host_ip"], port["host_port"]))
            except OSError as exc:
                raise IsoinspectError(
                    f"cannot publish {port['host_ip']}:{port['host_port']}/{port['proto']}: "
                    f"{exc.strerror}") from None
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def start_proxy(ports: list[dict], sockets: list, address: str, container_pid: int) -> int:
    """Fork the proxy serving ``sockets`` for the container at ``address``; return its pid."""
    watch = os.pidfd_open(container_pid)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setsid()
            keep = {0, 1, 2, watch} | {sock.fileno() for sock in sockets}
            _close_other_fds(keep)
            from isoinspect.runtime.network.proxy import serve

            serve(list(zip(ports, sockets)), address, watch)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(watch)
    for sock in sockets:
        sock.close()
    return pid


def _close_other_fds(keep: set[int]) -> None:
    """The proxy must not hold the runtime's locks or pipes (flock follows the open file)."""
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
