"""The OCI operations on a live container, for real (root): `update` (limits read back from the
container's cgroup and enforced: OOM kill, refused forks), `pause`/`resume` (a counter stops, then
goes on), kill/delete of a paused container, and `features` (every listed namespace type runs).

Each behaviour runs the same bundle under isoinspect-runc and under the host's runc 1.1.5, and
compares. Both place the container at cgroupsPath /isoinspect-oci/<id>, so the same files are
read back for each. The last test drives the same operations on a container of `isoinspect run`
(`isoinspect update`, `pause`, `unpause`, with Docker's messages and `ps`'s "(Paused)").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from isoinspect.runtime.cgroups import make_manager
from isoinspect.runtime.cgroups.layout import UNIFIED
from isoinspect.runtime.linux import namespaces
import test_oci_cli
from test_oci_cli import BUSYBOX, Runc, _cgroup_dirs

busybox_rootfs = test_oci_cli.busybox_rootfs  # the session fixture: one rootfs for all bundles

RUNC = shutil.which("runc")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and busybox-static")


class HostRunc(Runc):
    """The same helper driving the host's runc (same state-root layout, --log, JSON log);
    runc refuses a rootfs reached through a symlink, so root.path is the real directory."""

    def bundle(self, args: list[str], name: str = "bundle", mutate=None) -> str:
        def real_root(config: dict) -> None:
            config["root"]["path"] = self.rootfs
            if mutate:
                mutate(config)
        return super().bundle(args, name, real_root)

    def __call__(self, *args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        return subprocess.run([RUNC, "--root", self.state_root, "--log", self.log,
                               "--log-format", "json", *args], text=True, timeout=timeout,
                              **kwargs)


def _in_cgroup_path(config: dict, cid: str) -> None:
    """Both runtimes at the same cgroup path; a tmpfs /tmp of the container's own (the rootfs
    is shared by every bundle, read-only)."""
    config["linux"]["cgroupsPath"] = f"/isoinspect-oci/{cid}"
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "size=1m"]})


@pytest.fixture
def runtimes(tmp_path, busybox_rootfs):
    """isoinspect-runc and runc 1.1.5, each with its own state root; everything they made is
    deleted and checked gone afterwards."""
    assert RUNC, "runc (1.1.5 on this host) is needed for the comparison"
    helpers = {}
    for name, cls in (("isoinspect-runc", Runc), ("runc", HostRunc)):
        directory = tmp_path / name
        directory.mkdir()
        helpers[name] = cls(directory, busybox_rootfs)
    yield helpers
    for helper in helpers.values():
        for cid in helper.ids:
            helper("delete", "--force", cid)
    leftovers = [d for h in helpers.values() for cid in h.ids for d in _cgroup_dirs(cid)]
    assert not leftovers, f"cgroups left behind: {leftovers}"


def _start(runc: Runc, cid: str, args: list[str], name: str = "bundle") -> int:
    bundle = runc.bundle(args, name, lambda c: _in_cgroup_path(c, cid))
    result = runc.create(cid, bundle)
    assert result.returncode == 0, result.stderr
    result = runc("start", cid)
    assert result.returncode == 0, result.stderr
    return runc.state(cid)["pid"]


def _dir(cid: str, controller: str) -> str:
    """The container's directory for ``controller`` (v1) or its unified one (v2)."""
    dirs = make_manager(f"isoinspect-oci/{cid}").hierarchy_dirs()
    return dirs.get(controller) or dirs[UNIFIED]


def _read(cid: str, controller: str, v1_name: str, v2_name: str) -> str:
    """A limit file of the container's cgroup: ``v1_name`` in ``controller``'s hierarchy, or
    ``v2_name`` in the unified one where the controller is not mounted on its own."""
    dirs = make_manager(f"isoinspect-oci/{cid}").hierarchy_dirs()
    path = os.path.join(dirs[controller], v1_name) if controller in dirs else \
        os.path.join(dirs[UNIFIED], v2_name)
    with open(path) as handle:
        return handle.read().strip()


