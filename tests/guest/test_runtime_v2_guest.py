"""The isoinspect runtime (CLI) on a pure cgroup v2 host: limits land in the container's v2
cgroup, the kernel enforces them, the container sees its own cgroup, nothing is left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")
BASE = "/sys/fs/cgroup"


class Iso:
    def __init__(self, root: str) -> None:
        self.root = root
        self.env = dict(os.environ, ISOINSPECT_ROOT=root)
        from isoinspect.runtime.roots import Roots

        self.parent = os.path.join(BASE, Roots(root).cgroup_parent)

    def __call__(self, *args: str, check: bool = False, timeout: float = 120):
        result = subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"isoinspect {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result

    def containers_cgroups(self) -> list[str]:
        if not os.path.isdir(self.parent):
            return []
        return [d for d in os.listdir(self.parent) if os.path.isdir(os.path.join(self.parent, d))]


@pytest.fixture(scope="module")
def base_root():
    top = tempfile.mkdtemp(prefix="isoinspect-guest-")
    root = os.path.join(top, "base")
    subprocess.run([CLI, "--root", root, "images", "--ensure-base"], check=True,
                   capture_output=True)
    yield root
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def iso(base_root, tmp_path):
    root = str(tmp_path / "root")
    subprocess.run(["cp", "-a", base_root, root], check=True)
    helper = Iso(root)
    yield helper
    leftover_ids = helper("ps", "-aq").stdout.split()
    if leftover_ids:
        helper("rm", "-f", *leftover_ids)
    leftovers = helper.containers_cgroups()
    if os.path.isdir(helper.parent):
        try:
            os.rmdir(helper.parent)
        except OSError:
            pass
    assert not leftovers, f"cgroups left behind under {helper.parent}: {leftovers}"


def test_run_true(iso):
    result = iso("run", "--rm", "--network", "none", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert iso.containers_cgroups() == []


def test_library_start_clones_into_the_cgroup(iso):
    """Pure v2: the first process is created in its cgroup by clone3(CLONE_INTO_CGROUP), so
    it writes no cgroup.procs (no wait for the attach lock's RCU grace period): the launch
    says the call worked and the process is in the container's cgroup from the start."""
    from isoinspect.runtime import launch
    from isoinspect.runtime.runtime import Runtime
    from isoinspect.runtime.spec import ContainerSpec

    runtime = Runtime(iso.root)
    record = runtime.create(ContainerSpec("busybox", ["sh", "-c", "cat /proc/self/cgroup"],
                                          network="none", pids_limit=50))
    read, write = os.pipe()
    try:
        started = runtime.start(record, (None, write, None))
        os.close(write)
        write = -1
        assert launch._into_cgroup_works is True
        with open(os.path.join(BASE, record.cgroup, "pids.max")) as handle:
            assert handle.read().strip() == "50"  # its limits were there before it ran
        assert runtime.wait_child(started) == 0
        with os.fdopen(read) as handle:
            read = -1
            assert handle.read().strip() == "0::/"  # its own cgroup, seen from its cgroupns
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
        runtime.remove(record.id, force=True)


def test_limits_reach_the_v2_cgroup(iso):
    cid = iso("run", "-d", "--network", "none", "--memory", "64m", "--memory-swap", "64m",
              "--pids-limit", "20", "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0",
              "busybox", "sleep", "60", check=True).stdout.strip()
    inspected = json.loads(iso("inspect", cid, check=True).stdout)[0]
    directory = os.path.join(BASE, inspected["CgroupPath"])

    def read(name):
        with open(os.path.join(directory, name)) as handle:
            return handle.read().strip()

    assert read("memory.max") == str(64 << 20)
    assert read("memory.swap.max") == "0"
    assert read("pids.max") == "20"
    assert read("cpu.max") == "50000 100000"
    assert read("cpu.weight") == "20"
    assert read("cpuset.cpus") == "0"
    assert str(inspected["State"]["Pid"]) in read("cgroup.procs").split()
    # Its own cgroup namespace: "/" is its cgroup, and /sys/fs/cgroup shows its own files.
    inside = iso("exec", cid, "sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max "
                 "/sys/fs/cgroup/pids.max", check=True).stdout.split()
    assert inside == ["0::/", str(64 << 20), "20"], inside
    iso("rm", "-f", cid, check=True)
    assert not os.path.exists(directory)


def test_update_and_pause_on_v2(iso):
    """isoinspect update writes memory.max, memory.swap.max (swap alone), pids.max and cpu.max
    (the period kept); pause/unpause set cgroup.freeze, confirmed by cgroup.events."""
    cid = iso("run", "-d", "--network", "none", "--memory", "64m", "--memory-swap", "64m",
              "busybox", "sleep", "60", check=True).stdout.strip()
    directory = os.path.join(BASE, json.loads(iso("inspect", cid, check=True).stdout)[0]
                             ["CgroupPath"])

    def read(name):
        with open(os.path.join(directory, name)) as handle:
            return handle.read().strip()

    iso("update", "-m", "32m", "--memory-swap", "48m", "--pids-limit", "9", "--cpu-quota",
        "20000", cid, check=True)
    assert [read(n) for n in ("memory.max", "memory.swap.max", "pids.max", "cpu.max")] == \
        [str(32 << 20), str(16 << 20), "9", "20000 100000"]
    iso("pause", cid, check=True)
    assert "frozen 1" in read("cgroup.events") and read("cgroup.freeze") == "1"
    assert iso("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
    iso("unpause", cid, check=True)
    assert "frozen 0" in read("cgroup.events")
    iso("rm", "-f", cid, check=True)


def test_memory_limit_oom_kills(iso):
    result = iso("run", "--rm", "--network", "none", "--memory", "16m", "--memory-swap", "16m",
                 "busybox", "sh", "-c",
                 "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    assert result.returncode == 137, (result.returncode, result.stdout, result.stderr)
    assert "survived" not in result.stdout


def test_pids_limit_stops_forks(iso):
    result = iso("run", "--rm", "--network", "none", "--pids-limit", "5", "busybox", "sh", "-c",
                 "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3 & echo started; done")
    assert "can't fork" in result.stderr, result.stderr
    assert result.stdout.count("started") == 4


def test_network_host_on_v2(iso):
    # A fresh read-only sysfs with the container's own cgroup2 (its cgroup namespace) on it.
    result = iso("run", "--rm", "--network", "host", "busybox", "sh", "-c",
                 "readlink /proc/self/ns/net; cat /proc/self/cgroup; ls /sys/fs/cgroup/pids.max")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [os.readlink("/proc/self/ns/net"), "0::/",
                                     "/sys/fs/cgroup/pids.max"], result.stdout


def test_network_host_sysfs_and_cgroups_are_readonly_on_v2(iso):
    """Issue 13 item 3 on v2: a --network host container cannot write its cgroup files (to
    leave its limits), every mount under /sys is read-only, the host's cgroup tree is not
    visible. Docker on v2: private cgroup namespace, cgroup2 mounted read-only, sysfs ro."""
    probe = ("for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/cgroup.subtree_control "
             "/sys/fs/cgroup/pids.max; do if (echo 0 > $f) 2>/dev/null; then echo WROTE $f; "
             "else echo REFUSED $f; fi; done; "
             "awk '$5 ~ /^\\/sys/ {print \"MOUNT\", $5, $6}' /proc/self/mountinfo; "
             "for e in $(ls -A /sys/fs/cgroup); do echo ENTRY $e; done")
    result = iso("run", "--rm", "--network", "host", "busybox", "sh", "-c", probe)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("REFUSED ")]) == 3, result.stdout
    mounts = [line.split() for line in lines if line.startswith("MOUNT ")]
    assert mounts and all("ro" in m[2].split(",") for m in mounts), mounts
    host_dirs = {d for d in os.listdir(BASE) if os.path.isdir(os.path.join(BASE, d))}
    entries = {line.split()[1] for line in lines if line.startswith("ENTRY ")}
    assert "cgroup.procs" in entries and not entries & host_dirs, (entries, host_dirs)


def test_stop_and_kill_empty_the_cgroup(iso):
    cid = iso("run", "-d", "--network", "none", "busybox", "sh", "-c",
              "sleep 60 & sleep 60 & wait",
              check=True).stdout.strip()
    path = json.loads(iso("inspect", cid).stdout)[0]["CgroupPath"]
    iso("stop", "-t", "1", cid, check=True)
    assert not os.path.exists(os.path.join(BASE, path, "cgroup.procs")) or \
        open(os.path.join(BASE, path, "cgroup.procs")).read() == ""
    iso("rm", cid, check=True)


def test_gc_removes_orphan_cgroups_on_v2(iso):
    orphan = os.path.join(iso.parent, "f" * 64)
    os.makedirs(orphan)
    out = iso("gc", check=True).stdout
    assert f"removed orphan cgroup {os.path.relpath(orphan, BASE)}" in out, out
    assert not os.path.exists(orphan)


def test_killed_cli_leaves_nothing_gc_cannot_clean(iso):
    import signal
    import time

    proc = subprocess.Popen([CLI, "run", "--network", "none", "--name", "victim", "busybox",
                             "sleep", "60"],
                            env=iso.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not iso.containers_cgroups() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert iso.containers_cgroups(), "the container should have a v2 cgroup while it runs"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    iso("rm", "-f", "victim")
    iso("gc")
    assert iso.containers_cgroups() == []


def _disk() -> tuple[int, int]:
    """major, minor of the guest's scratch disk (GuestVM(disk_mb=64): /dev/vda, raw)."""
    with open("/sys/block/vda/dev") as handle:
        major, minor = handle.read().strip().split(":")
    return int(major), int(minor)


def _disk_probe(major: int, minor: int) -> str:
    return (f"mknod /tmp/disk b {major} {minor} && echo mknod-ok; "
            "dd if=/tmp/disk bs=512 count=1 2>/dev/null | wc -c; "
            "(exec 3</tmp/disk) && echo read-ok; "
            "(exec 3>/tmp/disk) && dd if=/dev/zero of=/tmp/disk bs=512 count=1 seek=64 "
            "conv=notrunc 2>/dev/null && echo write-ok; "
            "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok")


def test_default_container_cannot_open_the_disk_it_mknods(iso):
    """Issue 13: on cgroup v2 a default container made a node for the disk, read and wrote it.

    Docker on cgroup v2 (runc's BPF_CGROUP_DEVICE program, default rules): `mknod` succeeds
    (CAP_MKNOD and "b *:* m" are in the defaults) but open() of the node fails with EPERM
    ("Operation not permitted") for reading and for writing; /dev/null and /dev/zero work.
    """
    major, minor = _disk()
    result = iso("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                 _disk_probe(major, minor))
    assert result.stdout.split() == ["mknod-ok", "0", "4", "null-ok"], \
        (result.stdout, result.stderr)
    assert result.stderr.count("Operation not permitted") == 2, result.stderr


def test_a_device_cgroup_rule_allows_that_disk(iso):
    """Docker: `--device-cgroup-rule 'b 254:0 rw'` adds the device to the allow-list; the
    container can then open the node it made (no node is created for it, unlike --device)."""
    major, minor = _disk()
    result = iso("run", "--rm", "--network", "none", "--device-cgroup-rule",
                 f"b {major}:{minor} rw", "busybox", "sh", "-c", _disk_probe(major, minor))
    assert result.stdout.split() == ["mknod-ok", "512", "read-ok", "write-ok", "4", "null-ok"], \
        (result.stdout, result.stderr)
    read_only = iso("run", "--rm", "--network", "none", "--device-cgroup-rule",
                    f"b {major}:{minor} r", "busybox", "sh", "-c", _disk_probe(major, minor))
    assert read_only.stdout.split() == ["mknod-ok", "512", "read-ok", "4", "null-ok"], \
        (read_only.stdout, read_only.stderr)
    assert read_only.stderr.count("Operation not permitted") == 1, read_only.stderr
