"""The published-port proxy's loop: TCP streams and UDP datagrams to the container's address.

One process per container, single-threaded (selectors). It stops when the container's PID 1
exits (its pidfd becomes readable) or when it is sent SIGTERM by the runtime.
"""

from __future__ import annotations

import selectors
import socket

_CHUNK = 65536


def serve(published: list[tuple[dict, socket.socket]], address: str, watch_fd: int) -> None:
    """Forward until the watched process exits."""
    sel = selectors.DefaultSelector()
    sel.register(watch_fd, selectors.EVENT_READ, ("exit", None))
    udp_clients: dict = {}
    for port, sock in published:
        sock.setblocking(False)
        kind = "accept" if port["proto"] == "tcp" else "udp"
        sel.register(sock, selectors.EVENT_READ, (kind, (port, sock)))
    while True:
        for key, _ in sel.select():
            kind, data = key.data
            if kind == "exit":
                return
            if kind == "accept":
                _accept(sel, data, address)
            elif kind == "pipe":
                _pipe(sel, key.fileobj, data)
            elif kind == "udp":
                _udp_in(sel, data, address, udp_clients)
            elif kind == "udp-reply":
                _udp_out(key.fileobj, data)


def _accept(sel: selectors.BaseSelector, data: tuple, address: str) -> None:
    port, listener = data
    try:
        client, _ = listener.accept()
    except BlockingIOError:
        return
    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    upstream.settimeout(5)
    try:
        upstream.connect((address, port["container_port"]))
    except OSError:
        client.close()
        upstream.close()
        return
    for sock in (client, upstream):
        sock.setblocking(True)
        sock.settimeout(None)
    sel.register(client, selectors.EVENT_READ, ("pipe", upstream))
    sel.register(upstream, selectors.EVENT_READ, ("pipe", client))


def _pipe(sel: selectors.BaseSelector, source: socket.socket, target: socket.socket) -> None:
    try:
        chunk = source.recv(_CHUNK)
    except OSError:
        chunk = b""
    if chunk:
        try:
            target.sendall(chunk)
            return
        except OSError:
            pass
    for sock in (source, target):  # one side closed: close both
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


def _udp_in(sel: selectors.BaseSelector, data: tuple, address: str, clients: dict) -> None:
    port, listener = data
    try:
        payload, client = listener.recvfrom(_CHUNK)
    except BlockingIOError:
        return
    upstream = clients.get(client)
    if upstream is None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.connect((address, port["container_port"]))
        clients[client] = upstream
        sel.register(upstream, selectors.EVENT_READ, ("udp-reply", (listener, client)))
    try:
        upstream.send(payload)
    except OSError:
        pass


def _udp_out(upstream: socket.socket, data: tuple) -> None:
    listener, client = data
    try:
        listener.sendto(upstream.recv(_CHUNK), client)
    except OSError:
        pass