def _oom_kills(cid: str) -> int | None:
    memory = make_manager(f"isoinspect-oci/{cid}").stats().memory
    return memory.events.oom_kill if memory and memory.events else None


RT_PERIOD = "/sys/fs/cgroup/cpu/cpu.rt_period_us"
ALLOCATE = "x=$(head -c 80000000 /dev/zero | tr '\\0' a); echo survived"


def _update_behaviour(runc: Runc, cid: str) -> dict:
    """What update does to a running container: limits read back, then enforced."""
    _start(runc, cid, ["sleep", "1000"], f"b-{cid}")
    seen = {}
    seen["alloc_before"] = runc("exec", cid, "sh", "-c", ALLOCATE, timeout=60).stdout.strip()
    # The period alone, with no quota yet.
    assert runc("update", "--cpu-period", "40000", cid).returncode == 0
    seen["period_alone"] = _read(cid, "cpu", "cpu.cfs_period_us", "cpu.max")
    result = runc("update", "--memory", "24m", "--memory-swap", "24m", "--pids-limit", "6",
                  "--cpu-quota", "20000", "--cpu-period", "50000", cid)
    seen["update"] = (result.returncode, result.stderr)
    seen["memory"] = _read(cid, "memory", "memory.limit_in_bytes", "memory.max")
    seen["pids"] = _read(cid, "pids", "pids.max", "pids.max")
    # The quota alone: the period set before stays (runc merges with its saved config).
    assert runc("update", "--cpu-quota", "30000", cid).returncode == 0
    seen["cpu"] = (_read(cid, "cpu", "cpu.cfs_quota_us", "cpu.max"),
                   _read(cid, "cpu", "cpu.cfs_period_us", "cpu.max"))
    oom_before = _oom_kills(cid) or 0
    result = runc("exec", cid, "sh", "-c", ALLOCATE, timeout=60)
    seen["alloc_after"] = (result.returncode, result.stdout.strip())
    seen["oom_killed"] = (_oom_kills(cid) or 0) - oom_before >= 1  # 1 or more (head, tr, sh)
    result = runc("exec", cid, "sh", "-c",
                  "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & echo started; done")
    # (started, refused by sh, exit code): the exec itself may be refused when the runtime's
    # own helper cannot fork inside the limit (runc's `runc init` counts there too).
    seen["forks"] = (result.stdout.count("started"), "can't fork" in result.stderr,
                     result.returncode)
    # What containerd sends for `docker update`: linux.resources JSON on stdin.
    result = runc("update", "-r", "-", cid,
                  input=json.dumps({"memory": {"limit": 48 << 20, "swap": 48 << 20},
                                    "pids": {"limit": 9}}))
    seen["json_update"] = result.returncode
    seen["memory_json"] = _read(cid, "memory", "memory.limit_in_bytes", "memory.max")
    seen["pids_json"] = _read(cid, "pids", "pids.max", "pids.max")
    seen["bad_json"] = runc("update", "-r", "-", cid, input="{not json").returncode
    # runc's other flags: kernel memory ignored (a warning), Intel RDT refused, the real-time
    # period written; a real-time runtime above the parent's (0 here) is refused by the kernel.
    seen["kernel_memory"] = runc("update", "--kernel-memory", "100m", cid).returncode
    seen["l3"] = runc("update", "--l3-cache-schema", "L3:0=f", cid).returncode
    seen["rt_period"] = runc("update", "--cpu-rt-period", "500000", cid).returncode
    if os.path.exists(RT_PERIOD):
        seen["rt_period_file"] = _read(cid, "cpu", "cpu.rt_period_us", "")
    seen["rt_runtime_over_parent"] = runc("update", "--cpu-rt-runtime", "1000", cid).returncode
    return seen


