"""The private dockerd (benches/private_dockerd.py) runs in a netns of its own and leaves the
host's links alone, on every path out.

Docker's behaviour: ``dockerd --bridge=none`` deletes an existing ``docker0`` when it starts
(it removes the default bridge it was told not to manage). Started in the host's network
namespace, the suite's private daemon did exactly that to the shared daemon's docker0; a
daemon in its own netns cannot reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import host_state
from isoinspect.benches.private_dockerd import DOCKER, IMAGE, PrivateDocker, sweep_stale_netns
from isoinspect.runtime.process import start_ticks

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dockerd") or not DOCKER,
                                reason="needs root, dockerd and the docker CLI")


def _mounted(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        return [line for line in handle if text in line]


def _links_only(state: host_state.HostState) -> host_state.HostState:
    """A snapshot's links alone (routes, mounts etc. are the session check's job)."""
    return host_state.HostState(links=state.links)


def _gone(docker: PrivateDocker) -> None:
    """Nothing of the daemon is left: process, netns name, mounts, temp dir."""
    assert docker.proc.poll() is not None
    assert not os.path.lexists(docker.netns_path)
    assert not _mounted(docker.netns_path) and not _mounted(docker.dir)
    assert not os.path.exists(docker.dir)


def test_private_dockerd_cannot_delete_a_docker0_beside_it():
    """In a scratch netns holding a bait docker0 bridge, the private daemon's whole lifecycle
    leaves docker0 in place with the same ifindex (before the fix it was deleted at start)."""
    script = textwrap.dedent("""
        import json, os, subprocess
        from isoinspect.benches.private_dockerd import PrivateDocker
        def index():
            out = subprocess.run(["ip", "-j", "link", "show", "docker0"], capture_output=True,
                                 text=True).stdout
            return json.loads(out)[0]["ifindex"] if out.strip() else None
        subprocess.run(["ip", "link", "add", "docker0", "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", "docker0", "up"], check=True)
        seen = {"before": index()}
        docker = PrivateDocker()
        try:
            docker.start(image=None)
            seen["during"] = index()
            seen["daemon_netns"] = os.readlink(f"/proc/{docker.proc.pid}/ns/net")
            seen["our_netns"] = os.readlink("/proc/self/ns/net")
        finally:
            docker.stop()
        seen["after"] = index()
        print(json.dumps(seen))
        """)
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["before"] is not None
    assert seen["during"] == seen["after"] == seen["before"], seen
    assert seen["daemon_netns"] != seen["our_netns"]


def test_private_dockerd_lifecycle_leaves_the_hosts_links_alone():
    """The real host: docker0 (when the shared dockerd has one) keeps its ifindex and no link
    is added or removed by a private daemon that runs a container; all of it is gone after."""
    before = host_state.snapshot()
    docker = PrivateDocker()
    try:
        docker.start()
        assert os.readlink(f"/proc/{docker.proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        result = docker("run", "--rm", "--network", "none", "--runtime", "isoinspect", IMAGE,
                        "cat", "/sys/class/net/lo/operstate")
        assert result.returncode == 0, result.stderr
        during = host_state.snapshot()
    finally:
        docker.stop()
    after = host_state.snapshot()
    _gone(docker)
    for state in (during, after):
        assert host_state.compare(_links_only(before), _links_only(state)) == []
    if "docker0" in before.links:
        assert after.links["docker0"].index == before.links["docker0"].index


def test_interrupted_start_stops_the_daemon_and_removes_its_netns(monkeypatch):
    """Ctrl-C while start() waits: the daemon is stopped and its netns name removed."""
    ready = PrivateDocker._wait_ready

    def interrupted(self, timeout: float = 60) -> None:
        ready(self, timeout)
        raise KeyboardInterrupt

    monkeypatch.setattr(PrivateDocker, "_wait_ready", interrupted)
    docker = PrivateDocker()
    with pytest.raises(KeyboardInterrupt):
        docker.start()
    _gone(docker)


def test_killed_owner_takes_the_daemon_down_and_the_next_start_sweeps_its_name(tmp_path):
    """SIGKILL of the process that started the daemon: dockerd gets SIGTERM (parent-death
    signal) and exits; the netns name it leaves is removed by the next sweep. (The name goes in
    a folder of this test's, so a concurrent session's sweep cannot take it first.)"""
    netns_dir = str(tmp_path / "netns")
    script = textwrap.dedent(f"""
        import json, os, signal, sys
        from isoinspect.benches.private_dockerd import PrivateDocker
        docker = PrivateDocker(netns_dir={netns_dir!r})
        docker.start(image=None)
        print(json.dumps({{"pid": docker.proc.pid, "netns": docker.netns_path,
                           "dir": docker.dir}}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    left = json.loads(result.stdout)
    try:
        deadline = time.monotonic() + 60
        while start_ticks(left["pid"]) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert start_ticks(left["pid"]) is None, "dockerd outlived its owner"
        assert os.path.lexists(left["netns"])
        assert _mounted(left["netns"])
        assert sweep_stale_netns(netns_dir) == [os.path.basename(left["netns"])]
        assert not os.path.lexists(left["netns"]) and not _mounted(left["netns"])
    finally:
        if start_ticks(left["pid"]) is not None:
            os.kill(left["pid"], signal.SIGKILL)
        for sub in ("exec", "data"):
            subprocess.run(["umount", "-R", f"{left['dir']}/{sub}"], capture_output=True)
        shutil.rmtree(left["dir"], ignore_errors=True)
        sweep_stale_netns(netns_dir)
