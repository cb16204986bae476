"""Issue 20: the click-free fast paths answer exactly as the click commands do, keep click and
pyroute2 out, and the bridge start through direct rtnetlink gives a working, cleaned-up eth0.

The click path is driven through ``cli.main`` (what entry.py falls back to) in the same venv,
so each pair differs only in the parser and dispatcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import CLI

PYTHON = os.path.join(os.path.dirname(CLI), "python3")
CLICK_PATH = ("import sys; from isoinspect.cli.main import cli; "
              "sys.exit(cli.main(args=sys.argv[1:], prog_name='isoinspect'))")


def _click(iso, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLICK_PATH, *args], env=iso.env,
                          capture_output=True, text=True, timeout=60)


def _same(iso, *args: str) -> subprocess.CompletedProcess:
    fast, slow = iso(*args), _click(iso, *args)
    assert (fast.returncode, fast.stdout, fast.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr), args
    return fast


def test_fast_paths_answer_as_click_does(iso):
    iso("run", "-d", "--network", "none", "--name", "isoinspect-fast-a", "busybox", "sleep",
        "300", check=True)
    iso("run", "--network", "none", "--name", "isoinspect-fast-b", "busybox", "true",
        check=True)
    assert _same(iso, "ps", "-aq").stdout.count("\n") == 2
    assert "isoinspect-fast-b" not in _same(iso, "ps", "--format", "{{.Names}}").stdout
    assert _same(iso, "exec", "-e", "A=7", "isoinspect-fast-a", "sh", "-c",
                 "echo $A; exit 3").stdout == "7\n"
    assert _same(iso, "exec", "-w", "/tmp", "isoinspect-fast-a", "pwd").returncode == 0
    _same(iso, "kill", "-s", "0", "isoinspect-fast-a")
    assert _same(iso, "rm", "isoinspect-fast-a").returncode == 1  # running: refused
    for args in (("rm", "nope"), ("stop", "nope"), ("kill", "nope"), ("exec", "nope", "true"),
                 ("kill", "-s", "BOGUS", "nope"), ("ps", "--bogus"), ("rm",),
                 ("exec", "--bogus", "x", "true"), ("stop", "-t", "x", "nope"),
                 ("ps", "extra"), ("ps", "--json", "--format", "x"), ("rm", "--help"),
                 ("--version",)):
        done = _same(iso, *args)
        assert "Traceback" not in done.stderr
        if done.returncode == 1 and args[-1] == "nope":
            assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert iso("rm", "nope").returncode == 1 and iso("ps", "--bogus").returncode == 125
    stopped = _same(iso, "stop", "-t", "1", "isoinspect-fast-a", "nope")
    assert stopped.stdout == "isoinspect-fast-a\n" and stopped.returncode == 1
    removed = iso("rm", "isoinspect-fast-a", "isoinspect-fast-b")  # once: compare by text
    assert (removed.returncode, removed.stdout, removed.stderr) == (
        0, "isoinspect-fast-a\nisoinspect-fast-b\n", "")
    assert iso("ps", "-aq").stdout == ""
    assert _same(iso, "rm", "isoinspect-fast-a").stderr == \
        "isoinspect: no such container: isoinspect-fast-a\n"


def _imported(iso, *args: str) -> set[str]:
    done = subprocess.run([PYTHON, "-X", "importtime", "-I", "-S", CLI, *args], env=iso.env,
                          capture_output=True, text=True, timeout=60)
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


@pytest.mark.parametrize("args", [
    ("run", "--rm", "--network", "none", "busybox", "true"),
    ("run", "--rm", "busybox", "true"), ("ps", "-a"), ("rm", "nope"), ("--version",),
    ("exec", "nope", "true"), ("stop", "nope"), ("kill", "nope")])
def test_hot_commands_import_neither_click_nor_pyroute2(iso, args):
    iso("run", "--rm", "--network", "none", "busybox", "true", check=True)  # caches made
    modules = _imported(iso, *args)
    assert "isoinspect.cli.entry" in modules  # the measurement saw the imports at all
    heavy = ["click", "pyroute2", "dataclasses", "typing"]
    if args[:3] != ("run", "--rm", "busybox"):  # the bridge's address files are JSON
        heavy += ["re", "json"]
    found = {m for m in modules if m.split(".")[0] in heavy}
    assert not found, (args, sorted(found))


@pytest.mark.parametrize("args", [("ps", "-a"), ("rm", "nope"), ("stop", "nope"),
                                  ("kill", "nope")])
def test_state_readers_load_no_start_modules(iso, args):
    """ps, rm, stop and kill read records and signal: the start path's modules, the image
    store, collections (via collections.abc) and, for ps, the cgroup drivers stay unloaded."""
    iso("run", "--rm", "--network", "none", "busybox", "true", check=True)  # caches made
    iso("run", "-d", "--network", "none", "--name", "isoinspect-fast-ps", "busybox", "sleep",
        "60", check=True)  # a running container: ps reads its freezer
    try:
        modules = _imported(iso, *args)
    finally:
        iso("rm", "-f", "isoinspect-fast-ps")
    assert "isoinspect.runtime.runtime" in modules, sorted(modules)
    start = {"collections", "isoinspect.runtime.images",
             "isoinspect.runtime.init_plan", "isoinspect.runtime.spec",
             "isoinspect.runtime.signal_forwarding", "isoinspect.runtime.linux.namespaces",
             "isoinspect.runtime.cgroups.resources"}
    start |= {f"isoinspect.runtime.cgroups.v1.{c}" for c in ("cpu", "memory", "pids", "blkio")}
    if args[0] == "ps":
        start |= {"isoinspect.runtime.cgroups.v1.manager", "isoinspect.runtime.cgroups.v2.manager"}
    assert not start & modules, (args, sorted(start & modules))


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_bridge_start_through_rtnetlink(iso):
    before = _links()
    done = iso("run", "--rm", "busybox", "sh", "-c",
               "ip -o -4 addr show eth0; ip route; cat /sys/class/net/eth0/address; "
               "ping -c 1 -W 5 $(ip route | awk '/default/ {print $3}') >/dev/null && echo ok",
               check=True)
    lines = done.stdout.splitlines()
    assert " eth0 " in lines[0] and " inet 10." in lines[0], done.stdout
    assert any(line.startswith("default via ") for line in lines), done.stdout
    assert lines[-1] == "ok", done.stdout
    cid = iso("run", "-d", "busybox", "sleep", "300", check=True).stdout.strip()
    try:
        info = json.loads(iso("inspect", cid, check=True).stdout)[0]["NetworkSettings"]
        inside = iso("exec", cid, "cat", "/sys/class/net/eth0/address", check=True).stdout
        assert inside.strip() == info["MacAddress"]
        shown = iso("exec", cid, "ip", "-o", "-4", "addr", "show", "eth0", check=True).stdout
        assert f" {info['IPAddress']}/" in shown
        assert f"iso{cid[:12]}" in _links()
        master = os.path.realpath(f"/sys/class/net/iso{cid[:12]}/master")
        assert os.path.basename(master) == "isoinspect0"  # the default network's bridge
        with open(f"/sys/class/net/iso{cid[:12]}/operstate") as handle:
            assert handle.read().strip() == "up"
    finally:
        iso("rm", "-f", cid, check=True)
    assert not os.path.exists(f"/run/netns/isoinspect-{cid[:12]}")
    assert _veth_gone(cid)
    assert not {n for n in _links() - before if n.startswith("iso")}


def _veth_gone(cid: str, settle: float = 10.0) -> bool:
    """The veth goes with the container's netns, destroyed by the kernel asynchronously."""
    deadline = time.monotonic() + settle
    while f"iso{cid[:12]}" in _links():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _ifindex(cid: str) -> str:
    with open(f"/sys/class/net/iso{cid[:12]}/ifindex") as handle:
        return handle.read().strip()


def test_bridge_start_while_the_old_veth_lingers(iso):
    """A stop leaves the veth to the kernel; a start that finds its name still taken (here
    the old netns is held open, so it stays) replaces the old link and reaches its gateway."""
    cid = iso("run", "-d", "busybox", "sleep", "300", check=True).stdout.strip()
    held = os.open(f"/run/netns/isoinspect-{cid[:12]}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        old_index = _ifindex(cid)
        iso("stop", "-t", "0", cid, check=True)
        assert _ifindex(cid) == old_index  # still there: its netns is held
        iso("start", cid, check=True)
        assert _ifindex(cid) != old_index
        done = iso("exec", cid, "sh", "-c",
                   "ping -c 1 -W 5 $(ip route | awk '/default/ {print $3}') >/dev/null && "
                   "echo ok", check=True)
        assert done.stdout.strip() == "ok"
    finally:
        os.close(held)
        iso("rm", "-f", cid, check=True)
    assert _veth_gone(cid)
