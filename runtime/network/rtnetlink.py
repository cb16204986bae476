"""The few rtnetlink requests a container start and stop make, spoken directly on a socket.

Why not pyroute2 here: importing even its bare netlink classes costs 20-40 ms (100+ ms for the
whole package), several times what the requests themselves take, and a bridge start needs only
five messages: create the veth pair (host end enslaved and up, peer ``eth0`` born up in the
container's netns), look ``eth0`` up there, give it its address and default route, and delete
the host end at the end. pyroute2 keeps everything else (bridges, listings, ``network`` and
``doctor``). Messages are built with struct from linux/rtnetlink.h and linux/if_link.h; a
refused request raises OSError with the kernel's errno.
"""

from __future__ import annotations

import os
import struct

from isoinspect.runtime.network.addresses import to_int

# No socket module, not even _socket: importing it (a shared library) costs ~0.5-1 ms of a
# bridged start, and a netlink socket needs none of it: socket(2) through libc (linux.syscalls,
# loaded on the start path anyway), then os.write and os.read.

# linux/socket.h, linux/netlink.h
AF_UNSPEC, AF_INET, AF_NETLINK = 0, 2, 16
SOCK_RAW, SOCK_CLOEXEC = 3, 0o2000000
NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
# linux/rtnetlink.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE = 20, 24
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
RTA_GATEWAY = 5
# linux/if_link.h, linux/if_addr.h, linux/veth.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_PID = 1, 3, 10, 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
NLA_F_NESTED = 0x8000

_HEADER = struct.Struct("=IHHII")      # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")     # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")      # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")   # rtmsg: family, dst/src len, tos, table, proto, scope,
#                                        type, flags
_ATTR = struct.Struct("=HH")           # rtattr: len, type


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def name_attr(kind: int, name: str) -> bytes:
    return attr(kind, name.encode() + b"\0")


def ifinfo(index: int = 0, up: bool = False) -> bytes:
    """An ifinfomsg; ``up`` sets IFF_UP (and only it: the change mask)."""
    return _IFINFO.pack(AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body


def parse_attrs(data: bytes, offset: int) -> dict[int, bytes]:
    """{type: payload} of the rtattrs from ``offset`` to the end of ``data``."""
    found = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & ~NLA_F_NESTED] = data[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return found


def veth_request(host: str, peer: str, peer_pid: int, master: int, seq: int) -> bytes:
    """RTM_NEWLINK of a veth pair: ``host`` enslaved to ``master`` and up here, ``peer`` in the
    netns of ``peer_pid`` (created there: no move, no rename). The peer cannot be born up: the
    kernel opens it before the pair is linked and refuses (ENOTCONN); see up_request."""
    peer_info = ifinfo() + name_attr(IFLA_IFNAME, peer) + \
        attr(IFLA_NET_NS_PID, struct.pack("=I", peer_pid))
    linkinfo = name_attr(IFLA_INFO_KIND, "veth") + \
        attr(IFLA_INFO_DATA | NLA_F_NESTED, attr(VETH_INFO_PEER | NLA_F_NESTED, peer_info))
    body = ifinfo(up=True) + name_attr(IFLA_IFNAME, host) + \
        attr(IFLA_MASTER, struct.pack("=I", master)) + \
        attr(IFLA_LINKINFO | NLA_F_NESTED, linkinfo)
    return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def up_request(index: int, seq: int) -> bytes:
    """RTM_NEWLINK setting IFF_UP on an existing link."""
    return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfo(index, up=True))


def _packed(address: str) -> bytes:
    """An IPv4 address in network byte order (inet_aton)."""
    return to_int(address).to_bytes(4, "big")


