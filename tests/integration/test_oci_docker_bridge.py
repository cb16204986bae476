"""Docker 20.10 driving isoinspect-runc (`--runtime isoinspect`) on Docker's default bridge
network, on a private dockerd whose docker0 lives in the daemon's own network namespace
(benches/private_dockerd.py, ``bridge=``): containers get an address on that bridge and reach
each other over it; `docker update` and `docker pause`/`unpause` go through isoinspect-runc
(containerd's shim runs `update -r -`, `pause`, `resume`). The host's docker0 is left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from isoinspect.benches.private_dockerd import DOCKER, IMAGE, PrivateDocker
from test_oci_ops import cgroup_file

BRIDGE = "10.213.77.1/24"  # the private docker0 (inside the daemon's netns only)
SUBNET_PREFIX = "10.213.77."

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dockerd") or not DOCKER
                                or not os.path.exists("/bin/busybox"),
                                reason="needs root, dockerd, docker CLI and busybox-static")


def _host_links() -> dict:
    """The host netns' docker0 (ifindex, addresses) and every IPv4 address on the host."""
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True,
                         check=True).stdout
    links = json.loads(out)
    docker0 = [(link["ifindex"], sorted(a["local"] for a in link.get("addr_info", ())))
               for link in links if link["ifname"] == "docker0"]
    addresses = sorted(a["local"] for link in links for a in link.get("addr_info", ()))
    return {"docker0": docker0, "addresses": addresses}


@pytest.fixture(scope="module")
def docker():
    daemon = PrivateDocker(bridge=BRIDGE)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def test_default_bridge_update_pause_through_isoinspect_runc(docker):
    before = _host_links()
    assert not any(a.startswith(SUBNET_PREFIX) for a in before["addresses"])
    run = ("run", "--runtime", "isoinspect")  # no --network: Docker's default bridge
    result = docker(*run, "-d", "--name", "isoinspect-br-a", IMAGE, "sleep", "1000")
    assert result.returncode == 0, result.stderr
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}} {{.HostConfig.NetworkMode}}",
                  "isoinspect-br-a").stdout.split() == ["isoinspect", "default"]
    address = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}",
                     "isoinspect-br-a").stdout.strip()
    assert address.startswith(SUBNET_PREFIX), address
    # A second container on the bridge reaches the first one (ICMP over the private docker0).
    result = docker(*run, "--rm", IMAGE, "sh", "-c",
                    f"ip -4 -o addr show eth0; ping -c 1 -W 10 {address}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"inet {SUBNET_PREFIX}" in result.stdout and "1 packets received" in result.stdout

    # docker update: containerd's shim runs `isoinspect-runc update -r -` with the JSON.
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", "isoinspect-br-a").stdout)
    result = docker("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "33",
                    "isoinspect-br-a")
    assert result.returncode == 0, result.stderr
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert cgroup_file(pid, "pids", "pids.max") == "33"
    inside = docker("exec", "isoinspect-br-a", "cat",
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip()
    assert inside == str(64 << 20)

    # docker pause / unpause: `isoinspect-runc pause` / `resume` (the freezer).
    assert docker("pause", "isoinspect-br-a").returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}}", "isoinspect-br-a").stdout.strip() == \
        "paused"
    assert cgroup_file(pid, "freezer", "freezer.state") == "FROZEN"
    assert docker("unpause", "isoinspect-br-a").returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}}", "isoinspect-br-a").stdout.strip() == \
        "running"
    assert cgroup_file(pid, "freezer", "freezer.state") == "THAWED"
    result = docker("exec", "isoinspect-br-a", "echo", "alive")
    assert result.stdout.strip() == "alive", result.stderr
    # docker kill of a paused container: delivered (Docker 20.10 unpauses after signalling).
    assert docker("pause", "isoinspect-br-a").returncode == 0
    assert docker("kill", "isoinspect-br-a").returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                  "isoinspect-br-a").stdout.split() == ["exited", "137"]
    assert docker("rm", "isoinspect-br-a").returncode == 0
    assert _host_links() == before  # the host's docker0 and addresses are untouched
