"""Hostile or careless inputs through the real CLI (issue 13, items 9 and 11): a state file system
filled by a container, flag values out of range, ISOINSPECT_DEBUG=0, a broken image on a
bridge start. Each one must end in the command's own exit code or one clear line, never a
traceback or an "internal error", and leave nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from isoinspect.runtime.network import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

FILL = "dd if=/dev/zero of=/fill bs=64k; exit 0"  # dd fails with ENOSPC; the command says 0


def assert_clean_failure(result, *needles: str, code: int = 125) -> None:
    """Exit ``code``, exactly one line on stderr naming the problem, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_no_isoinspect_noise(result) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, \
        result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("isoinspect:")], \
        result.stderr


def state_entries(root: str) -> dict[str, list[str]]:
    """What the state root holds for containers: their directories and reserved names."""
    found = {}
    for kind in ("containers", "names"):
        try:
            found[kind] = sorted(os.listdir(os.path.join(root, "lib", kind)))
        except FileNotFoundError:
            found[kind] = []
    return found


@pytest.fixture
def full_fs(tmp_path, iso):
    """A private tmpfs holding a copy of the test's state root, with ~3 MiB to spare."""
    mount_point = tmp_path / "statefs"
    mount_point.mkdir()
    used = int(subprocess.run(["du", "-sk", iso.root], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    size_kib = used + 3 * 1024
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755",
                    "isoinspect-fulltest", str(mount_point)], check=True)
    try:
        root = str(mount_point / "root")
        subprocess.run(["cp", "-a", iso.root, root], check=True)
        helper = type(iso)(root)
        yield helper
    finally:
        try:
            ids = helper("ps", "-aq").stdout.split()
            if ids:
                helper("rm", "-f", *ids)
            leftovers = helper.cgroup_dirs()
            _kill_and_remove(leftovers)  # only if rm failed: never leave a container running
            helper.remove_parents()
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)
    assert not leftovers, f"cgroups left behind: {leftovers}"


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        data = handle.read()
    return int(data[data.rindex(b")") + 2:].split()[1])


def _wait_until_gone(pid: int) -> None:
    """Until the killed process is reaped or a zombie (its new parent reaps it)."""
    from isoinspect.runtime import process

    deadline = time.monotonic() + 30
    while process.start_ticks(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)


def _kill_and_remove(cgroups: list[str]) -> None:
    for path in cgroups:
        try:
            with open(os.path.join(path, "cgroup.procs")) as handle:
                for pid in handle.read().split():
                    os.kill(int(pid), 9)
        except (FileNotFoundError, ProcessLookupError):
            pass
    for path in cgroups:
        for _ in range(100):  # the killed tasks leave the cgroup asynchronously
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def test_a_full_state_disk_keeps_exit_codes_and_recovery_commands_work(full_fs):
    """A container fills the file system that holds the state root.

    Docker: the container's writes fail with "no space left on device", `docker run` returns
    the command's own exit code, `--rm` removes it, and `docker ps -a`, `docker rm -f` work on
    the full disk; a new `docker run` fails with a one-line "no space left on device" error.
    A container whose monitor died while the disk was full is marked exited (255) by `ps`.
    Before the fix: exit 125 "internal error: OSError: [Errno 28]", the record said 255,
    `--rm` was not honoured, and `ps -a`, `gc` and `rm -f` all failed until files were
    deleted by hand.
    """
    iso = full_fs
    sleeper = iso("run", "-d", "--network", "none", "--name", "sleeper", "busybox",
                  "sleep", "600")
    assert sleeper.returncode == 0, sleeper.stderr

    removed = iso("run", "--rm", "--network", "none", "busybox", "sh", "-c", FILL)
    assert removed.returncode == 0, removed.stderr
    assert "No space left on device" in removed.stderr  # dd really hit the full disk
    assert_no_isoinspect_noise(removed)
    assert state_entries(iso.root)["names"] == ["sleeper"]  # --rm honoured

    kept = iso("run", "--network", "none", "--name", "keep", "busybox", "sh", "-c", FILL)
    assert kept.returncode == 0, kept.stderr
    assert_no_isoinspect_noise(kept)
    stat = os.statvfs(iso.root)
    assert stat.f_bavail == 0, "the state file system should be full now"

    listed = iso("ps", "-a")
    assert listed.returncode == 0 and not listed.stderr, listed.stderr
    rows = {line.split()[-1]: line for line in listed.stdout.splitlines()[1:]}
    assert "Exited (0)" in rows["keep"] and "Up " in rows["sleeper"], listed.stdout
    state = json.loads(iso("inspect", "keep").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)

    # The sleeper's monitor dies, then the sleeper: `ps` must record what it can (255, like
    # a lost exit status) in a record it updates on the full disk.
    pid = json.loads(iso("inspect", "sleeper").stdout)[0]["State"]["Pid"]
    os.kill(_parent_of(pid), 9)
    os.kill(pid, 9)
    _wait_until_gone(pid)
    listed = iso("ps", "-a")
    assert listed.returncode == 0 and not listed.stderr, listed.stderr
    rows = {line.split()[-1]: line for line in listed.stdout.splitlines()[1:]}
    assert "Exited (255)" in rows["sleeper"], listed.stdout

    refused = iso("run", "--rm", "--network", "none", "busybox", "true")
    assert_clean_failure(refused, "no space left on device")
    assert state_entries(iso.root)["names"] == ["keep", "sleeper"]  # nothing half-made

    collected = iso("gc")
    assert collected.returncode == 0 and not collected.stderr, collected.stderr
    forced = iso("rm", "-f", "sleeper")  # while the disk is still full
    assert forced.returncode == 0 and not forced.stderr, forced.stderr
    forced = iso("rm", "-f", "keep")
    assert forced.returncode == 0 and not forced.stderr, forced.stderr
    assert iso("ps", "-aq").stdout == ""
    assert iso("gc").returncode == 0
    assert state_entries(iso.root) == {"containers": [], "names": []}
    assert not iso.cgroup_dirs()


