"""The OCI command line for real (root): create/start/state/kill/delete, exec, hooks, console
socket, and bad bundles leaving nothing behind. Bundles hold a busybox-static rootfs."""

from __future__ import annotations

import array
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

RUNC_CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect-runc")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and busybox-static")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    root = tmp_path_factory.mktemp("oci-rootfs") / "rootfs"
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (root / sub).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return str(root)


def runc_like_config(args: list[str]) -> dict:
    """What `runc spec` writes (trimmed), with our command and no terminal."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "TERM=xterm"],
                    "cwd": "/", "capabilities": {k: caps for k in ("bounding", "effective",
                                                                    "permitted", "ambient")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys"],
        },
    }


class Runc:
    def __init__(self, tmp_path, rootfs: str) -> None:
        self.state_root = str(tmp_path / "state")
        self.tmp = tmp_path
        self.rootfs = rootfs
        self.log = str(tmp_path / "log.json")
        self.ids: list[str] = []

    def bundle(self, args: list[str], name: str = "bundle", mutate=None) -> str:
        path = self.tmp / name
        path.mkdir(exist_ok=True)
        if not (path / "rootfs").exists():
            os.symlink(self.rootfs, path / "rootfs")
        config = runc_like_config(args)
        if mutate:
            mutate(config)
        (path / "config.json").write_text(json.dumps(config))
        return str(path)

    def __call__(self, *args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        return subprocess.run([RUNC_CLI, "--root", self.state_root, "--log", self.log,
                               "--log-format", "json", *args], text=True, timeout=timeout,
                              **kwargs)

    def create(self, cid: str, bundle: str, *extra: str, out=None) -> subprocess.CompletedProcess:
        """The container's init inherits create's stdio: files, not pipes, or reading them
        would wait for the container to exit."""
        self.ids.append(cid)
        err_path = self.tmp / f"create-{cid}.err"
        with open(err_path, "w") as err:
            result = self("create", "--bundle", bundle, *extra, cid, capture_output=False,
                          stdout=out if out is not None else subprocess.DEVNULL, stderr=err)
        result.stderr = err_path.read_text()
        return result

    def state(self, cid: str) -> dict:
        result = self("state", cid)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(cid)
            if state["status"] == status or time.monotonic() > deadline:
                return state
            time.sleep(0.02)


def _cgroup_dirs(cid: str) -> list[str]:
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = f"/sys/fs/cgroup/{hierarchy}/isoinspect-oci/{cid}"
        if os.path.isdir(path):
            found.append(path)
    return found


@pytest.fixture
def runc(tmp_path, busybox_rootfs):
    helper = Runc(tmp_path, busybox_rootfs)
    yield helper
    for cid in helper.ids:
        helper("delete", "--force", cid)
    leftovers = [d for cid in helper.ids for d in _cgroup_dirs(cid)]
    assert not leftovers, f"cgroups left behind: {leftovers}"
    with open("/proc/self/mountinfo") as handle:
        mounts = [line for line in handle if str(tmp_path) in line]
    assert not mounts, f"mounts left behind: {mounts}"


def test_lifecycle_create_start_state_delete(runc, tmp_path):
    bundle = runc.bundle(["sh", "-c", "echo hello $(hostname); grep NoNewPrivs "
                          "/proc/self/status; cat /proc/1/cmdline | tr '\\0' ' '"])
    out = open(tmp_path / "out.txt", "w")
    pid_file = str(tmp_path / "init.pid")
    result = runc.create("life", bundle, "--pid-file", pid_file, out=out)
    out.close()
    assert result.returncode == 0, result.stderr
    state = runc.state("life")
    assert state["status"] == "created" and state["bundle"] == bundle
    assert int(open(pid_file).read()) == state["pid"] > 0
    assert os.path.exists(f"/proc/{state['pid']}")
    assert (tmp_path / "out.txt").read_text() == ""  # nothing ran yet
    assert runc("start", "life").returncode == 0
    assert runc.wait_status("life", "stopped")["status"] == "stopped"
    text = (tmp_path / "out.txt").read_text()
    assert "hello runc" in text and "NoNewPrivs:\t1" in text and "sh -c" in text
    result = runc("start", "life")
    assert result.returncode == 1 and "stopped" in result.stderr
    assert runc("delete", "life").returncode == 0
    assert not os.path.exists(os.path.join(runc.state_root, "life"))
    assert runc("state", "life").returncode == 1


def test_kill_and_delete_rules(runc):
    bundle = runc.bundle(["sleep", "100"])
    assert runc.create("k1", bundle).returncode == 0
    result = runc("start", "k1")
    assert result.returncode == 0, result.stderr
    assert runc.state("k1")["status"] == "running"
    result = runc("delete", "k1")
    assert result.returncode == 1 and "not stopped" in result.stderr
    assert runc("kill", "k1", "KILL").returncode == 0
    assert runc.wait_status("k1", "stopped")["status"] == "stopped"
    result = runc("kill", "k1", "TERM")
    assert result.returncode == 1 and "container not running" in result.stderr
    assert runc("delete", "k1").returncode == 0
    # a created container can be deleted (its init is killed), a running one with --force
    assert runc.create("k2", bundle).returncode == 0
    assert runc("delete", "k2").returncode == 0
    assert runc.create("k3", bundle).returncode == 0
    assert runc("start", "k3").returncode == 0
    assert runc("kill", "--all", "k3", "9").returncode == 0
    assert runc.wait_status("k3", "stopped")["status"] == "stopped"
    assert runc("delete", "--force", "k3").returncode == 0
    assert not os.listdir(runc.state_root)


def _assert_nothing_left(runc, cid):
    assert not os.path.exists(os.path.join(runc.state_root, cid))
    assert not _cgroup_dirs(cid)


def test_bad_bundles_fail_cleanly(runc, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runc.create("bad1", str(empty))
    assert result.returncode == 1 and "config.json not found" in result.stderr
    entry = json.loads(open(runc.log).read().splitlines()[-1])
    assert entry["level"] == "error" and "config.json not found" in entry["msg"]
    _assert_nothing_left(runc, "bad1")

    def unknown_ns(config):
        config["linux"]["namespaces"].append({"type": "bogus"})
    result = runc.create("bad2", runc.bundle(["true"], "b2", unknown_ns))
    assert result.returncode == 1 and "unknown namespace type" in result.stderr
    _assert_nothing_left(runc, "bad2")

    result = runc.create("bad3", runc.bundle(["no-such-command"], "b3"))
    assert result.returncode == 127 and "executable file not found" in result.stderr
    _assert_nothing_left(runc, "bad3")

    def bad_mount(config):
        config["mounts"].append({"destination": "/x", "type": "bind",
                                 "source": "/nonexistent-src", "options": ["rbind"]})
    result = runc.create("bad4", runc.bundle(["true"], "b4", bad_mount))
    assert result.returncode == 1 and "nonexistent-src" in result.stderr
    _assert_nothing_left(runc, "bad4")

    result = runc("start", "never-created")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_id_in_use(runc):
    bundle = runc.bundle(["sleep", "100"])
    assert runc.create("dup", bundle).returncode == 0
    result = runc.create("dup", bundle)
    assert result.returncode == 1 and "exists" in result.stderr
    assert runc.state("dup")["status"] == "created"  # the first one is untouched
    assert runc("delete", "--force", "dup").returncode == 0


def test_exec_in_running_container(runc, tmp_path):
    bundle = runc.bundle(["sleep", "100"])
    assert runc.create("ex", bundle).returncode == 0
    assert runc("start", "ex").returncode == 0
    process = {"args": ["sh", "-c", "echo in $(hostname) pid1=$(cat /proc/1/comm); exit 6"],
               "cwd": "/tmp", "env": ["PATH=/bin"], "user": {"uid": 65534, "gid": 65534}}
    spec = tmp_path / "process.json"
    spec.write_text(json.dumps(process))
    result = runc("exec", "--process", str(spec), "ex")
    assert result.returncode == 6, result.stderr
    assert result.stdout.strip() == "in runc pid1=sleep"
    result = runc("exec", "ex", "id", "-u")
    assert result.returncode == 0 and result.stdout.strip() == "0"
    pid_file = tmp_path / "exec.pid"
    result = runc("exec", "--detach", "--pid-file", str(pid_file), "ex", "sleep", "50",
                  capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    assert pid in json.loads(runc("ps", "--format", "json", "ex").stdout)
    result = runc("exec", "ex", "nosuch")
    assert result.returncode == 127 and "not found" in result.stderr
    assert runc("delete", "--force", "ex").returncode == 0


HOOK = """#!/bin/sh
read -r state
echo "$1 $state" >> {log}
"""


def test_hooks_run_in_spec_order(runc, tmp_path):
    log = tmp_path / "hooks.log"
    script = tmp_path / "hook.sh"
    script.write_text(HOOK.format(log=log))
    script.chmod(0o755)
    shared = tmp_path / "shared"
    shared.mkdir()

    def with_hooks(config):
        hook = lambda kind: {"path": str(script), "args": ["hook.sh", kind]}  # noqa: E731
        config["hooks"] = {kind: [hook(kind)] for kind in
                           ("prestart", "createRuntime", "createContainer", "poststart",
                            "poststop")}
        # startContainer runs inside the container: its path resolves there.
        config["hooks"]["startContainer"] = [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "read -r s; echo \"startContainer $s\" >> /shared/hooks.log"]}]
        config["mounts"].append({"destination": "/shared", "type": "bind",
                                 "source": str(shared), "options": ["rbind", "rw"]})
    bundle = runc.bundle(["true"], mutate=with_hooks)
    assert runc.create("hk", bundle).returncode == 0
    assert runc("start", "hk").returncode == 0
    runc.wait_status("hk", "stopped")
    assert runc("delete", "hk").returncode == 0
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = [json.loads(line.split(" ", 1)[1]) for line in log.read_text().splitlines()]
    assert all(s["id"] == "hk" and s["pid"] > 0 for s in states[:4])
    assert states[-1]["status"] == "stopped"
    inner = (shared / "hooks.log").read_text()
    assert inner.startswith("startContainer ") and '"id": "hk"' in inner


def test_failing_prestart_hook_fails_create(runc):
    def failing(config):
        config["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    result = runc.create("hf", runc.bundle(["true"], mutate=failing))
    assert result.returncode == 1 and "prestart" in result.stderr
    _assert_nothing_left(runc, "hf")


def _recv_fd(server: socket.socket) -> int:
    conn, _ = server.accept()
    with conn:
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:fds.itemsize])
    return fds[0]


def test_terminal_through_console_socket(runc, tmp_path):
    def tty(config):
        config["process"]["terminal"] = True
        config["process"]["consoleSize"] = {"height": 30, "width": 100}
        config["process"]["args"] = ["sh", "-c", "tty; stty size"]
    bundle = runc.bundle([], mutate=tty)
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(20)
    result = runc.create("tty", bundle)  # console socket missing: refused
    assert result.returncode == 1 and "console-socket" in result.stderr
    proc = subprocess.Popen([RUNC_CLI, "--root", runc.state_root, "create", "--bundle",
                             bundle, "--console-socket", sock_path, "tty"],
                            stderr=subprocess.PIPE, text=True)
    master = _recv_fd(server)
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert runc("start", "tty").returncode == 0
    output = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"30 100" not in output:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    server.close()
    assert b"/dev/pts/0" in output and b"30 100" in output, output
    runc.wait_status("tty", "stopped")
    assert runc("delete", "tty").returncode == 0


def test_run_command_and_readonly_root(runc):
    bundle = runc.bundle(["sh", "-c", "touch /x 2>/dev/null && exit 1; "
                          "cat /proc/self/status | grep -q 'CapEff:.*0000000020000420' "
                          "&& exit 3"])
    runc.ids.append("rr")
    result = runc("run", "--bundle", bundle, "rr")
    assert result.returncode == 3, result.stderr
    assert not os.path.exists(os.path.join(runc.state_root, "rr"))


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
def test_bundle_from_runc_spec(runc, tmp_path, busybox_rootfs):
    bundle = tmp_path / "specbundle"
    bundle.mkdir()
    os.symlink(busybox_rootfs, bundle / "rootfs")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo from-runc-spec; ls /sys/fs/cgroup | head -1"]
    (bundle / "config.json").write_text(json.dumps(config))
    runc.ids.append("rs")
    result = runc("run", "--bundle", str(bundle), "rs")
    assert result.returncode == 0, result.stderr
    assert "from-runc-spec" in result.stdout


def _sigign(text: str) -> int:
    return int(next(line for line in text.splitlines() if line.startswith("SigIgn:"))
               .split()[1], 16)


def test_python_signal_dispositions_do_not_leak(runc):
    """SIGPIPE/SIGXFSZ, ignored by Python, must be default again in the container (and in an
    exec'd process): `yes | head -1` must end by SIGPIPE, not loop on EPIPE."""
    bundle = runc.bundle(["sh", "-c", "grep SigIgn /proc/self/status; sleep 100"])
    assert runc.create("sig", bundle, out=open(runc.tmp / "sig.out", "w")).returncode == 0
    assert runc("start", "sig").returncode == 0
    result = runc("exec", "sig", "grep", "SigIgn", "/proc/self/status")
    assert _sigign(result.stdout) & ((1 << 12) | (1 << 24)) == 0
    deadline = time.monotonic() + 10
    while "SigIgn" not in (runc.tmp / "sig.out").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sigign((runc.tmp / "sig.out").read_text()) & ((1 << 12) | (1 << 24)) == 0
    assert runc("delete", "--force", "sig").returncode == 0


def test_exec_with_terminal(runc, tmp_path):
    bundle = runc.bundle(["sleep", "100"])
    assert runc.create("et", bundle).returncode == 0
    assert runc("start", "et").returncode == 0
    spec = tmp_path / "tty.json"
    spec.write_text(json.dumps({"args": ["sh", "-c", "tty; stty size; exit 4"], "cwd": "/",
                                "terminal": True, "env": ["PATH=/bin"],
                                "consoleSize": {"height": 40, "width": 120}}))
    sock_path = str(tmp_path / "exec-console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(20)
    proc = subprocess.Popen([RUNC_CLI, "--root", runc.state_root, "exec", "--process",
                             str(spec), "--console-socket", sock_path, "et"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    master = _recv_fd(server)
    assert proc.wait(timeout=20) == 4
    output = b""
    while True:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    server.close()
    assert b"/dev/pts/0" in output and b"40 120" in output, output
    assert runc("delete", "--force", "et").returncode == 0


def test_pause_resume(runc):
    bundle = runc.bundle(["sleep", "100"])
    assert runc.create("pz", bundle).returncode == 0
    # runc 1.1.5 pauses a created container too (its state says "paused", resume: "created")
    assert runc("pause", "pz").returncode == 0
    assert runc.state("pz")["status"] == "paused"
    assert runc("resume", "pz").returncode == 0
    assert runc.state("pz")["status"] == "created"
    assert runc("start", "pz").returncode == 0
    assert runc("pause", "pz").returncode == 0
    assert runc.state("pz")["status"] == "paused"
    pid = runc.state("pz")["pid"]
    with open(f"/proc/{pid}/stat") as handle:
        assert handle.read().split(") ")[1][0] in "DS"  # frozen tasks sleep in the freezer
    assert runc("resume", "pz").returncode == 0
    assert runc.state("pz")["status"] == "running"
    assert runc("pause", "pz").returncode == 0
    assert runc("delete", "--force", "pz").returncode == 0  # thawed, then killed
    assert not _cgroup_dirs("pz")


@pytest.mark.parametrize("where, value, message", [
    (("linux", "resources", "memory", "limit"), 10 ** 30, "memory.limit"),
    (("linux", "resources", "pids", "limit"), 10 ** 20, "pids.limit"),
    (("linux", "resources", "cpu", "quota"), 10 ** 20, "cpu.quota"),
    (("process", "user", "uid"), 1 << 40, "process.user.uid"),
])
def test_numbers_beyond_their_spec_types_are_refused(runc, where, value, message):
    """JSON numbers have no bound; the spec's fields are Go int64/uint64/uint32. runc fails
    to decode such a config.json ("cannot unmarshal number ... into Go struct field ... of
    type int64") and creates nothing. Before the fix a memory limit of 1e30 was accepted, the
    pids and quota values failed only once the cgroup existed (ERANGE from the kernel), the
    uid in the child ("uid is less than minimum")."""
    def mutate(config):
        node = config
        for key in where[:-1]:
            node = node.setdefault(key, {})
        node[where[-1]] = value
    cid = f"big-{where[-1]}-{where[-2]}"
    result = runc.create(cid, runc.bundle(["true"], f"b-{cid}", mutate))
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    _assert_nothing_left(runc, cid)
