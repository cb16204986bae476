"""`create` as docker create: run's flags, the id on stdout, a container in state Created that
`cp` can fill, `start` runs, `gc` leaves alone and `rm` removes."""

from __future__ import annotations

import json
import re
import time

from conftest import wait_for


def _status(iso, name: str) -> str:
    """ps -a's STATUS column of one container (ps has no --filter yet)."""
    rows = iso("ps", "-a", "--format", "{{.Names}}\t{{.Status}}", check=True).stdout
    return dict(line.split("\t") for line in rows.splitlines())[name]


def test_create_cp_start_rm(iso, tmp_path):
    created = iso("create", "--name", "isoinspect-made", "-e", "WHO=created", "busybox",
                  "sh", "-c", "cat /in/note; echo $WHO; exit 3", check=True)
    cid = created.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}\n", created.stdout) and created.stderr == ""
    assert _status(iso, "isoinspect-made") == "Created"
    state = json.loads(iso("inspect", "isoinspect-made", check=True).stdout)[0]["State"]
    assert state["Status"] == "created" and state["Pid"] == 0
    for args in (("logs",), ("logs", "-f")):  # docker: nothing yet, exit 0, no waiting
        logs = iso(*args, "isoinspect-made", timeout=30)
        assert (logs.returncode, logs.stdout, logs.stderr) == (0, "", ""), args
    assert iso("gc", check=True).returncode == 0  # not taken for a runtime that died
    assert _status(iso, "isoinspect-made") == "Created"

    note = tmp_path / "note"
    note.write_text("copied before the start\n")
    copied = iso("cp", str(tmp_path), "isoinspect-made:/in")  # a directory, into a new path
    assert copied.returncode == 0, copied.stderr

    started = iso("start", "-a", cid[:12])
    assert (started.returncode, started.stdout) == (3, "copied before the start\ncreated\n"), \
        started.stderr
    assert _status(iso, "isoinspect-made").startswith("Exited (3)")
    removed = iso("rm", "isoinspect-made")
    assert (removed.returncode, removed.stdout) == (0, "isoinspect-made\n")
    assert iso("ps", "-aq").stdout == ""


def test_created_container_starts_detached_and_rm_removes_an_unstarted_one(iso):
    cid = iso("create", "--rm", "busybox", "true", check=True).stdout.strip()
    other = iso("create", "--memory", "64m", "busybox", "sleep", "60", check=True).stdout.strip()
    assert iso.cgroup_dirs(), "a created container has its cgroup (limits set) before start"
    assert iso("start", cid, check=True).stdout.strip() == cid
    wait_for(lambda: cid[:12] not in iso("ps", "-aq").stdout, "the --rm container removed")
    assert iso("rm", other, check=True).stdout.strip() == other  # never started
    assert iso("ps", "-aq").stdout == ""


def test_wait_on_a_created_container_blocks_until_it_ran(iso):
    """docker wait of a Created container returns once it has been started and exited."""
    iso("create", "--name", "isoinspect-waited", "busybox", "sh", "-c", "exit 7", check=True)
    waiter = iso.popen("wait", "isoinspect-waited")
    try:
        time.sleep(0.5)  # (not a timing assert: only a chance to return early, wrongly)
        assert waiter.poll() is None, waiter.communicate()
        iso("start", "isoinspect-waited", check=True)
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert (waiter.returncode, out, err) == (0, "7\n", "")


def test_create_refuses_as_docker_create_does(iso):
    detach = iso("create", "-d", "busybox", "true")
    assert detach.returncode == 125 and "No such option: -d" in detach.stderr
    never = iso("create", "--pull", "never", "isoinspect-nosuch", "true")
    assert (never.returncode, never.stderr) == (
        1, "isoinspect: No such image: isoinspect-nosuch:latest\n")  # Docker: 1 (the daemon's)
    size = iso("create", "--memory", "zz", "busybox", "true")
    assert size.returncode == 125 and len(size.stderr.splitlines()) == 1
    iso("create", "--name", "isoinspect-dup", "busybox", "true", check=True)
    dup = iso("create", "--name", "isoinspect-dup", "busybox", "true")
    assert dup.returncode == 1 and "already in use" in dup.stderr
    assert len(iso("ps", "-aq").stdout.split()) == 1