@pytest.mark.parametrize("args, needles", [
    (["--name", "a" * 300], ["invalid container name", "at most 255"]),
    (["--pids-limit", "99999999999999999999"], ["--pids-limit", "out of range"]),
    (["--pids-limit", "5000000"], ["--pids-limit", "at most 4194304"]),
    (["--memory", "1e30"], ["--memory", "'1e30'"]),
    (["--memory", "99999999999999999999"], ["--memory", "out of range"]),
    (["--memory-swap", "1e30", "--memory", "64m"], ["--memory-swap"]),
    (["--cpuset-cpus", "0-99999999999"], ["--cpuset-cpus", "beyond"]),
    (["--user", "99999999999999999999"], ["--user", "above the largest id"]),
])
def test_out_of_range_flags_are_one_line_errors(iso, args, needles):
    """Docker: `--name` must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ ("Invalid container name");
    `--pids-limit 99999999999999999999`: 'invalid argument ... strconv.ParseInt: value out of
    range'; `--memory 1e30`: 'invalid size: 1e30' (go-units takes digits, an optional
    fraction and a unit, no exponents). A limit above what the kernel takes (pids.max above
    PID_MAX_LIMIT) fails at the OCI runtime with EINVAL. Before the fix: "internal error"
    (ENAMETOOLONG, ERANGE from pids.max), for 1e30 silently accepted, for a cpuset of
    0-99999999999 a hang (the list was expanded CPU by CPU), for a uid beyond 32 bits a
    failure only inside the started container.
    """
    result = iso("run", "--rm", "--network", "none", *args, "busybox", "true")
    assert_clean_failure(result, *needles)
    assert state_entries(iso.root) == {"containers": [], "names": []}
    assert not iso.cgroup_dirs()


def test_memory_zero_means_unlimited(iso):
    """Docker: `--memory 0` is no limit (the default). Before: "internal error: ValueError:
    resources: memory must be a positive number of bytes or -1, got 0"."""
    result = iso("run", "-d", "--network", "none", "--memory", "0", "busybox", "sleep", "60")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    path = json.loads(iso("inspect", cid).stdout)[0]["CgroupPath"]
    with open(os.path.join("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes")) as handle:
        limit = int(handle.read())
    assert limit >= 1 << 62  # the kernel's "no limit" (PAGE_COUNTER_MAX pages)
    iso("rm", "-f", cid, check=True)
    ran = iso("run", "--rm", "--network", "none", "--memory", "0", "busybox", "true")
    assert ran.returncode == 0 and not ran.stderr, ran.stderr