def test_update_limits_read_back_and_enforced(runtimes):
    """update --memory/--memory-swap/--pids-limit/--cpu-quota/--cpu-period and -r -, on a
    running bundle container; same observations under runc 1.1.5."""
    results = {name: _update_behaviour(runc, f"isoinspect-upd-{i}")
               for i, (name, runc) in enumerate(runtimes.items())}
    ours = results["isoinspect-runc"]
    assert ours["alloc_before"] == "survived"  # no limit yet: 80 MB fits
    assert ours["update"] == (0, "")
    assert ours["period_alone"] in ("40000", "max 40000")
    assert ours["memory"] == str(24 << 20) and ours["pids"] == "6"
    assert ours["cpu"] in (("30000", "50000"), ("30000 50000", "30000 50000"))
    # Over the new limit (no swap to escape to): the allocating shell is OOM-killed.
    assert ours["alloc_after"] == (137, ""), ours["alloc_after"]
    assert ours["oom_killed"]
    # pids.max 6: init (sleep), the exec'd sh and its sleeps (and whatever else the runtime's
    # exec keeps in the cgroup) reach it: forks are refused before the ten sleeps are started.
    assert ours["forks"][1] and ours["forks"][0] <= 4, ours["forks"]
    assert results["runc"]["forks"][0] <= 4 and results["runc"]["forks"][2] != 0, results
    assert ours["json_update"] == 0
    assert ours["memory_json"] == str(48 << 20) and ours["pids_json"] == "9"
    assert ours["bad_json"] == 1
    assert (ours["kernel_memory"], ours["l3"], ours["rt_runtime_over_parent"]) == (0, 1, 1)
    if os.path.exists(RT_PERIOD):  # cgroup v1 with RT group scheduling
        assert (ours["rt_period"], ours["rt_period_file"]) == (0, "500000")
    same = {k: v for k, v in ours.items() if k != "forks"}
    assert {k: v for k, v in results["runc"].items() if k != "forks"} == same, results


