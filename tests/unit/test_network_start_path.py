"""What a bridged start pays before its first netlink message: the modules it imports and the
address arithmetic that replaces ipaddress there; and a stop that changes nothing writes
nothing (``rm`` of a container whose monitor already gave its address back)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest

from isoinspect.runtime.network import addresses
from isoinspect.runtime.network.ipam import Ipam


@pytest.mark.parametrize("subnet", ["10.213.0.0/16", "10.214.7.0/24", "192.168.9.8/29",
                                    "172.16.0.0/30", "10.0.0.2/31", "10.0.0.9/32"])
def test_hosts_match_ipaddress(subnet):
    expected = [str(address) for address in ipaddress.IPv4Network(subnet).hosts()]
    assert [addresses.to_text(value) for value in addresses.hosts(subnet)] == expected
    assert addresses.prefixlen(subnet) == ipaddress.IPv4Network(subnet).prefixlen
    assert addresses.to_int(expected[-1]) == int(ipaddress.IPv4Address(expected[-1]))


def test_the_hook_imports_no_heavy_module():
    """The hook is imported after the clone, while the container waits for its veth: no
    contextlib, json, re, ipaddress (nor pyroute2) on that path; ``rm`` of a stopped container
    imports it too, and needs neither ctypes nor the netlink code."""
    heavy = ("contextlib", "json", "re", "ipaddress", "typing", "pyroute2", "ctypes",
             "isoinspect.runtime.network.rtnetlink")
    assert _loaded_after("import isoinspect.runtime.network.hook", heavy) == ["-"]


def test_the_netlink_code_imports_no_socket_module():
    """rtnetlink speaks through a libc socket and os.read/os.write: no socket, not even
    _socket (a shared library to load), on the bridged start path."""
    statements = ("from isoinspect.runtime.network.rtnetlink import Rtnl; rtnl = Rtnl(); "
                  "print(rtnl.link('lo').index); rtnl.close()")
    assert _loaded_after(statements, ("socket", "_socket")) == ["1", "-"]


def _loaded_after(statements: str, modules: tuple[str, ...]) -> list[str]:
    """What ``statements`` print in a fresh interpreter started as the fast launcher starts
    (-I -S, the venv's isoinspect-src tree), then which of ``modules`` it loaded ('-': none)."""
    package_parent = os.path.join(sys.prefix, "isoinspect-src")
    code = (f"import sys; sys.path[:0] = [{package_parent!r}]; {statements}; "
            f"print(' '.join(m for m in {modules!r} if m in sys.modules) or '-')")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, cwd="/", check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_an_unchanged_allocation_file_is_not_rewritten(tmp_path):
    network = {"name": "n", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1"}
    with Ipam(str(tmp_path), network) as ipam:
        assert ipam.allocate({"id": "a" * 64}) == "10.9.0.2"
    path = os.path.join(str(tmp_path), "n.json")
    before = os.stat(path).st_ino
    with Ipam(str(tmp_path), network) as ipam:
        assert ipam.release("b" * 64) is None  # a second detach: nothing held
    assert os.stat(path).st_ino == before
    with Ipam(str(tmp_path), network) as ipam:
        assert ipam.release("a" * 64)["id"] == "a" * 64
    assert os.stat(path).st_ino != before
    with Ipam(str(tmp_path), network) as ipam:
        assert ipam.holders == {}


def test_a_stop_already_undone_is_seen_without_the_hook(tmp_path, monkeypatch):
    """``rm`` after the monitor's poststop: no address, no netns name, so nothing to import
    or lock; either one left means the full detach runs."""
    from isoinspect.runtime.network import holds_nothing, netns

    monkeypatch.setenv("ISOINSPECT_NETWORK_DIR", str(tmp_path))
    cid, other = "ab" * 32, "cd" * 32
    assert holds_nothing("bridge", cid)  # no allocation file at all
    network = {"name": "bridge", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1"}
    with Ipam(os.path.join(str(tmp_path), "state"), network) as ipam:
        ipam.allocate({"id": cid, "name": "x"})
        ipam.allocate({"id": other, "name": "y"})
    assert not holds_nothing("bridge", cid)
    with Ipam(os.path.join(str(tmp_path), "state"), network) as ipam:
        ipam.release(cid)
    assert holds_nothing("bridge", cid) and not holds_nothing("bridge", other)
    path = netns.path_for(cid)  # a netns name left (its monitor died before undoing it)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    try:
        assert not holds_nothing("bridge", cid)
    finally:
        os.unlink(path)
