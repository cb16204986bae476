"""The cgroup v2 device filter (runtime/cgroups/v2/devices.py) for real on this host, as root.

A BPF_CGROUP_DEVICE program works on any cgroup2 directory, including the controller-less
cgroup2 mount of a hybrid host, where the kernel runs it before the v1 devices controller: so
the loader, the attachment and the kernel's verdicts are tested here without the QEMU guest
(which runs the same checks through the whole runtime on a pure v2 host). Each test has its own
"isoinspect-test-devices-<random>" cgroup, emptied and removed even on failure. Block devices
are only opened, never read from or written to.

Docker (cgroup v2, default device rules): a container may mknod any device (CAP_MKNOD, rule
"b *:* m"), but open() of a node whose device is not in the allow-list fails with EPERM
("Operation not permitted"); /dev/null, /dev/zero and the other default devices open fine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources, make_manager
from isoinspect.runtime.cgroups.figures import Devices, read_figures
from isoinspect.runtime.cgroups.layout import ROOT, UNIFIED, read_layout
from isoinspect.runtime.cgroups.v1.manager import V1Manager
from isoinspect.runtime.cgroups.v2 import devices


def _cgroup2_mount() -> str | None:
    try:
        return read_layout(ROOT).v2
    except OSError:
        return None


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create cgroups and load BPF programs"
    if _cgroup2_mount() is None:
        return "no cgroup2 mount on this host (legacy cgroup v1 only)"
    return None


_SKIP = _why_skip()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def _block_device() -> tuple[int, int]:
    """major:minor of a block device of this host (a loop device if there is one)."""
    names = sorted(os.listdir("/sys/block"), key=lambda n: (not n.startswith("loop"), n))
    with open(f"/sys/block/{names[0]}/dev") as handle:
        major, minor = handle.read().strip().split(":")
    return int(major), int(minor)


PROBE = """
import os, sys
major, minor, node = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
try:
    os.mknod(node, 0o600 | 0o060000, os.makedev(major, minor)); print("mknod ok")
except OSError as err:
    print("mknod", err.errno)
for path, flags in ((node, os.O_RDONLY), (node, os.O_WRONLY), ("/dev/null", os.O_RDWR),
                    ("/dev/zero", os.O_RDONLY)):
    try:
        os.close(os.open(path, flags | os.O_NONBLOCK)); print(path, flags, "ok")
    except OSError as err:
        print(path, flags, err.errno)
"""


@pytest.fixture
def cgdir():
    path = os.path.join(_cgroup2_mount(), f"isoinspect-test-devices-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    yield path
    with open(os.path.join(path, "cgroup.procs")) as handle:
        for pid in handle.read().split():
            os.kill(int(pid), 9)
    os.rmdir(path)


def probe_in(path: str, tmp_path, major: int, minor: int) -> list[str]:
    def join():
        with open(os.path.join(path, "cgroup.procs"), "w") as handle:
            handle.write("0")

    node = str(tmp_path / "disk")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(major), str(minor),
                             node], preexec_fn=join, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.replace(node, "NODE") for line in result.stdout.splitlines()]


def test_default_rules_refuse_opening_a_block_device(cgdir, tmp_path):
    """The issue-13 attack: mknod of a disk node, then open it for reading and writing."""
    major, minor = _block_device()
    devices.apply(cgdir, Resources(device_rules=DEFAULT_DEVICE_RULES))
    assert probe_in(cgdir, tmp_path, major, minor) == [
        "mknod ok", "NODE 0 1", "NODE 1 1",  # 1 = EPERM for read and for write
        "/dev/null 2 ok", "/dev/zero 0 ok"]
    assert read_figures({UNIFIED: cgdir}, 2).devices == Devices(enforced=True, programs=1)


def test_an_added_rule_allows_that_device_and_only_that_access(cgdir, tmp_path):
    major, minor = _block_device()
    rules = list(DEFAULT_DEVICE_RULES) + [("b", major, minor, "r", True)]
    devices.apply(cgdir, Resources(device_rules=rules))
    assert probe_in(cgdir, tmp_path, major, minor) == [
        "mknod ok", "NODE 0 ok", "NODE 1 1", "/dev/null 2 ok", "/dev/zero 0 ok"]


def test_applying_again_replaces_the_program(cgdir, tmp_path):
    major, minor = _block_device()
    devices.apply(cgdir, Resources(device_rules=list(DEFAULT_DEVICE_RULES)
                                   + [("b", major, minor, "r", True)]))
    first = devices.attached(cgdir)
    devices.apply(cgdir, Resources(device_rules=DEFAULT_DEVICE_RULES))
    second = devices.attached(cgdir)
    assert len(first) == len(second) == 1 and first != second
    assert probe_in(cgdir, tmp_path, major, minor)[1] == "NODE 0 1"


def test_hybrid_host_keeps_the_v1_devices_controller():
    """On this host containers get a V1Manager: device rules go to devices.allow/deny, and no BPF
    program is attached to their cgroup in the unified hierarchy."""
    if read_layout(ROOT).mode == "unified":
        pytest.skip("host is cgroup v2 only: the v2 driver attaches the program")
    cg = make_manager(f"isoinspect/test-{uuid.uuid4().hex[:12]}")
    assert isinstance(cg, V1Manager) and cg.unified
    cg.create()
    try:
        assert cg.apply(Resources(device_rules=DEFAULT_DEVICE_RULES)) == []
        assert "c 1:3 rwm" in cg.stats().devices.list
        assert devices.attached(cg._unified_dir()) == []
    finally:
        cg.remove()


def _container_probe(major: int, minor: int) -> str:
    # opens only: nothing is read from or written to the host's block device
    return (f"mknod /tmp/disk b {major} {minor} && echo mknod-ok; "
            "(exec 3</tmp/disk) && echo read-ok; (exec 3>/tmp/disk) && echo write-ok; "
            "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok")


def test_containers_on_this_host_get_the_same_device_rules(iso):
    """The runtime on this (hybrid) host, v1 devices controller: a default container may mknod a
    block device but not open it; --device-cgroup-rule 'b M:N r' opens it for reading only.
    Docker: the same (EPERM on open; the rule adds "b M:N r" to devices.allow)."""
    major, minor = _block_device()
    default = iso("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                  _container_probe(major, minor))
    assert default.stdout.split() == ["mknod-ok", "4", "null-ok"], default
    assert default.stderr.count("Operation not permitted") == 2, default.stderr
    ruled = iso("run", "--rm", "--network", "none", "--device-cgroup-rule",
                f"b {major}:{minor} r", "busybox", "sh", "-c", _container_probe(major, minor))
    assert ruled.stdout.split() == ["mknod-ok", "read-ok", "4", "null-ok"], ruled
    assert ruled.stderr.count("Operation not permitted") == 1, ruled.stderr
    bad = iso("run", "--rm", "--network", "none", "--device-cgroup-rule", "b 7:x r",
              "busybox", "true")
    assert bad.returncode == 125 and bad.stderr.startswith("isoinspect: invalid "
                                                           "--device-cgroup-rule"), bad.stderr