def _counter(pid: int) -> int:
    """The container's counter, through its root as seen from the host."""
    try:
        with open(f"/proc/{pid}/root/tmp/count") as handle:
            return int(handle.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _counter_above(pid: int, value: int, timeout: float = 20) -> int:
    """Wait (up to ``timeout``, generous under load) for the counter to pass ``value``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _counter(pid) <= value:
        time.sleep(0.05)
    return _counter(pid)


COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; "
           "done"]


def _frozen(cid: str) -> bool:
    return make_manager(f"isoinspect-oci/{cid}").frozen()


def _pause_behaviour(runc: Runc, prefix: str) -> dict:
    seen = {}
    cid = f"{prefix}-p"
    pid = _start(runc, cid, COUNTER, f"b-{cid}")
    first = _counter_above(pid, 0)
    seen["counting"] = first > 0
    seen["pause"] = runc("pause", cid).returncode
    seen["state"] = runc.state(cid)["status"]
    seen["frozen"] = _frozen(cid)
    held = _counter(pid)
    time.sleep(1.0)  # 20 ticks of the counter if it were running
    seen["held"] = _counter(pid) == held
    seen["pause_again"] = runc("pause", cid).returncode
    result = runc("delete", cid)
    seen["delete_paused"] = (result.returncode, "paused" in result.stderr + open(runc.log).read())
    seen["frozen_after_delete"] = _frozen(cid)
    seen["resume"] = runc("resume", cid).returncode
    seen["state_resumed"] = runc.state(cid)["status"]
    seen["counts_again"] = _counter_above(pid, held) > held
    seen["resume_again"] = runc("resume", cid).returncode
    # A paused container and signals: TERM stays pending, KILL thaws and kills.
    runc("pause", cid)
    seen["kill_term"] = runc("kill", cid, "TERM").returncode
    seen["state_after_term"] = runc.state(cid)["status"]
    seen["kill_kill"] = runc("kill", cid, "KILL").returncode
    seen["state_after_kill"] = runc.wait_status(cid, "stopped")["status"]
    seen["delete_stopped"] = runc("delete", cid).returncode
    # delete --force of a paused container.
    cid = f"{prefix}-f"
    _start(runc, cid, ["sleep", "1000"], f"b-{cid}")
    runc("pause", cid)
    seen["delete_force_paused"] = runc("delete", "--force", cid).returncode
    seen["gone"] = not _cgroup_dirs(cid)
    # kill --all TERM of a paused container.
    cid = f"{prefix}-a"
    _start(runc, cid, ["sleep", "1000"], f"b-{cid}")
    runc("pause", cid)
    seen["kill_all_term"] = runc("kill", "--all", cid, "TERM").returncode
    seen["state_after_kill_all_term"] = runc.state(cid)["status"]
    return seen


def test_pause_resume_and_paused_kill_delete(runtimes):
    """pause freezes (the counter stops, state says paused), resume continues; delete without
    --force refuses a paused container, kill KILL and delete --force work on it: as runc."""
    results = {name: _pause_behaviour(runc, f"isoinspect-ps{i}")
               for i, (name, runc) in enumerate(runtimes.items())}
    ours = results["isoinspect-runc"]
    expected = {"counting": True, "pause": 0, "state": "paused", "frozen": True, "held": True,
                "pause_again": 1, "delete_paused": (1, True), "frozen_after_delete": True,
                "resume": 0, "state_resumed": "running", "counts_again": True,
                "resume_again": 1, "kill_term": 0, "state_after_term": "paused", "kill_kill": 0,
                "state_after_kill": "stopped", "delete_stopped": 0, "delete_force_paused": 0,
                "gone": True, "kill_all_term": 0, "state_after_kill_all_term": "paused"}
    assert ours == expected, ours
    # runc 1.1.5's kill --all freezes, signals and then thaws, whatever the state was: a
    # paused container comes out running. isoinspect-runc keeps it paused (TERM stays pending).
    runc_expected = dict(expected, state_after_kill_all_term="running")
    assert results["runc"] == runc_expected, results["runc"]


def _write_freezer(cid: str, frozen: bool) -> None:
    """Freeze or thaw the container's cgroup by writing its file directly (no runtime), then
    wait (generously) for the kernel to finish."""
    dirs = make_manager(f"isoinspect-oci/{cid}").hierarchy_dirs()
    if "freezer" in dirs:
        path, value = os.path.join(dirs["freezer"], "freezer.state"), \
            ("FROZEN" if frozen else "THAWED")
    else:
        path, value = os.path.join(dirs[UNIFIED], "cgroup.freeze"), str(int(frozen))
    with open(path, "w") as handle:
        handle.write(value)
    deadline = time.monotonic() + 20
    while _frozen(cid) != frozen:
        assert time.monotonic() < deadline, f"{path} still not {value}"
        time.sleep(0.05)


def _freezer_behind_the_back(runc: Runc, cid: str) -> dict:
    seen = {}
    _start(runc, cid, ["sleep", "1000"], f"b-{cid}")
    _write_freezer(cid, True)
    seen["frozen_directly"] = runc.state(cid)["status"]
    seen["resume"] = runc("resume", cid).returncode
    seen["after_resume"] = (runc.state(cid)["status"], _frozen(cid))
    seen["pause"] = runc("pause", cid).returncode
    _write_freezer(cid, False)
    seen["thawed_directly"] = runc.state(cid)["status"]
    seen["resume_thawed"] = runc("resume", cid).returncode
    seen["list"] = [line.split()[2] for line in runc("list").stdout.splitlines()[1:]
                    if line.split()[0] == cid]
    _write_freezer(cid, True)
    seen["delete_frozen"] = runc("delete", cid).returncode
    seen["delete_force_frozen"] = runc("delete", "--force", cid).returncode
    seen["gone"] = not _cgroup_dirs(cid)
    return seen


def test_state_reads_the_freezer(runtimes):
    """A container frozen by writing its cgroup's freezer file (not through `pause`) is
    "paused" for state, list, resume and delete; one thawed that way is running: as runc."""
    results = {name: _freezer_behind_the_back(runc, f"isoinspect-fz{i}")
               for i, (name, runc) in enumerate(runtimes.items())}
    expected = {"frozen_directly": "paused", "resume": 0, "after_resume": ("running", False),
                "pause": 0, "thawed_directly": "running", "resume_thawed": 1,
                "list": ["running"], "delete_frozen": 1, "delete_force_frozen": 0,
                "gone": True}
    assert results["isoinspect-runc"] == expected, results
    assert results["runc"] == expected, results  # runc 1.1.5 reads the freezer too


def _namespace_config(kind: str, searchable_root: str):
    def mutate(config: dict) -> None:
        config["linux"]["namespaces"] = [{"type": kind}] + \
            ([{"type": "mount"}] if kind != "mount" else [])
        config["linux"]["resources"] = {}
        if kind != "uts":  # runc refuses a hostname without a UTS namespace of its own
            config.pop("hostname", None)
        if kind == "user":
            mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            config["linux"].update(uidMappings=mapping, gidMappings=mapping)
            config["root"]["path"] = searchable_root  # the mapped root must reach it
            # proc, mqueue and sysfs are mounted only by the owner of their namespaces (as
            # with runc): a user namespace comes with the others
            config["linux"]["namespaces"] = [{"type": t} for t in (
                "user", "mount", "pid", "ipc", "uts", "network", "cgroup")]
        if kind not in ("network", "user"):  # sysfs needs a network namespace of its own
            config["mounts"] = [m for m in config["mounts"] if m["type"] != "sysfs"]
    return mutate


@pytest.fixture
def searchable_rootfs(busybox_rootfs):
    """A copy of the busybox root below a world-searchable directory: pytest's own temporary
    directories are 0700, which a remapped root cannot search."""
    top = tempfile.mkdtemp(prefix="isoinspect-ops-")
    os.chmod(top, 0o755)
    root = os.path.join(top, "rootfs")
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    yield root
    shutil.rmtree(top)


def test_features_lists_only_what_runs(runtimes, searchable_rootfs):
    """Every namespace type `features` lists runs (the container's /proc/self/ns link differs
    from the host's); the seccomp actions listed compile; the lists are within runc's."""
    ours, host = runtimes["isoinspect-runc"], runtimes["runc"]
    result = ours("features")
    assert result.returncode == 0, result.stderr
    features = json.loads(result.stdout)
    runc_features = json.loads(host("features").stdout)
    listed = features["linux"]["namespaces"]
    assert {"mount", "pid", "network", "ipc", "uts", "cgroup"} <= set(listed)
    for kind in listed:
        proc = namespaces.PROC_BY_OCI[kind]
        bundle = ours.bundle(["readlink", f"/proc/self/ns/{proc}"], f"ns-{kind}",
                             _namespace_config(kind, searchable_rootfs))
        ours.ids.append(f"isoinspect-ns-{kind}")
        result = ours("run", "--bundle", bundle, f"isoinspect-ns-{kind}")
        assert result.returncode == 0, (kind, result.stderr)
        assert result.stdout.strip() and \
            result.stdout.strip() != os.readlink(f"/proc/self/ns/{proc}"), (kind, result.stdout)
    from isoinspect.runtime.linux import seccomp_profile
    for action in features["linux"]["seccomp"]["actions"]:
        program = seccomp_profile.compile_profile(
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["getpid"], "action": action}]} if action != "SCMP_ACT_ALLOW"
            else {"defaultAction": action})
        assert program, action
    assert "SCMP_ACT_NOTIFY" not in features["linux"]["seccomp"]["actions"]  # not supported
    for key in ("hooks", "mountOptions"):
        assert set(features[key]) <= set(runc_features[key]), key
    for key in ("namespaces", "capabilities"):
        assert set(features["linux"][key]) <= set(runc_features["linux"][key]), key
    assert features["linux"]["apparmor"] == {"enabled": False}


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A file of process ``pid``'s cgroup for ``controller`` (v1), or its unified one (v2)."""
    with open(f"/proc/{pid}/cgroup") as handle:
        entries = [line.rstrip("\n").split(":", 2) for line in handle]
    for _, controllers, path in entries:
        if controller in controllers.split(","):
            return open(f"/sys/fs/cgroup/{controller}{path}/{name}").read().strip()
    unified = next(path for _, controllers, path in entries if controllers == "")
    return open(f"/sys/fs/cgroup{unified}/{name}").read().strip()


def test_isoinspect_update_pause_unpause(iso):
    """Docker's update/pause/unpause on a container of `isoinspect run`: limits read back from
    its cgroup and enforced, the freezer holds it, ps says (Paused); Docker's refusals."""
    name = "isoinspect-ops-c"
    result = iso("run", "-d", "--name", name, "busybox", *COUNTER)
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    pid = int(iso("inspect", "-f", "{{.State.Pid}}", name).stdout)
    result = iso("update", "-m", "24m", "--memory-swap", "24m", "--pids-limit", "12",
                 "--cpus", "0.5", name)
    assert (result.returncode, result.stdout) == (0, name + "\n"), result.stderr
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes"
                       if os.path.isdir("/sys/fs/cgroup/memory") else "memory.max") == \
        str(24 << 20)
    assert cgroup_file(pid, "pids", "pids.max") == "12"
    assert iso("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} "
               "{{.HostConfig.NanoCpus}}", name).stdout.split() == \
        [str(24 << 20), "12", "500000000"]
    result = iso("exec", name, "sh", "-c", ALLOCATE)
    assert (result.returncode, result.stdout) == (137, ""), (result.returncode, result.stdout)
    # Docker's refusals: its messages and exit codes.
    result = iso("update", "-m", "1m", name)
    assert result.returncode == 1 and "minimum memory limit allowed is 6MB" in result.stderr
    assert iso("update", name).returncode == 1
    assert iso("update", "-m", "abc", name).returncode == 125
    assert iso("update", "-m", "64m", "isoinspect-no-such").returncode == 1

    first = _counter_above(pid, 0)
    assert first > 0, iso("logs", name).stdout
    assert iso("pause", name).stdout == name + "\n"
    assert "(Paused)" in iso("ps", "--format", "{{.Status}}").stdout
    assert iso("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name).stdout.split() == \
        ["paused", "true"]
    held = _counter(pid)
    time.sleep(1.0)
    assert _counter(pid) == held, (held, _counter(pid))
    result = iso("pause", name)
    assert result.returncode == 1 and f"Container {cid} is already paused" in result.stderr
    result = iso("exec", name, "true")
    assert result.returncode == 1 and "is paused" in result.stderr
    result = iso("rm", name)
    assert result.returncode == 1
    assert iso("unpause", name).returncode == 0
    assert _counter_above(pid, held) > held, (held, iso("ps", "-a").stdout)
    result = iso("unpause", name)
    assert result.returncode == 1 and f"Container {cid} is not paused" in result.stderr
    # kill of a paused container: delivered (Docker 20.10 unpauses it after signalling).
    assert iso("pause", name).returncode == 0
    assert iso("kill", name).returncode == 0
    result = iso("wait", name)
    assert result.stdout.strip() == "137", (result.stdout, result.stderr)
    # The monitor recorded the exit without undoing the update.
    assert iso("inspect", "-f", "{{.HostConfig.Memory}}", name).stdout.strip() == str(24 << 20)
    assert iso("rm", name).returncode == 0
