"""The rtnetlink messages a bridge start sends, byte by byte (linux/rtnetlink.h layouts)."""

from __future__ import annotations

import socket
import struct

from isoinspect.runtime.network import rtnetlink as rt


def _header(data: bytes) -> tuple:
    return struct.unpack_from("=IHHII", data)


def test_attr_pads_to_four_bytes():
    assert rt.attr(3, b"eth0\0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert rt.parse_attrs(rt.attr(3, b"ab") + rt.attr(1, b"\1\2\3\4"), 0) == \
        {3: b"ab", 1: b"\1\2\3\4"}


def test_veth_request_nests_the_peer_in_its_netns():
    data = rt.veth_request("iso0123456789ab", "eth0", 4242, 6, seq=7)
    length, kind, flags, seq, _ = _header(data)
    assert (length, kind, seq) == (len(data), rt.RTM_NEWLINK, 7)
    assert flags == rt.NLM_F_REQUEST | rt.NLM_F_ACK | rt.NLM_F_CREATE | rt.NLM_F_EXCL
    _, _, index, ifflags, change = struct.unpack_from("=BxHiII", data, 16)
    assert (index, ifflags, change) == (0, rt.IFF_UP, rt.IFF_UP)  # host end born up
    top = rt.parse_attrs(data, 32)
    assert top[rt.IFLA_IFNAME] == b"iso0123456789ab\0"
    assert top[rt.IFLA_MASTER] == struct.pack("=I", 6)
    info = rt.parse_attrs(top[rt.IFLA_LINKINFO], 0)
    assert info[rt.IFLA_INFO_KIND] == b"veth\0"
    peer = rt.parse_attrs(info[rt.IFLA_INFO_DATA], 0)[rt.VETH_INFO_PEER]
    assert struct.unpack_from("=BxHiII", peer)[3] == 0  # the peer is set up later, inside
    peer_attrs = rt.parse_attrs(peer, 16)
    assert peer_attrs[rt.IFLA_IFNAME] == b"eth0\0"
    assert peer_attrs[rt.IFLA_NET_NS_PID] == struct.pack("=I", 4242)


def test_address_and_route_requests():
    data = rt.address_request(2, "10.213.0.5", 16, seq=1)
    assert _header(data)[1] == rt.RTM_NEWADDR and _header(data)[0] == len(data) == 40
    assert struct.unpack_from("=BBBBI", data, 16) == (socket.AF_INET, 16, 0, 0, 2)
    attrs = rt.parse_attrs(data, 24)
    assert attrs[rt.IFA_LOCAL] == attrs[rt.IFA_ADDRESS] == bytes([10, 213, 0, 5])
    route = rt.default_route_request("10.213.0.1", seq=2)
    assert _header(route)[1] == rt.RTM_NEWROUTE
    family, dst_len, _, _, table, proto, scope, kind, _ = struct.unpack_from("=BBBBBBBBI",
                                                                           route, 16)
    assert (family, dst_len, table, proto, scope, kind) == (
        socket.AF_INET, 0, rt.RT_TABLE_MAIN, rt.RTPROT_BOOT, rt.RT_SCOPE_UNIVERSE,
        rt.RTN_UNICAST)
    assert rt.parse_attrs(route, 28) == {rt.RTA_GATEWAY: bytes([10, 213, 0, 1])}
    up = rt.up_request(9, seq=3)
    assert struct.unpack_from("=BxHiII", up, 16)[2:] == (9, rt.IFF_UP, rt.IFF_UP)


def test_parse_link_reads_index_and_mac():
    body = struct.pack("=BxHiII", 0, 1, 5, 0, 0) + rt.attr(rt.IFLA_IFNAME, b"eth0\0") + \
        rt.attr(rt.IFLA_ADDRESS, bytes([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]))
    message = struct.pack("=IHHII", 16 + len(body), rt.RTM_NEWLINK, 0, 1, 0) + body
    assert rt.parse_link(message) == rt.Link(5, "02:42:ac:11:00:02")


def test_a_refusal_is_an_oserror_with_the_kernels_errno():
    """Against the kernel: finding a link that does not exist in this netns."""
    with rt.Rtnl() as here:
        try:
            here.link("isonone0")
        except OSError as exc:
            assert exc.errno == 19  # ENODEV
        else:
            raise AssertionError("no error for a missing link")
        assert here.link("lo").index == 1
        assert here.delete_link("isonone0") is False
