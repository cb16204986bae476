"""IPv4 addresses as integers, for the start path: ``ipaddress`` (and the functools/re it
pulls in) costs ~1-2 ms to import, and a start only needs a subnet's prefix length and its
host addresses. Subnets here are the normalised ``a.b.c.d/n`` texts network definitions hold
(store.parse_subnet makes them); ``ipaddress`` stays for parsing what users type."""

from __future__ import annotations


def to_int(address: str) -> int:
    """``10.213.0.2`` -> 0x0AD50002."""
    a, b, c, d = (int(part) for part in address.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def to_text(value: int) -> str:
    """The dotted form of an address, as str(ipaddress.IPv4Address(value)) writes it."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def prefixlen(subnet: str) -> int:
    """The prefix length of ``a.b.c.d/n``."""
    return int(subnet.partition("/")[2])


def hosts(subnet: str) -> range:
    """The host addresses of ``subnet`` as integers, in ipaddress.IPv4Network.hosts() order
    (all but the network and broadcast addresses; both of a /31, the one of a /32)."""
    base, _, length = subnet.partition("/")
    bits = int(length)
    first = to_int(base) & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)
    size = 1 << (32 - bits)
    if bits >= 31:
        return range(first, first + size)
    return range(first + 1, first + size - 1)
