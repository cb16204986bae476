"""Issue 18: the CLI ends quietly on a closed stdout and exits with Docker's codes.

Docker's codes, measured with the docker CLI on this machine: a refused flag or flag value
125; a wrong number of arguments or an unknown command 1; "no such container/image/network"
1 from every command but ``run`` (125: nothing ran); the command cannot be invoked 126, not
found 127.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from conftest import CLI


def _closed_pipe_run(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI with stdout a real pipe whose reading end is already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([CLI, *args], stdout=write_end, stderr=subprocess.PIPE,
                              env=env, text=True, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [("ps", "-a"), ("images",), ("history", "--json", "busybox"),
                                  ("run", "--help"), ("network", "ls")])
def test_closed_stdout_ends_quietly_by_sigpipe(iso, args):
    done = _closed_pipe_run(iso.env, *args)
    assert done.returncode == -signal.SIGPIPE, done.stderr  # a shell shows 141, as for docker
    assert done.stderr == ""


def test_head_one_in_a_shell(iso):
    iso("run", "-d", "--name", "isoinspect-pipe-a", "busybox", "sleep", "30", check=True)
    done = subprocess.run(["bash", "-c", f"{CLI} ps -a | head -1; echo \"${{PIPESTATUS[0]}}\""],
                          env=iso.env, capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CONTAINER ID") and lines[1] in ("0", "141"), done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize("args,code", [
    (("rm", "nope"), 1), (("stop", "nope"), 1), (("kill", "nope"), 1), (("inspect", "nope"), 1),
    (("logs", "nope"), 1), (("exec", "nope", "true"), 1), (("wait", "nope"), 1),
    (("rmi", "nope"), 1), (("history", "nope"), 1), (("network", "rm", "nope"), 1),
    (("kill", "-s", "BOGUS", "nope"), 1),
    (("ps", "--bogus"), 125), (("run", "--bogus", "busybox"), 125), (("--bogus",), 125),
    (("exec", "--bogus", "x", "true"), 125), (("stop", "-t", "x", "nope"), 125),
    (("run", "--memory=zz", "busybox", "true"), 125), (("run", "--rm", "nope-image", "true"), 125),
    (("ps", "extra"), 1), (("rm",), 1), (("run",), 1), (("bogus",), 1),
    (("run", "--rm", "--network", "none", "busybox", "/nonexistent"), 127),
    (("run", "--rm", "--network", "none", "busybox", "/etc"), 126),
])
def test_docker_exit_codes(iso, args, code):
    done = iso(*args)
    assert done.returncode == code, (args, done.stderr)
    assert "Traceback" not in done.stderr