_FAILING_CLI = """
import sys
from isoinspect.cli import entry
from isoinspect.cli import run_cmd
from isoinspect.runtime import runtime


def broken(*args, **kwargs):
    raise RuntimeError("simulated bug")


run_cmd.execute_run = broken      # the click-free `run` path
runtime.Runtime.list = broken     # a click command (`ps`)
sys.exit(entry.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["run", "busybox", "true"], ["ps", "-a"]])
@pytest.mark.parametrize("value, traceback", [("0", False), ("", False), ("false", False),
                                              ("off", False), ("1", True), ("yes", True)])
def test_isoinspect_debug_zero_means_off(iso, command, value, traceback):
    """An unexpected exception in the real entry point (both the fast `run` path and click):
    ISOINSPECT_DEBUG=0/empty/false/off gives one "internal error" line, 1/yes the traceback.
    Docker has no such switch (`dockerd --debug`/`-D` is a flag). Before the fix any
    non-empty value, "0" included, printed the traceback (exit 1)."""
    env = dict(iso.env, ISOINSPECT_DEBUG=value)
    result = subprocess.run([sys.executable, "-c", _FAILING_CLI, *command], env=env,
                            capture_output=True, text=True, timeout=60)
    if traceback:
        assert "Traceback" in result.stderr and "simulated bug" in result.stderr
    else:
        assert result.returncode == 125, result.stderr
        assert result.stderr.strip().splitlines() == [
            "isoinspect: internal error: RuntimeError: simulated bug "
            "(set ISOINSPECT_DEBUG=1 for details)"]


def test_overlay_failure_on_a_bridge_start_is_reported_as_such(iso):
    """The image's layer directory is gone from the store, so the container's overlay mount
    fails while the parent is connecting it to the bridge. Docker reports the mount failure
    ("error creating overlay mount to ...: no such file or directory"). Before the fix the
    user saw "internal error: FileNotFoundError: ... '/run/netns/isoinspect-<id>'": the
    network hook, finding the child gone, masked the child's own error."""
    layers = os.path.join(iso.root, "lib", "layers")
    for layer in os.listdir(layers):
        diff = os.path.join(layers, layer, "diff")
        if os.path.isdir(diff):
            os.rename(diff, diff + ".gone")
    for args in (["--name", "broken"], ["-d", "--name", "broken-d"]):
        result = iso("run", *args, "busybox", "true")
        assert_clean_failure(result, "overlay mount", "image layer is missing")
        assert "/run/netns" not in result.stderr
        name = args[-1]
        state = json.loads(iso("inspect", name).stdout)[0]
        assert state["State"]["Status"] == "exited"
        cid = state["Id"]
        assert not os.path.lexists(netns.path_for(cid))
        deadline = time.monotonic() + 10  # a veth goes with its netns, asynchronously
        while os.path.exists(f"/sys/class/net/iso{cid[:12]}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/sys/class/net/iso{cid[:12]}")
        iso("rm", "-f", name, check=True)
    assert state_entries(iso.root) == {"containers": [], "names": []}


def test_verify_workdir_is_made_or_refused_in_one_line(iso, tmp_path):
    """`verify --workdir` of a directory that does not exist yet: made, as `mkdir -p` (it was
    one "ERROR FileNotFoundError" result per check); one that cannot be made: one line, no
    check run."""
    workdir = tmp_path / "not" / "yet"
    made = iso("verify", "--runtime", "isoinspect", "--checks", "pids-limit", "--quick",
               "--no-trace", "--workdir", str(workdir), "--results-dir", str(tmp_path / "r"))
    assert made.returncode == 0, made.stderr
    assert "PASS" in made.stdout and "FileNotFoundError" not in made.stdout
    refused = iso("verify", "--runtime", "isoinspect", "--checks", "pids-limit", "--quick",
                  "--no-trace", "--workdir", "/proc/isoinspect-nope/x")
    assert_clean_failure(refused, "--workdir /proc/isoinspect-nope/x", "No such file")
