"""The runtime for real: namespaces, rootfs, security, limits and lifecycle, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest


DOCKER_DEFAULT_CAPS = 0x00000000A80425FB


def test_run_prints_and_exits_zero(iso):
    result = iso("run", "--rm", "busybox", "echo", "hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")


@pytest.mark.parametrize("command, code", [
    (["sh", "-c", "exit 3"], 3),
    (["sh", "-c", "sleep 5 & kill -9 $!; wait $!"], 137),
    (["false"], 1),
])
def test_exit_codes_propagate(iso, command, code):
    assert iso("run", "--rm", "busybox", *command).returncode == code


def test_death_by_signal_gives_128_plus_n(iso):
    proc = iso.popen("run", "--rm", "--name", "sig1", "busybox", "sleep", "30")
    deadline = time.monotonic() + 10
    while "sig1" not in iso("ps").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert iso("kill", "sig1").returncode == 0
    assert proc.wait(timeout=10) == 137


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_to_a_foreground_run_are_forwarded(iso, sig):
    proc = iso.popen("run", "--rm", "--name", "fwd", "busybox", "sh", "-c",
                     "trap 'echo got; exit 9' TERM INT; echo ready; "
                     "while true; do sleep 0.1; done")
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=10)
    assert (proc.returncode, out) == (9, "got\n")


def test_missing_command_gives_127_and_a_message(iso):
    result = iso("run", "--rm", "busybox", "no-such-program")
    assert result.returncode == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr
    assert "Traceback" not in result.stderr
    assert iso("ps", "-aq").stdout == ""


def test_container_is_pid_1_and_sees_only_itself(iso):
    result = iso("run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid,comm | tail -n +2")
    lines = result.stdout.split("\n")
    assert lines[0] == "1"
    pids = sorted(int(line.split()[0]) for line in lines[1:] if line.strip())
    assert pids[0] == 1 and len(pids) <= 3, result.stdout


def test_namespaces_differ_from_the_host(iso):
    kinds = ["mnt", "pid", "uts", "ipc", "net", "cgroup"]
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)
    inside = iso("run", "--rm", "busybox", "sh", "-c", script).stdout.split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(inside) == len(kinds)
    for kind, mine, theirs in zip(kinds, inside, host):
        assert mine != theirs, f"{kind} namespace is shared with the host"


def test_network_host_shares_the_host_netns(iso):
    inside = iso("run", "--rm", "--network", "host", "busybox", "readlink",
                 "/proc/self/ns/net").stdout.strip()
    assert inside == os.readlink("/proc/self/ns/net")


def test_network_none_has_only_loopback_up(iso):
    out = iso("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "UP" in out


def test_hostname_and_etc_files(iso):
    out = iso("run", "--rm", "--hostname", "box1", "busybox", "sh", "-c",
              "hostname; cat /etc/hostname; grep box1 /etc/hosts").stdout.split("\n")
    assert out[0] == "box1" and out[1] == "box1" and "box1" in out[2]


def test_root_is_pivoted_overlay_and_host_is_invisible(iso):
    out = iso("run", "--rm", "busybox", "sh", "-c", "grep ' / ' /proc/self/mountinfo").stdout
    assert " - overlay overlay " in out
    # The host's tree is gone: the test's state root does not exist inside.
    result = iso("run", "--rm", "busybox", "ls", iso.root)
    assert result.returncode != 0 and "No such file" in result.stderr


def test_writes_never_reach_the_image(iso):
    first = iso("run", "--rm", "busybox", "sh", "-c",
                "echo data > /bin/newfile && rm /bin/ls && cat /bin/newfile")
    assert first.stdout == "data\n", first.stderr
    second = iso("run", "--rm", "busybox", "sh", "-c",
                 "test -e /bin/newfile && echo leaked; test -e /bin/ls && echo intact")
    assert second.stdout == "intact\n"
    layers = os.path.join(iso.roots.data_dir, "layers")
    for layer in os.listdir(layers):
        assert not os.path.exists(os.path.join(layers, layer, "diff", "bin", "newfile"))
        assert os.path.lexists(os.path.join(layers, layer, "diff", "bin", "ls"))


def test_dev_proc_sys_are_set_up(iso):
    out = iso("run", "--rm", "busybox", "sh", "-c",
              "ls /dev; mount | cut -d' ' -f3,5 | sort").stdout
    for node in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
                 "ptmx", "fd"):
        assert node in out.split(), node
    for line in ("/proc proc", "/sys sysfs", "/dev/pts devpts", "/dev/shm tmpfs",
                 "/dev/mqueue mqueue"):
        assert line in out, line


def test_masked_and_readonly_paths(iso):
    script = ("wc -c < /proc/timer_list; echo x > /proc/sys/kernel/hostname 2>/dev/null "
              "&& echo writable || echo readonly; ls /sys/firmware | wc -l")
    out = iso("run", "--rm", "busybox", "sh", "-c", script).stdout.split()
    assert out == ["0", "readonly", "0"], out


def test_read_only_root(iso):
    result = iso("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    assert iso("run", "--rm", "busybox", "touch", "/x").returncode == 0


def test_security_defaults_like_docker(iso):
    out = iso("run", "--rm", "busybox", "grep", "-E", "^(CapEff|CapBnd|NoNewPrivs|Seccomp):",
              "/proc/self/status").stdout
    status = dict(line.split(":\t") for line in out.strip().split("\n"))
    assert int(status["CapEff"], 16) == DOCKER_DEFAULT_CAPS
    assert int(status["CapBnd"], 16) == DOCKER_DEFAULT_CAPS
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    # Blocked by seccomp and the missing CAP_SYS_ADMIN: mounting, unsharing, changing time.
    result = iso("run", "--rm", "busybox", "sh", "-c",
                 "mount -t tmpfs none /mnt 2>/dev/null || echo mount-refused; "
                 "unshare -n true 2>/dev/null || echo unshare-refused; "
                 "date -s 2000-01-01 >/dev/null 2>&1; date +%Y")
    lines = result.stdout.split()
    assert lines[:2] == ["mount-refused", "unshare-refused"], result.stdout
    assert lines[2] != "2000"


def test_user_flag(iso):
    assert iso("run", "--rm", "-u", "65534:65534", "busybox", "id").stdout.startswith(
        "uid=65534(nobody) gid=65534(nogroup)")
    assert iso("run", "--rm", "-u", "nobody", "busybox", "id", "-u").stdout.strip() == "65534"
    out = iso("run", "--rm", "-u", "1000", "busybox", "grep", "CapEff",
              "/proc/self/status").stdout
    assert int(out.split()[1], 16) == 0


@pytest.fixture
def userns_iso(iso):
    """The test root moved under a world-searchable directory (pytest's tmp dirs are 0700,
    which the remapped root, an ordinary host uid, cannot traverse)."""
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="isoinspect-userns-", dir="/tmp")
    os.chmod(base, 0o755)
    moved = iso.__class__(os.path.join(base, "root"))
    shutil.copytree(iso.root, moved.root, symlinks=True)
    os.chmod(moved.root, 0o755)
    yield moved
    moved("rm", "-f", *moved("ps", "-aq").stdout.split())
    moved.remove_parents()
    shutil.rmtree(base, ignore_errors=True)


def test_userns_remap_refuses_an_unreachable_state_root_clearly(iso):
    result = iso("run", "--rm", "--userns", "remap", "busybox", "true")
    assert result.returncode == 125
    assert "not searchable by the container's root" in result.stderr
    assert iso("ps", "-aq").stdout == ""


def test_userns_remap_makes_container_root_unprivileged_on_the_host(userns_iso):
    iso = userns_iso
    out = iso("run", "--rm", "--userns", "remap", "busybox", "sh", "-c",
              "id -u; cat /proc/self/uid_map; echo x > /made-inside && echo wrote").stdout.split()
    assert out == ["0", "0", "100000", "65536", "wrote"], out
    cid = iso("run", "-d", "--userns", "remap", "busybox", "sleep", "30",
              check=True).stdout.strip()
    state = json.loads(iso("inspect", cid).stdout)[0]["State"]
    with open(f"/proc/{state['Pid']}/status") as handle:
        uids = next(line for line in handle if line.startswith("Uid:")).split()[1:]
    assert uids == ["100000"] * 4
    assert iso("exec", cid, "touch", "/from-exec").returncode == 0
    upper = json.loads(iso("inspect", cid).stdout)[0]["GraphDriver"]["Data"]["UpperDir"]
    assert os.stat(os.path.join(upper, "from-exec")).st_uid == 100000
    # Without remapping, the container's root is the host's root.
    assert iso("run", "--rm", "busybox", "cat", "/proc/self/uid_map").stdout.split() == \
        ["0", "0", "4294967295"]
    iso("rm", "-f", cid, check=True)


def test_env_and_workdir(iso):
    out = iso("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "busybox", "sh", "-c",
              "echo $FOO; pwd; echo $PATH; echo $HOSTNAME; hostname").stdout.split()
    assert out[:2] == ["bar", "/tmp"] and "/bin" in out[2]
    assert out[3] == out[4] and len(out[3]) == 12


def test_cap_add_and_drop(iso):
    def caps(*flags):
        out = iso("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status").stdout
        return int(out.split()[1], 16)

    net_admin, chown = 1 << 12, 1 << 0
    assert caps("--cap-add", "NET_ADMIN") == DOCKER_DEFAULT_CAPS | net_admin
    assert caps("--cap-drop", "CHOWN") == DOCKER_DEFAULT_CAPS & ~chown
    assert caps("--cap-drop", "ALL") == 0


def test_the_first_process_is_in_its_cgroup_in_every_hierarchy(iso):
    """It joins v1 through ``tasks`` and (hybrid, v2) is cloned into its v2 cgroup: every line
    of its /proc/PID/cgroup but the controller-less name=systemd one names its cgroup."""
    cid = iso("run", "-d", "--network", "none", "busybox", "sleep", "30").stdout.strip()
    try:
        inspected = json.loads(iso("inspect", cid).stdout)[0]
        with open(f"/proc/{inspected['State']['Pid']}/cgroup") as handle:
            lines = [line.split(":", 2) for line in handle.read().splitlines()]
        joined = [path for _, names, path in lines if not names.startswith("name=")]
        assert joined and all(path == "/" + inspected["CgroupPath"] for path in joined), lines
    finally:
        iso("rm", "-f", cid)


def test_limits_reach_the_cgroup_files(iso):
    script = ("cat /proc/self/cgroup | grep -E ':(memory|pids|cpu|cpuset):' | cut -d: -f3 "
              "| sort -u")
    result = iso("run", "-d", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5",
                 "--cpu-shares", "512", "--cpuset-cpus", "0", "busybox", "sleep", "30")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    inspected = json.loads(iso("inspect", cid).stdout)[0]
    path = inspected["CgroupPath"]
    base = "/sys/fs/cgroup"

    def read(controller, name):
        with open(os.path.join(base, controller, path, name)) as handle:
            return handle.read().strip()

    assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert read("pids", "pids.max") == "20"
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("cpuset", "cpuset.cpus") == "0"
    assert str(inspected["State"]["Pid"]) in read("memory", "cgroup.procs").split()
    # inspect's Stats: the cgroup v2 names (figures.py), here read from the v1 files
    stats = inspected["Stats"]
    assert stats["memory"]["max"] == 64 << 20 and stats["pids"]["max"] == 20
    assert stats["pids"]["current"] >= 1 and stats["pids"]["events"]["max"] == 0
    assert stats["cpu"]["quota_us"] == 50000 and stats["cpu"]["shares"] == 512
    assert stats["memory"]["current"] > 0 and stats["cpuset"]["cpus"] == "0"
    # The container sees its own cgroup as the root of its cgroup namespace.
    inside = iso("exec", cid, "sh", "-c", script).stdout.split()
    assert inside == ["/"], inside
    iso("rm", "-f", cid, check=True)


def test_memory_limit_oom_kills(iso):
    result = iso("run", "--rm", "--memory", "16m", "busybox", "sh", "-c",
                 "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    assert result.returncode == 137, (result.returncode, result.stdout, result.stderr)
    assert "survived" not in result.stdout
    assert iso("run", "--rm", "--memory", "64m", "busybox", "sh", "-c",
               "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo survived").stdout == \
        "survived\n"


def test_pids_limit_stops_forks(iso):
    result = iso("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
                 "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3 & echo started; done")
    assert "can't fork" in result.stderr, result.stderr
    # PID 1 (sh) plus four sleeps reach the limit of 5; the fifth fork fails.
    assert result.stdout.count("started") == 4


def test_detached_lifecycle_ps_logs_exec_stop_wait_rm(iso):
    started = iso("run", "-d", "--name", "web1", "busybox", "sh", "-c",
                  "echo started; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    assert len(cid) == 64
    ps = iso("ps").stdout
    assert "web1" in ps and "Up " in ps
    time.sleep(0.3)
    assert iso("logs", "web1").stdout.startswith("started")
    assert iso("exec", "web1", "sh", "-c", "echo $$ > /dev/null; hostname").stdout.strip() == \
        cid[:12]
    assert iso("exec", "web1", "sh", "-c", "exit 4").returncode == 4
    conflict = iso("run", "-d", "--name", "web1", "busybox", "true")
    assert conflict.returncode == 125 and "already in use" in conflict.stderr
    refused = iso("rm", "web1")
    assert refused.returncode != 0 and "running container" in refused.stderr
    assert iso("stop", "-t", "5", "web1").returncode == 0
    assert iso("wait", "web1").stdout.strip() == "7"
    assert "bye" in iso("logs", "web1").stdout
    assert "Exited (7)" in iso("ps", "-a").stdout
    assert "web1" not in iso("ps").stdout
    state = json.loads(iso("inspect", "web1").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 7
    assert iso("rm", "web1").returncode == 0
    assert iso("ps", "-aq").stdout == ""


def test_stop_kills_a_pid1_that_ignores_sigterm(iso):
    cid = iso("run", "-d", "busybox", "sleep", "60", check=True).stdout.strip()
    begin = time.monotonic()
    iso("stop", "-t", "1", cid, check=True)
    assert time.monotonic() - begin < 8
    assert iso("wait", cid).stdout.strip() == "137"


def test_detached_rm_removes_itself(iso):
    cid = iso("run", "-d", "--rm", "busybox", "true", check=True).stdout.strip()
    deadline = time.monotonic() + 10
    while cid[:12] in iso("ps", "-aq").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cid[:12] not in iso("ps", "-aq").stdout


@pytest.mark.parametrize("args, message", [
    (["run", "--memory", "12x", "busybox", "true"], "invalid value '12x' for --memory"),
    (["run", "--cpus", "-1", "busybox", "true"], "--cpus"),
    (["run", "--pids-limit", "many", "busybox", "true"], "--pids-limit"),
    (["run", "--pull", "never", "nosuchimage", "true"], "No such image: nosuchimage:latest"),
    (["run", "--network", "bridge0", "busybox", "true"], "--network"),
    (["run", "--name", "-bad", "busybox", "true"], ""),
    (["run", "--cap-add", "BOGUS", "busybox", "true"], "invalid capability"),
    (["run", "--userns", "maybe", "busybox", "true"], "--userns"),
    (["rm", "nosuchcontainer"], "no such container"),
    (["stop", "nosuchcontainer"], "no such container"),
])
def test_bad_input_is_one_line_and_nonzero(iso, args, message):
    result = iso(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_not_root_is_refused_clearly(iso):
    proc = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                           iso.cli, "run", "busybox", "true"], capture_output=True, text=True,
                          env=iso.env)
    assert proc.returncode != 0
    assert "must run as root" in proc.stderr and "Traceback" not in proc.stderr


def test_killed_cli_leaves_nothing_gc_cannot_clean(iso):
    proc = iso.popen("run", "--name", "victim", "busybox", "sleep", "60")
    deadline = time.monotonic() + 10
    while "victim" not in iso("ps").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert iso.cgroup_dirs(), "the container should have a cgroup while it runs"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    # The container died with its runtime (PDEATHSIG); gc cleans the rest.
    gc = iso("gc")
    assert gc.returncode == 0
    assert "Exited (255)" in iso("ps", "-a").stdout
    assert iso.cgroup_dirs() == []
    rm_proc = iso.popen("run", "--rm", "busybox", "sleep", "60")
    time.sleep(1.0)
    rm_proc.send_signal(signal.SIGKILL)
    rm_proc.wait()
    time.sleep(0.3)
    assert "removed --rm container" in iso("gc").stdout
    assert iso.cgroup_dirs() == []


def test_gc_cleans_a_create_interrupted_by_a_killed_runtime(iso):
    """Simulate the CLI dying inside create(): directory, creator mark, cgroup, no record."""
    from isoinspect.runtime.runtime import Runtime

    runtime = Runtime(iso.root)
    dead = subprocess.Popen(["true"])
    dead.wait()
    cid = "e" * 64
    os.makedirs(runtime.containers.dir(cid, "upper"))
    with open(runtime.containers.dir(cid, "creator"), "w") as handle:
        handle.write(f"{dead.pid} 1")
    from isoinspect.runtime.cgroups import make_manager
    make_manager(f"{iso.roots.cgroup_parent}/{cid}").create()
    out = iso("gc").stdout
    assert f"removed incomplete container directory {cid[:12]}" in out
    assert f"removed orphan cgroup {iso.roots.cgroup_parent}/{cid}" in out
    assert not os.path.exists(runtime.containers.dir(cid))
    assert iso.cgroup_dirs() == []


def test_gc_removes_orphan_cgroups(iso):
    parent = f"/sys/fs/cgroup/pids/{iso.roots.cgroup_parent}"
    orphan = os.path.join(parent, "f" * 64)
    os.makedirs(orphan)
    assert f"removed orphan cgroup {iso.roots.cgroup_parent}/{'f' * 64}" in iso("gc").stdout
    assert not os.path.exists(orphan)


def test_concurrent_runs_do_not_collide(iso):
    procs = [iso.popen("run", "--rm", "busybox", "sh", "-c", f"echo {i}") for i in range(8)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outputs
    assert sorted(int(out) for out, _ in outputs) == list(range(8))
    assert iso("ps", "-aq").stdout == ""


def test_images_lists_the_base(iso):
    out = iso("images").stdout
    assert "busybox" in out and "latest" in out


def test_inspect_scorecard_for_a_container_and_for_a_host_pid(iso):
    cid = iso("run", "-d", "--pids-limit", "10", "busybox", "sleep", "30",
              check=True).stdout.strip()
    card = iso("inspect", "--scorecard", cid, check=True).stdout
    assert "ns net     own" in card and "no_new_privs  yes" in card and "pids 10" in card
    host = iso("inspect", str(os.getpid()), check=True).stdout
    assert "ns net     shared with host" in host
    assert "no_new_privs  no" in host
    iso("rm", "-f", cid, check=True)
