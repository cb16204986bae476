"""Docker 20.10 with isoinspect as a runtime, on a private dockerd (own data root, exec root,
socket, containerd and network namespace; no bridge, no iptables) so the shared daemon and the
host's docker0 are never touched (benches/private_dockerd.py says why the netns is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from isoinspect.benches.private_dockerd import DOCKER, IMAGE, PrivateDocker

DOCKERD = shutil.which("dockerd")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not DOCKERD or not DOCKER
                                or not os.path.exists("/bin/busybox"),
                                reason="needs root, dockerd, docker CLI and busybox-static")


@pytest.fixture(scope="module")
def docker():
    daemon = PrivateDocker()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


RUN = ("run", "--rm", "--network", "none", "--runtime", "isoinspect")


def test_echo_and_exit_codes(docker):
    result = docker(*RUN, IMAGE, "echo", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    assert docker(*RUN, IMAGE, "sh", "-c", "exit 42").returncode == 42
    result = docker(*RUN, IMAGE, "no-such-command")
    assert result.returncode == 127 and "executable file not found" in result.stderr
    status = "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status"
    result = docker(*RUN, IMAGE, "sh", "-c", status)
    assert "CapEff:\t00000000a80425fb" in result.stdout and "Seccomp:\t2" in result.stdout
    assert "NoNewPrivs:\t0" in result.stdout  # Docker's default, as with runc
    result = docker(*RUN, "--security-opt", "no-new-privileges", IMAGE, "sh", "-c", status)
    assert "NoNewPrivs:\t1" in result.stdout and "Seccomp:\t2" in result.stdout


def test_detached_logs_exec_stop(docker):
    result = docker("run", "-d", "--network", "none", "--runtime", "isoinspect", IMAGE, "sh",
                    "-c", "echo started; trap 'echo got term; exit 3' TERM; "
                    "while true; do sleep 0.1; done")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    deadline = time.monotonic() + 10
    while "started" not in docker("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", cid).stdout.strip() == \
        "isoinspect"
    result = docker("exec", cid, "sh", "-c", "echo in-exec $(cat /proc/1/comm); exit 5")
    assert result.returncode == 5 and result.stdout.strip() == "in-exec sh"
    result = docker("exec", "-u", "65534", cid, "id", "-u")
    assert result.stdout.strip() == "65534"
    assert docker("stop", cid).returncode == 0
    assert docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "3"
    assert docker("logs", cid).stdout == "started\ngot term\n"
    assert docker("rm", cid).returncode == 0


def test_stop_escalates_to_kill(docker):
    cid = docker("run", "-d", "--network", "none", "--runtime", "isoinspect", IMAGE, "sleep",
                 "100").stdout.strip()
    assert docker("stop", "-t", "1", cid).returncode == 0
    assert docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
    docker("rm", cid)


@pytest.mark.skipif(not shutil.which("script"), reason="util-linux script missing")
def test_interactive_terminal(docker):
    command = (f"{DOCKER} run -it --rm --network none --runtime isoinspect {IMAGE} "
               "sh -c 'tty; echo term=$TERM; exit 7'")
    result = subprocess.run(["script", "-eqc", command, "/dev/null"], env=docker.env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "/dev/pts/0" in result.stdout and "term=xterm" in result.stdout


@pytest.mark.skipif(not shutil.which("script"), reason="util-linux script missing")
def test_exec_with_terminal_and_joined_namespaces(docker):
    cid = docker("run", "-d", "--network", "none", "--runtime", "isoinspect", IMAGE, "sleep",
                 "100").stdout.strip()
    command = f"{DOCKER} exec -it {cid} sh -c 'tty; exit 4'"
    result = subprocess.run(["script", "-eqc", command, "/dev/null"], env=docker.env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "/dev/pts/0" in result.stdout
    # --network/--pid container:X: the config names X's namespaces by path; we join them.
    result = docker(*RUN[:2], "--network", f"container:{cid}", "--pid", f"container:{cid}",
                    "--runtime", "isoinspect", IMAGE, "cat", "/proc/1/comm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sleep"
    docker("rm", "-f", cid)


def test_resources_reach_the_cgroup(docker):
    result = docker(*RUN, "--memory", "64m", "--pids-limit", "20", IMAGE, "sh", "-c",
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                    "/sys/fs/cgroup/pids/pids.max 2>/dev/null || "
                    "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["67108864", "20"]


def test_pause_unpause_and_top(docker):
    cid = docker("run", "-d", "--network", "none", "--runtime", "isoinspect", IMAGE, "sleep",
                 "100").stdout.strip()
    assert docker("pause", cid).returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
    assert docker("unpause", cid).returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
    top = docker("top", cid)
    assert top.returncode == 0 and "sleep 100" in top.stdout
    docker("rm", "-f", cid)
