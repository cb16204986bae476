"""Bridge networking for real: veths, addresses, names, isolation, published ports, no leaks.

Traffic only flows between the host and containers these tests start, or between those
containers (busybox's nc, ping and httpd; its static wget crashes on this host).
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import time

import pytest

HTTP_GET = 'printf "GET /hostname HTTP/1.0\\r\\n\\r\\n" | nc {host} 80'


@pytest.fixture
def nets(iso):
    """Make user networks with unique names; remove containers, then them, at the end."""
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"isotest-{os.getpid()}-{suffix}"
        iso("network", "create", name, check=True)
        made.append(name)
        return name

    yield make
    ids = iso("ps", "-aq").stdout.split()
    if ids:
        iso("rm", "-f", *ids)
    for name in made:
        result = iso("network", "rm", name)
        assert result.returncode == 0, result.stderr
        assert name not in iso("network", "ls", "-q", check=True).stdout.split()


def _inspect(iso, ref: str) -> dict:
    return json.loads(iso("inspect", ref, check=True).stdout)[0]


def _allocations() -> dict:
    found = {}
    for path in glob.glob("/run/isoinspect/networks/*.json"):
        with open(path) as handle:
            found.update(json.load(handle))
    return found


def _traces(cid: str) -> list[str]:
    """Everything of ours still tied to container ``cid`` on the host."""
    left = [p for p in (f"/sys/class/net/iso{cid[:12]}", f"/run/netns/isoinspect-{cid[:12]}")
            if os.path.lexists(p)]
    left += [f"address {a}" for a, h in _allocations().items() if h["id"] == cid]
    with open("/proc/self/mountinfo") as handle:
        left += [line for line in handle if f"isoinspect-{cid[:12]}" in line]
    return left


def _left(*cids: str, settle: float = 10.0) -> list[str]:
    """The traces of ``cids`` once they are gone, or those still there after ``settle``
    seconds: a stopped container's veth goes with its netns, which the kernel destroys
    asynchronously (runtime/network/hook.py)."""
    deadline = time.monotonic() + settle
    while True:
        left = [t for cid in cids for t in _traces(cid)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _run_d(iso, *args: str) -> str:
    return iso("run", "-d", *args, check=True).stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http_get(port: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
                chunks = []
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
            reply = b"".join(chunks).decode()
            if reply:
                return reply
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answered on 127.0.0.1:{port}")
        time.sleep(0.1)


def test_same_network_by_name_other_network_unreachable(iso, nets):
    front, back = nets("a"), nets("b")
    srv = _run_d(iso, "--name", "srv", "--network", front, "busybox", "httpd", "-f", "-p", "80",
                 "-h", "/etc")
    other = _run_d(iso, "--name", "other", "--network", back, "busybox", "sleep", "600")
    info = _inspect(iso, srv)["NetworkSettings"]
    address = info["IPAddress"]
    assert list(info["Networks"]) == [front] and info["Gateway"].endswith(".1")
    assert f"isoinspect-{srv[:12]}" in subprocess.run(["ip", "netns", "list"],
                                                      capture_output=True, text=True).stdout
    same = iso("run", "--rm", "--network", front, "busybox", "sh", "-c",
               "ping -c1 -W5 srv && " + HTTP_GET.format(host="srv"), timeout=60)
    assert same.returncode == 0, same.stderr
    assert "200 OK" in same.stdout and srv[:12] in same.stdout
    # the other network neither resolves the name nor reaches the address
    blocked = iso("exec", "other", "sh", "-c",
                  f"grep -w srv /etc/hosts; ping -c1 -W2 {address}", timeout=60)
    assert blocked.returncode != 0 and "1 packets transmitted, 0 packets received" in \
        blocked.stdout, blocked.stdout
    iso("rm", "-f", srv, other, check=True)
    assert _left(srv, other) == []


def test_peers_hosts_files_follow_joins_and_leaves(iso, nets):
    net = nets("h")
    first = _run_d(iso, "--name", "first", "--network", net, "busybox", "sleep", "600")
    second = _run_d(iso, "--name", "second", "--network", net, "busybox", "sleep", "600")
    assert "second" in iso("exec", "first", "cat", "/etc/hosts", check=True).stdout
    iso("rm", "-f", second, check=True)
    assert "second" not in iso("exec", "first", "cat", "/etc/hosts", check=True).stdout
    assert _left(second) == []
    iso("rm", "-f", first, check=True)


def test_published_port_reaches_the_container_and_goes_with_it(iso):
    port = _free_port()
    cid = _run_d(iso, "-p", f"127.0.0.1:{port}:80", "busybox", "httpd", "-f", "-p", "80",
                 "-h", "/etc")
    reply = _http_get(port)
    assert "200 OK" in reply and cid[:12] in reply
    ports = _inspect(iso, cid)["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    busy = iso("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
    assert busy.returncode == 125 and busy.stderr.count("\n") == 1 and "cannot publish" in \
        busy.stderr
    iso("rm", "-f", cid, check=True)
    assert _left(cid) == []
    deadline = time.monotonic() + 30
    while True:  # the proxy is gone: the port can be bound again
        try:
            with socket.socket() as probe:  # (reuse: TIME_WAIT of the served request is fine)
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
                probe.listen(1)
            break
        except OSError:
            assert time.monotonic() < deadline, "the port proxy outlived its container"
            time.sleep(0.1)


def test_no_leaks_after_failed_start_and_crash_plus_gc(iso):
    failed = iso("run", "--name", "broken", "busybox", "no-such-command")
    assert failed.returncode == 127
    assert _left(_inspect(iso, "broken")["Id"]) == []
    cid = _run_d(iso, "busybox", "sleep", "600")
    pid = _inspect(iso, cid)["State"]["Pid"]
    with open(f"/proc/{pid}/status") as handle:
        monitor = int(next(line for line in handle if line.startswith("PPid:")).split()[1])
    assert len(_traces(cid)) == 4  # veth, netns name, its mount, address
    os.kill(monitor, 9)  # the monitor dies first, then the container: nobody cleans up
    os.kill(pid, 9)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _traces(cid), "expected leftovers of a crashed container before gc"
    result = iso("gc", check=True)
    assert "released address of dead container" in result.stdout
    assert _left(cid) == []


def test_concurrent_starts_get_distinct_addresses(iso):
    procs = [iso.popen("run", "-d", "busybox", "sleep", "600") for _ in range(8)]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    addresses = [_inspect(iso, cid)["NetworkSettings"]["IPAddress"] for cid in ids]
    assert len(set(addresses)) == 8 and all(addresses)
    iso("rm", "-f", *ids, check=True)
    assert _left(*ids) == []


def test_network_cli_bad_input_is_one_line(iso):
    for args, message in ((("network", "create", "bad/name"), "invalid network name"),
                          (("network", "create", "isotest-x", "--subnet", "10.0.0.1/24"),
                           "invalid subnet"),
                          (("network", "rm", "isotest-never-made"), "not found"),
                          (("network", "inspect", "isotest-never-made"), "not found"),
                          (("run", "--rm", "--network", "isotest-never-made", "busybox", "true"),
                           "no such network"),
                          (("run", "--rm", "-p", "80", "busybox", "true"), "invalid -p")):
        result = iso(*args)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "isotest-x" not in iso("network", "ls", "-q", check=True).stdout.split()


def test_network_bench_writes_a_record(iso, tmp_path, monkeypatch):
    from isoinspect.benches import record
    from isoinspect.benches.network_bench import main

    monkeypatch.setenv("ISOINSPECT_RESULTS", str(tmp_path))
    assert main(["--runs", "2", "--warmup", "0", "--rounds", "1", "--settle", "0",
                 "--no-docker"]) == 0
    data = record.load("latest", str(tmp_path))
    startup = {r["target"]: r for r in data["results"] if r["kind"] == "startup"}
    assert set(startup) == {"isoinspect/none", "isoinspect/bridge"}
    assert all(len(r["samples"]) == 2 and min(r["samples"]) > 0 for r in startup.values())
    levels = sorted(r["level"] for r in data["results"] if r["kind"] == "concurrency"
                    and r["target"] == "isoinspect/bridge")
    assert levels == [1, 2, 4, 8]
    assert data["network_cost"][0]["runtime"] == "isoinspect"