def address_request(index: int, address: str, prefixlen: int, seq: int) -> bytes:
    """RTM_NEWADDR of an IPv4 address (local = address, as ``ip addr add`` sends it)."""
    packed = _packed(address)
    body = _IFADDR.pack(AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + \
        attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def default_route_request(gateway: str, seq: int) -> bytes:
    """RTM_NEWROUTE of 0.0.0.0/0 via ``gateway`` in the main table."""
    body = _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                       RTN_UNICAST, 0) + attr(RTA_GATEWAY, _packed(gateway))
    return message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq,
                   body)


def link_request(kind: int, name: str, seq: int) -> bytes:
    """RTM_GETLINK or RTM_DELLINK of the link called ``name``."""
    return message(kind, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfo() + name_attr(IFLA_IFNAME, name))


class Link:
    """What a start needs to know of a link: its index and MAC address.

    A slotted class, not a dataclass: importing dataclasses (and inspect) costs ~10 ms here,
    on the start path."""

    __slots__ = ("index", "mac")

    def __init__(self, index: int, mac: str) -> None:
        self.index, self.mac = index, mac

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and (self.index, self.mac) == (other.index, other.mac)

    def __repr__(self) -> str:
        return f"Link(index={self.index}, mac={self.mac!r})"


def parse_link(data: bytes) -> Link:
    """The Link in one RTM_NEWLINK message (header included)."""
    _, _, index, _, _ = _IFINFO.unpack_from(data, _HEADER.size)
    attrs = parse_attrs(data, _HEADER.size + _IFINFO.size)
    return Link(index, ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b"")))


class Rtnl:
    """A NETLINK_ROUTE socket of one network namespace; one request at a time."""

    def __init__(self) -> None:
        from isoinspect.runtime.linux import syscalls

        # Unbound: the first write binds it (a port id of its own); written without an
        # address, a message goes to the kernel.
        self.fd = syscalls.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
        self.seq = 0

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def request(self, data: bytes, what: str) -> bytes | None:
        """Send one request; return its reply message (None for a bare ACK); OSError if the
        kernel refused it."""
        seq = _HEADER.unpack_from(data)[3]
        os.write(self.fd, data)  # to the kernel
        reply = None
        while True:
            chunk = os.read(self.fd, 65536)
            offset = 0
            while offset + _HEADER.size <= len(chunk):
                length, kind, _, got_seq, _ = _HEADER.unpack_from(chunk, offset)
                if length < _HEADER.size:
                    break
                if got_seq == seq:
                    if kind == NLMSG_ERROR:
                        error = struct.unpack_from("=i", chunk, offset + _HEADER.size)[0]
                        if error:
                            raise OSError(-error, f"{what}: {os.strerror(-error)}")
                        return reply
                    if kind == NLMSG_DONE:
                        return reply
                    reply = chunk[offset:offset + length]
                offset += (length + 3) & ~3

    def add_veth(self, host: str, peer: str, peer_pid: int, master: int) -> None:
        self.request(veth_request(host, peer, peer_pid, master, self.next_seq()),
                     f"create veth {host}")

    def link(self, name: str) -> Link:
        reply = self.request(link_request(RTM_GETLINK, name, self.next_seq()), f"find {name}")
        if reply is None:
            raise OSError(19, f"find {name}: no reply")
        return parse_link(reply)

    def delete_link(self, name: str) -> bool:
        """Delete the link ``name`` (a veth takes its peer); False if it was not there."""
        try:
            self.request(link_request(RTM_DELLINK, name, self.next_seq()), f"delete {name}")
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return False
            raise
        return True

    def set_up(self, index: int) -> None:
        self.request(up_request(index, self.next_seq()), f"set link {index} up")

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        self.request(address_request(index, address, prefixlen, self.next_seq()),
                     f"add address {address}")

    def add_default_route(self, gateway: str) -> None:
        self.request(default_route_request(gateway, self.next_seq()),
                     f"add default route via {gateway}")


def rtnl_in(pid: int) -> Rtnl:
    """An Rtnl socket bound in the network namespace of ``pid``."""
    from isoinspect.runtime.network.netns import made_in

    return made_in(pid, Rtnl)
