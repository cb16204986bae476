"""Ctrl-C (a real SIGINT) ends the commands that follow a stream as docker 20.10's CLI ends
them: what was printed is complete, nothing is added on stderr, and the process dies by SIGINT
(a shell sees 130). Checked against docker itself: `docker logs -f`, `docker stats` and
`docker events` of dockerd 20.10 end this way (docker 28's CLI exits 130 instead)."""

from __future__ import annotations

import select
import signal

import pytest

NONE = ("--network", "none")


@pytest.mark.parametrize("args", [
    ("logs", "-f", "isoinspect-chatty"),
    ("logs", "-f", "--tail", "1", "-t", "isoinspect-chatty"),
    ("stats", "isoinspect-chatty"),
    ("stats", "--format", "{{.Name}} {{.PIDs}}"),
    ("events", "--since", "1h"),
], ids=["logs-f", "logs-f-tail-t", "stats", "stats-format", "events"])
def test_ctrl_c_ends_a_follower_quietly_as_docker(iso, args):
    iso("run", "-d", *NONE, "--name", "isoinspect-chatty", "busybox", "sh", "-c",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done", check=True)
    follower = iso.popen(*args)
    try:
        ready, _, _ = select.select([follower.stdout], [], [], 30)
        assert ready, "the follower printed nothing in 30 s"
        first = follower.stdout.readline()
        assert first.endswith("\n")
        follower.send_signal(signal.SIGINT)
        rest, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == -signal.SIGINT, (follower.returncode, err)
    assert err == ""
    assert rest == "" or rest.endswith("\n")  # flushed whole, no half line left in a buffer
