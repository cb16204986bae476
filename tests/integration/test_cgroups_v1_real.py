"""The v1 cgroup driver for real on this (hybrid) host, as root: limits read back from the
kernel, processes joined, and the kernel enforcing pids, memory (OOM kill), CPU and devices.

Every test uses its own "isoinspect/test-<random>" cgroup; the fixture kills what is left in it
and removes it in every hierarchy even when the test fails. Skipped (saying why) when not root
or when the host is cgroup v2 only (the v2 driver is tested for real in a QEMU guest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources, make_manager
from isoinspect.runtime.cgroups.layout import read_layout
from isoinspect.runtime.cgroups.manager import list_children
from isoinspect.runtime.cgroups.v1.manager import V1Manager

ROOT = "/sys/fs/cgroup"


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    try:
        setup = read_layout(ROOT).mode
    except OSError as err:
        return f"no cgroup hierarchy: {err}"
    if setup == "unified":
        return "host is cgroup v2 only: v1 driver not testable here"
    return None


_SKIP = _why_skip()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


class Procs:
    """Child processes started by a test; all killed and reaped at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, argv, cg=None, **kwargs) -> subprocess.Popen:
        files = cg.procs_files() if cg else []

        def join():  # in the child, before exec: what the container's init does
            for path in files:
                with open(path, "w") as handle:
                    handle.write("0")

        proc = subprocess.Popen(argv, preexec_fn=join if files else None, **kwargs)
        self.started.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def procs():
    helper = Procs()
    yield helper
    helper.cleanup()


@pytest.fixture
def cg():
    name = f"isoinspect/test-{uuid.uuid4().hex[:12]}"
    manager = make_manager(name)
    assert isinstance(manager, V1Manager)
    manager.create()
    try:
        yield manager
    finally:
        try:
            if manager.exists():
                manager.kill_all(timeout=5)
        finally:
            manager.remove(timeout=5)
    assert not manager.exists(), f"cgroup left behind: {manager.dirs()}"


def kernel(cg, controller, name) -> str:
    with open(os.path.join(cg.controller_dir(controller), name)) as handle:
        return handle.read().strip()


def test_limits_read_back_from_the_kernel(cg):
    warnings = cg.apply(Resources(memory=32 << 20, pids_limit=5, cpus=0.5, cpuset_cpus="0"))
    assert warnings == []
    assert kernel(cg, "memory", "memory.limit_in_bytes") == str(32 << 20)
    assert kernel(cg, "pids", "pids.max") == "5"
    assert kernel(cg, "cpu", "cpu.cfs_quota_us") == "50000"
    assert kernel(cg, "cpu", "cpu.cfs_period_us") == "100000"
    assert kernel(cg, "cpuset", "cpuset.cpus") == "0"
    # our parent got the host's cpus/mems copied in (a new v1 cpuset starts empty)
    parent = os.path.dirname(cg.controller_dir("cpuset"))
    with open(os.path.join(parent, "cpuset.cpus")) as handle:
        assert handle.read().strip()
    stats = cg.stats()
    assert stats.memory.max == 32 << 20 and stats.pids.max == 5
    assert stats.cpu.quota_us == 50000 and stats.cpuset.cpus == "0"
    assert cg.path.rsplit("/", 1)[1] in list_children()


def test_add_task_moves_a_real_process(cg, procs):
    sleeper = procs.start(["sleep", "30"])
    cg.add_task(sleeper.pid)
    assert cg.pids() == [sleeper.pid]
    for procs_file in cg.procs_files():
        with open(procs_file) as handle:
            assert str(sleeper.pid) in handle.read().split()
    with open(f"/proc/{sleeper.pid}/cgroup") as handle:
        membership = dict(line.split(":", 2)[1:] for line in handle.read().splitlines())
    for controller in ("memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer",
                       "blkio"):
        key = next(k for k in membership if controller in k.split(","))
        assert membership[key] == "/" + cg.path, (controller, membership)
    if cg.unified:
        assert membership[""] == "/" + cg.path
        assert cg.cgroup_id() == os.stat(os.path.join(cg.unified, cg.path)).st_ino


def test_child_joins_through_procs_files_before_exec(cg, procs):
    child = procs.start(["cat", "/proc/self/cgroup"], cg, stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=10)
    lines = [line for line in out.splitlines() if ":memory:" in line or ":pids:" in line]
    assert len(lines) == 2 and all(line.endswith("/" + cg.path) for line in lines)


