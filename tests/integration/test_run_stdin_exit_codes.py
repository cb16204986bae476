"""Issue 18: `run`/`exec` stdin without -i, and the exit codes of a command that cannot start,
side by side with the shared dockerd (containers named isoinspect-codes-<pid>-*).

Docker 20.10, measured here: `docker run` 127 for a missing command, 126 for a file that
cannot be executed; `docker exec` 126 for both (the daemon ends any exec that did not start
with 126). Without -i neither attaches stdin: the command reads EOF.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from isoinspect.benches.peers import DOCKER_IMAGE
from isoinspect.benches.targets.docker import REPO, docker_binary

DOCKER = docker_binary()
NAME = f"isoinspect-codes-{os.getpid()}"
#: commands that cannot start: missing from $PATH, a missing path, a plain file, a directory
COMMANDS = (["isoinspect-nosuchcmd"], ["/nonexistent/x"], ["/etc/passwd"], ["/etc"])


@pytest.fixture(scope="module")
def docker_box():
    """A running busybox container on the shared dockerd, removed at the end."""
    subprocess.run(["bash", os.path.join(REPO, "scripts", "docker-busybox.sh"), DOCKER_IMAGE],
                   check=True, capture_output=True)
    subprocess.run([DOCKER, "run", "-d", "--name", NAME, "--network", "none", DOCKER_IMAGE,
                    "sleep", "600"], check=True, capture_output=True)
    try:
        yield NAME
    finally:
        subprocess.run([DOCKER, "rm", "-f", NAME], capture_output=True)


def _docker(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, input=input,
                          timeout=120)


@pytest.mark.parametrize("interactive", [False, True])
def test_run_stdin_only_with_i(iso, interactive):
    flags = ["-i"] if interactive else []
    ours = iso("run", *flags, "--rm", "--network", "none", "busybox", "cat", input="data\n")
    theirs = _docker("run", *flags, "--rm", "--network", "none", DOCKER_IMAGE, "cat",
                     input="data\n")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == ("data\n" if interactive else "")
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


@pytest.mark.parametrize("interactive", [False, True])
def test_exec_stdin_only_with_i(iso, docker_box, interactive):
    iso("run", "-d", "--name", "isoinspect-stdin", "--network", "none", "busybox", "sleep", "60",
        check=True)
    flags = ["-i"] if interactive else []
    ours = iso("exec", *flags, "isoinspect-stdin", "cat", input="data\n")
    theirs = _docker("exec", *flags, docker_box, "cat", input="data\n")
    assert ours.stdout == ("data\n" if interactive else ""), ours.stderr
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_run_cannot_start_codes_match_docker(iso, command):
    ours = iso("run", "--rm", "--network", "none", "busybox", *command)
    theirs = _docker("run", "--rm", "--network", "none", DOCKER_IMAGE, *command)
    assert ours.returncode in (126, 127), ours.stderr
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert len(ours.stderr.strip().splitlines()) == 1 and "Traceback" not in ours.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_exec_cannot_start_codes_match_docker(iso, docker_box, command):
    iso("run", "-d", "--name", "isoinspect-codes", "--network", "none", "busybox", "sleep", "60",
        check=True)
    ours = iso("exec", "isoinspect-codes", *command)
    theirs = _docker("exec", docker_box, *command)
    assert ours.returncode == 126, ours.stderr
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert len(ours.stderr.strip().splitlines()) == 1 and "Traceback" not in ours.stderr
