"""The v2 cgroup driver for real on a pure cgroup v2 kernel (the QEMU guest): limits read back
from the kernel, processes joined, and the kernel enforcing memory (OOM kill counted in
memory.events), cpu.max (throttling in cpu.stat), pids.max (fork refused, pids.events), cpuset,
io.max (on the guest's virtio disk) and the core freezer / cgroup.kill.

Each test has its own "isoinspect/test-<random>" cgroup, killed and removed even on failure.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid

import pytest

from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources, make_manager
from isoinspect.runtime.cgroups.layout import read_layout
from isoinspect.runtime.cgroups.manager import list_children
from isoinspect.runtime.cgroups.v2.manager import V2Manager

ROOT = "/sys/fs/cgroup"
DISK = "/dev/vda"


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
    manager = make_manager(f"isoinspect/test-{uuid.uuid4().hex[:12]}")
    assert isinstance(manager, V2Manager)
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


def kernel(cg, name) -> str:
    with open(os.path.join(cg.dir, name)) as handle:
        return handle.read().strip()


def python(code: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", code]


def test_the_guest_is_pure_cgroup_v2():
    assert read_layout(ROOT).mode == "unified" and read_layout(ROOT).v2 == ROOT
    with open("/proc/self/cgroup") as handle:
        assert handle.read().strip() == "0::/"
    with open(f"{ROOT}/cgroup.subtree_control") as handle:
        enabled = handle.read().split()
    assert {"cpu", "cpuset", "io", "memory", "pids"} <= set(enabled)


def test_create_enables_controllers_top_down(cg):
    parent = os.path.dirname(cg.dir)
    with open(os.path.join(parent, "cgroup.subtree_control")) as handle:
        assert {"cpu", "cpuset", "io", "memory", "pids"} <= set(handle.read().split())
    assert {"cpu", "cpuset", "io", "memory", "pids"} <= set(cg.controllers())
    assert cg.path.rsplit("/", 1)[1] in list_children()


def test_limits_read_back_from_the_kernel(cg):
    warnings = cg.apply(Resources(memory=32 << 20, memory_swap=48 << 20,
                                  memory_reservation=8 << 20, pids_limit=5, cpus=0.5,
                                  cpu_shares=512, cpuset_cpus="0", cpuset_mems="0"))
    assert warnings == []
    assert kernel(cg, "memory.max") == str(32 << 20)
    assert kernel(cg, "memory.swap.max") == str(16 << 20)
    assert kernel(cg, "memory.low") == str(8 << 20)
    assert kernel(cg, "pids.max") == "5"
    assert kernel(cg, "cpu.max") == "50000 100000"
    assert kernel(cg, "cpu.weight") == "20"    # runc's formula for 512 shares
    assert kernel(cg, "cpuset.cpus") == "0" and kernel(cg, "cpuset.mems") == "0"
    stats = cg.stats()
    assert stats.memory.max == 32 << 20 and stats.memory.low == 8 << 20
    assert stats.memory.swap_max == 16 << 20
    assert stats.pids.max == 5 and stats.pids.current == 0
    assert stats.cpu.quota_us == 50000 and stats.cpu.period_us == 100000
    assert stats.cpu.weight == 20
    assert stats.cpuset.cpus == "0" and stats.cpuset.cpus_effective == "0"
    assert stats.to_dict()["freezer"] == {"state": "THAWED", "frozen": False, "populated": False}
    # unlimited again
    cg.apply(Resources(memory=-1, memory_swap=-1, pids_limit=-1, cpu_quota_us=-1))
    assert kernel(cg, "memory.max") == "max" and kernel(cg, "memory.swap.max") == "max"
    assert kernel(cg, "pids.max") == "max" and kernel(cg, "cpu.max") == "max 100000"


def test_device_rules_are_enforced_by_a_bpf_program(cg, procs, tmp_path):
    """v2 has no devices.allow: the driver attaches a BPF_CGROUP_DEVICE program (as runc does).
    The guest kernel (Debian, CONFIG_CGROUP_BPF=y) refuses opening the disk with EPERM, allows
    /dev/null; an extra read rule for the disk lets a process open it for reading only."""
    disk = os.stat(DISK).st_rdev
    probe = ("import os, sys\n"
             "node = sys.argv[1]\n"
             "os.mknod(node, 0o600 | 0o060000, int(sys.argv[2])); print('mknod ok')\n"
             "for path, flags in ((node, os.O_RDONLY), (node, os.O_WRONLY), "
             "('/dev/null', os.O_RDWR)):\n"
             "    try:\n"
             "        os.close(os.open(path, flags)); print(flags, 'ok')\n"
             "    except OSError as e:\n"
             "        print(flags, e.errno)\n")

    def run_probe(name):
        child = procs.start(python(probe) + [str(tmp_path / name), str(disk)], cg,
                            stdout=subprocess.PIPE, text=True)
        return child.communicate(timeout=30)[0].splitlines()

    assert cg.apply(Resources(device_rules=DEFAULT_DEVICE_RULES)) == []
    assert cg.stats().to_dict()["devices"] == {"enforced": True, "programs": 1}
    assert run_probe("a") == ["mknod ok", "0 1", "1 1", "2 ok"]  # 1 = EPERM
    rule = ("b", os.major(disk), os.minor(disk), "r", True)
    assert cg.apply(Resources(device_rules=list(DEFAULT_DEVICE_RULES) + [rule])) == []
    assert cg.stats().to_dict()["devices"] == {"enforced": True, "programs": 1}  # replaced
    assert run_probe("b") == ["mknod ok", "0 ok", "1 1", "2 ok"]


def test_add_task_moves_a_real_process(cg, procs):
    sleeper = procs.start(["sleep", "30"])
    cg.add_task(sleeper.pid)
    assert cg.pids() == [sleeper.pid]
    with open(f"/proc/{sleeper.pid}/cgroup") as handle:
        assert handle.read().strip() == "0::/" + cg.path
    assert cg.cgroup_id() == os.stat(cg.dir).st_ino
    assert cg.stats().pids.current == 1


def test_child_joins_through_procs_files_before_exec(cg, procs):
    child = procs.start(["cat", "/proc/self/cgroup"], cg, stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=30)
    assert out.strip() == "0::/" + cg.path


def test_pids_limit_stops_forks_and_is_counted(cg, procs):
    cg.apply(Resources(pids_limit=3))
    # The shell counts as one task, so only two sleeps fit; the third fork gets EAGAIN.
    script = ("for i in 1 2 3 4 5 6; do sleep 30 >/dev/null 2>&1 & echo started; done; "
              "echo loop-done")
    shell = procs.start(["/bin/sh", "-c", script], cg, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    out, err = shell.communicate(timeout=60)
    assert out.split().count("started") == 2, (out, err)
    assert "fork" in err.lower()
    stats = cg.stats().pids
    assert stats.events.max >= 1 and stats.max == 3, stats
    with open(os.path.join(cg.dir, "pids.events")) as handle:
        assert int(handle.read().split()[1]) >= 1
    assert cg.kill_all(timeout=5) == 2
    assert cg.pids() == []


def test_memory_limit_oom_kills_and_is_counted(cg, procs):
    cg.apply(Resources(memory=32 << 20, memory_swap=32 << 20))   # swap.max 0: no escape
    assert kernel(cg, "memory.swap.max") == "0"
    hog = procs.start(python("b = b'x' * (100 << 20); print('survived')"), cg,
                      stdout=subprocess.PIPE, text=True)
    out, _ = hog.communicate(timeout=120)
    assert hog.returncode == -9 and "survived" not in out
    memory = cg.stats().memory
    events = memory.events
    assert events.oom_kill >= 1 and events.oom >= 1 and events.max >= 1, memory
    assert 16 << 20 < memory.peak <= 32 << 20, memory


def test_memory_high_usage_is_reported(cg, procs):
    cg.apply(Resources(memory=64 << 20))
    holder = procs.start(python("import sys, time\nb = bytearray(24 << 20)\n"
                                "print('held', flush=True)\ntime.sleep(30)"), cg,
                         stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    usage = cg.stats().memory.current
    assert 24 << 20 <= usage <= 64 << 20


def test_cpu_quota_throttles(cg, procs):
    cg.apply(Resources(cpus=0.1))
    started = time.monotonic()
    busy = procs.start(["/bin/sh", "-c", "end=$(( $(date +%s) + 2 )); "
                        "while [ $(date +%s) -lt $end ]; do :; done"], cg)
    busy.wait(timeout=120)
    elapsed = time.monotonic() - started
    cpu = cg.stats().cpu
    assert cpu.nr_periods >= 10 and cpu.nr_throttled >= 5, cpu
    assert cpu.throttled_usec > 0, cpu
    # 10 ms per 100 ms period, a period's overshoot allowed per CPU
    assert 0 < cpu.usage_usec <= 0.1 * elapsed * 1e6 + 2 * 20000 + 50000, (cpu, elapsed)


def test_cpuset_pins_the_process(cg, procs):
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("the guest has one CPU")
    last = max(cpus)
    cg.apply(Resources(cpuset_cpus=str(last)))
    child = procs.start(python("import os; print(sorted(os.sched_getaffinity(0)))"), cg,
                        stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=60)
    assert out.strip() == f"[{last}]"
    assert cg.stats().cpuset.cpus_effective == str(last)


def _disk() -> tuple[int, int] | None:
    try:
        info = os.stat(DISK)
    except FileNotFoundError:
        return None
    return (os.major(info.st_rdev), os.minor(info.st_rdev)) if stat.S_ISBLK(info.st_mode) else None


def test_io_max_throttles_writes(cg, procs):
    device = _disk()
    if device is None:
        pytest.skip(f"no {DISK} in the guest (boot it with a disk: GuestVM(disk_mb=...))")
    major, minor = device
    cg.apply(Resources(blkio_write_bps=[(major, minor, 1 << 20)],
                       blkio_read_iops=[(major, minor, 100)]))
    assert kernel(cg, "io.max") == f"{major}:{minor} rbps=max wbps=1048576 riops=100 wiops=max"
    started = time.monotonic()
    writer = procs.start(["dd", "if=/dev/zero", f"of={DISK}", "bs=64k", "count=48",
                          "oflag=direct"], cg, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    _, err = writer.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert writer.returncode == 0, err
    assert elapsed >= 1.5, f"3 MiB at 1 MiB/s took only {elapsed:.2f} s"
    io = cg.stats().io
    assert io.wbytes >= 3 << 20 and io.wios >= 48, io
    assert f"{major}:{minor}" in io.devices


def test_freeze_and_thaw(cg, procs):
    counter = procs.start(["/bin/sh", "-c", "while :; do :; done"], cg)
    time.sleep(0.2)
    cg.freeze()
    assert kernel(cg, "cgroup.freeze") == "1"
    assert cg.stats().freezer.frozen is True
    before = cg.stats().cpu.usage_usec
    time.sleep(0.5)
    assert cg.stats().cpu.usage_usec - before < 20000   # frozen: no CPU used
    cg.thaw()
    assert cg.stats().freezer.state == "THAWED"
    assert counter.poll() is None


def test_kill_all_through_cgroup_kill_then_remove(cg, procs):
    shell = procs.start(["/bin/sh", "-c", "sleep 60 & sleep 60 & sleep 60 & wait"], cg)
    deadline = time.monotonic() + 20
    while len(cg.pids()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(cg.pids()) == 4
    assert cg.kill_all() == 4
    assert cg.pids() == []
    assert shell.wait(timeout=10) == -9
    cg.remove()
    assert not cg.exists()
    assert cg.path.rsplit("/", 1)[1] not in list_children()
    cg.remove()   # already gone: no error


def test_signal_other_than_kill_goes_through_the_freezer(cg, procs):
    sleeper = procs.start(["sleep", "60"], cg)
    deadline = time.monotonic() + 20
    while not cg.pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cg.kill_all(15, timeout=0) == 1
    assert sleeper.wait(timeout=10) == -15