def test_pids_limit_stops_forks(cg, procs):
    cg.apply(Resources(pids_limit=3))
    # The shell counts as one task, so only two sleeps fit; the third fork gets EAGAIN.
    script = ("for i in 1 2 3 4 5 6; do sleep 30 >/dev/null 2>&1 & echo started; done; "
              "echo loop-done")
    shell = procs.start(["/bin/sh", "-c", script], cg, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    out, err = shell.communicate(timeout=20)
    started = out.split().count("started")
    assert started == 2, (out, err)
    assert "fork" in err.lower()
    sleeps = [pid for pid in cg.pids()
              if open(f"/proc/{pid}/comm").read().strip() == "sleep"]
    assert len(sleeps) == 2
    stats = cg.stats().pids
    assert stats.events.max >= 1 and stats.max == 3
    assert cg.kill_all(timeout=5) == 2
    assert cg.pids() == []


def test_memory_limit_oom_kills(cg, procs):
    # memsw = memory: no escaping into swap where swap exists
    cg.apply(Resources(memory=32 << 20, memory_swap=32 << 20))
    hog = procs.start([sys.executable, "-I", "-S", "-c", "b = b'x' * (100 << 20); print('survived')"],
                      cg, stdout=subprocess.PIPE, text=True)
    out, _ = hog.communicate(timeout=60)
    assert hog.returncode == -9 and "survived" not in out
    memory = cg.stats().memory
    assert memory.events.oom_kill >= 1
    assert memory.peak <= 32 << 20 and memory.peak > 16 << 20


def test_cpu_quota_throttles(cg, procs):
    cg.apply(Resources(cpus=0.1))
    busy = procs.start([sys.executable, "-I", "-S", "-c",
                        "import time\nend = time.monotonic() + 1.0\n"
                        "while time.monotonic() < end: pass"], cg)
    busy.wait(timeout=30)
    cpu = cg.stats().cpu
    # 10 ms per 100 ms period: ~100 ms of CPU in 1 s (plus interpreter start), throttled often
    assert cpu.nr_throttled >= 5, cpu
    assert 0 < cpu.usage_usec < 400000, cpu


def test_device_rules_enforced(cg, procs):
    cg.apply(Resources(device_rules=DEFAULT_DEVICE_RULES))
    listing = cg.stats().devices.list
    assert "c 1:3 rwm" in listing and "c 136:* rwm" in listing and "a *:* rwm" not in listing
    probe = ("import os\n"
             "for dev in ('/dev/null', '/dev/kmsg'):\n"
             "    try:\n"
             "        os.close(os.open(dev, os.O_RDONLY | os.O_NONBLOCK)); print(dev, 'ok')\n"
             "    except OSError as e:\n"
             "        print(dev, e.errno)\n")
    child = procs.start([sys.executable, "-I", "-S", "-c", probe], cg, stdout=subprocess.PIPE,
                        text=True)
    out, _ = child.communicate(timeout=20)
    assert out.split("\n")[:2] == ["/dev/null ok", "/dev/kmsg 1"], out  # 1 = EPERM


def test_freeze_and_thaw(cg, procs):
    counter = procs.start(["/bin/sh", "-c", "while :; do :; done"], cg)
    time.sleep(0.05)
    cg.freeze()
    assert kernel(cg, "freezer", "freezer.state") == "FROZEN"
    before = cg.stats().cpu.usage_usec
    time.sleep(0.3)
    assert cg.stats().cpu.usage_usec - before < 20000  # frozen: no CPU used
    cg.thaw()
    assert kernel(cg, "freezer", "freezer.state") == "THAWED"
    assert counter.poll() is None


def test_kill_all_then_remove(cg, procs):
    shell = procs.start(["/bin/sh", "-c", "sleep 30 & sleep 30 & sleep 30 & wait"], cg)
    deadline = time.monotonic() + 5
    while len(cg.pids()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cg.pids()) == 4
    assert cg.kill_all() == 4
    assert cg.pids() == []
    assert shell.wait(timeout=5) == -9
    cg.remove()
    assert not cg.exists()
    assert cg.path.rsplit("/", 1)[1] not in list_children()
    cg.remove()  # already gone: no error
