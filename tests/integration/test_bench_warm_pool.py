"""The warm pool for real: zygotes in fresh namespaces with a cgroup and an overlay root wait for
a command; a start hands it over (with stdio); nothing is left after close()."""

from __future__ import annotations

import os
import select

import pytest

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.spec import ContainerSpec
from isoinspect.runtime.warm_pool import WarmPool


def _run(pool: WarmPool, argv: list[str]) -> tuple[int, bytes]:
    read_fd, write_fd = os.pipe()
    try:
        started = pool.start(argv, (None, write_fd, None))
        os.close(write_fd)
        write_fd = -1
        code = pool.finish(started)
        out = b""
        while chunk := os.read(read_fd, 4096):
            out += chunk
        return code, out
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_zygotes_are_isolated_and_run_the_command_handed_to_them(iso):
    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
    with WarmPool(runtime, spec, size=2) as pool:
        assert len(pool.idle) == 2
        zygote = pool.idle[0]
        # already in its own namespaces and cgroup before any command was given
        for ns in ("mnt", "pid", "net", "uts", "ipc"):
            assert os.readlink(f"/proc/{zygote.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
        assert len(iso.cgroup_dirs()) >= 2
        code, out = _run(pool, ["sh", "-c", "echo pid=$$ host=$(hostname); ls /sys/class/net"])
        assert code == 0
        assert out.split()[0] == b"pid=1"          # PID 1 of its own PID namespace
        assert out.split()[-1] == b"lo"            # --network none: loopback only
        code, _ = _run(pool, ["sh", "-c", "exit 3"])
        assert code == 3
        with pytest.raises(IsoinspectError, match="not-there"):
            pool.start(["not-there"])
        assert pool.wait_full()                    # refilled in the background
        assert len(pool.idle) == 2
    assert not pool.idle
    assert runtime.list(all_containers=True) == []
    assert not iso.cgroup_dirs()


def test_an_empty_pool_starts_cold_and_a_closed_pool_kills_its_zygotes(iso):
    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
    read_fd, write_fd = os.pipe()
    pool = WarmPool(runtime, spec, size=1, background=False).open()  # made while the pipe is open
    try:
        os.close(write_fd)
        assert select.select([read_fd], [], [], 30)[0], "a zygote holds the pipe's write end"
        assert os.read(read_fd, 1) == b""
        os.close(read_fd)
        code, out = _run(pool, ["echo", "warm"])
        assert (code, out) == (0, b"warm\n")
        code, out = _run(pool, ["echo", "cold"])   # no refill without the thread
        assert (code, out) == (0, b"cold\n") and pool.cold_starts == 1
        pool.fill()
        pid = pool.idle[0].pid
    finally:
        pool.close()
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)
    assert runtime.list(all_containers=True) == []


def _namespace_fds() -> set[str]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("mnt:["):
            found.add(target)
    return found


def test_finish_answers_first_and_the_removal_still_completes(iso):
    """finish() returns the exit code; the pool's thread then removes the container (record,
    cgroup, directories; the namespaces the pool held for it): drain() waits for that."""
    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
    before = _namespace_fds()
    with WarmPool(runtime, spec, size=1) as pool:
        zygote = pool.idle[0]
        # the pool holds the zygote's mount namespace while it waits
        held = {os.readlink(f"/proc/self/fd/{fd}") for fd in zygote.held}
        assert held == {os.readlink(f"/proc/{zygote.pid}/ns/mnt")}
        cid = zygote.record.id
        # its root is never synced (deleted with it): the unmount does not sync the host's disk
        code, out = _run(pool, ["sh", "-c", "grep '^overlay / ' /proc/self/mounts; exit 5"])
        assert code == 5 and b"volatile" in out, out  # fsync=volatile
        assert pool.drain()
        assert not pool.errors
        assert cid not in {record.id for record in runtime.list(all_containers=True)}
        assert not os.path.exists(runtime.containers.dir(cid))
        assert not [path for path in iso.cgroup_dirs() if cid in path]
        assert not held & _namespace_fds()     # released, so its mounts are gone
        assert pool.wait_full()
    assert _namespace_fds() == before
    assert runtime.list(all_containers=True) == [] and not iso.cgroup_dirs()


CRASH = """
import os, sys
from isoinspect.runtime import process
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.spec import ContainerSpec
from isoinspect.runtime.warm_pool import WarmPool

pool = WarmPool(Runtime(sys.argv[1]), ContainerSpec("busybox", ["true"], remove=True,
                                                     network="none"), size=1).open()
started = pool.start(["true"])
process.wait_status(started.pid)  # exited and reaped; the pool dies before removing it
os._exit(0)
"""


def test_gc_removes_what_a_pool_that_died_left(iso):
    """A pool's process killed between a command's exit and its removal (and with zygotes
    waiting) leaves records, cgroups and directories that `isoinspect gc` removes."""
    import subprocess
    import sys

    from isoinspect.runtime import gc

    subprocess.run([sys.executable, "-c", CRASH, iso.root], check=True, timeout=120)
    runtime = Runtime(iso.root)
    assert runtime.containers.ids(), "the crashed pool left nothing to collect"
    gc.collect(runtime)
    assert runtime.list(all_containers=True) == []
    assert not runtime.containers.ids()
    assert not iso.cgroup_dirs()


def test_zygotes_wait_in_the_sealed_program_and_exec_like_run(iso):
    """A zygote waits as runtime/zygote_stub.c from a sealed memfd (no Python left to run at
    the hand-off); the command gets its argv exactly, only its own stdio, and run's errors."""
    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
    with WarmPool(runtime, spec, size=1) as pool:
        zygote = pool.idle[0]
        assert os.readlink(f"/proc/{zygote.pid}/exe").startswith("/memfd:isoinspect-zygote")
        code, out = _run(pool, ["sh", "-c", 'printf "[%s]" "$@"', "x", "a b", "", "ü"])
        assert (code, out) == (0, "[a b][][ü]".encode())
        # the command's descriptors: 0, 1, 2 and the one ls reads /proc/self/fd with
        assert _run(pool, ["ls", "/proc/self/fd"]) == (0, b"0\n1\n2\n3\n")
        for argv, code, message in (
                (["not-there"], 127, 'exec: "not-there": executable file not found in $PATH'),
                (["/not/there"], 127, 'exec: "/not/there": no such file or directory'),
                (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied')):
            with pytest.raises(IsoinspectError) as failed:
                pool.start(argv)
            assert (str(failed.value), failed.value.exit_code) == (message, code)
        assert pool.wait_full()
    assert runtime.list(all_containers=True) == []


def test_without_the_program_zygotes_wait_in_python(iso, monkeypatch):
    """No gcc (the program cannot be built): the zygote waits in Python, released by a byte."""
    from isoinspect.runtime import zygote_program

    monkeypatch.setattr(zygote_program, "sealed_zygote_program", lambda: -1)
    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
    with WarmPool(runtime, spec, size=1, background=False) as pool:
        assert "python" in os.readlink(f"/proc/{pool.idle[0].pid}/exe")
        assert _run(pool, ["echo", "in python"]) == (0, b"in python\n")
        with pytest.raises(IsoinspectError, match="not found in"):
            pool.start(["not-there"])
    assert runtime.list(all_containers=True) == []
