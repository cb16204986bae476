"""Issue 13 item 3, for real (root): containers that share the host's network namespace and build
RUN steps must not reach the host through /sys, and builds must not share the host's network.

Attack: before the fix a ``--network host`` container (and every ``build`` RUN step, which ran
with the host's network) had the host's /sys bound recursively with only the top mount made
read-only, so the host's cgroup hierarchies, tracefs, debugfs, bpffs ... stayed writable: the
container could write 0 to /sys/fs/cgroup/<controller>/cgroup.procs of the host's root cgroup
(leaving its memory, pids and devices limits behind) and switch tracing on. A RUN step could also
talk to services bound to the host's 127.0.0.1.

Docker, for the same inputs: ``docker run --network host`` mounts a fresh sysfs read-only (runc
mounts sysfs itself; in the host network namespace the kernel allows it), so no host submount is
there at all; the container's cgroups are its own (a private cgroup namespace on v2, a read-only
tmpfs holding its own cgroup directories on v1), and every write below /sys fails with EROFS.
``docker build`` gives RUN steps the default bridge network (``--network host`` only on request),
so 127.0.0.1 in a RUN step is the step's own loopback.

Every probe writes values that change nothing if they were accepted (0 into cgroup.procs moves
only the probing shell, which then exits; tracing_on gets the host's current value back), so a
run against the unfixed code showed the attack without harming the host.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_bench_warm_pool import _run as run_in_pool  # noqa: E402
from test_oci_cli import Runc, busybox_rootfs  # noqa: E402,F401  (busybox_rootfs: fixture)
from test_runtime_real import userns_iso  # noqa: E402,F401  (fixture)
from test_security_real import in_child, private_mount_namespace, write_errno  # noqa: E402

from isoinspect.runtime.linux import mount_tree  # noqa: E402
from isoinspect.runtime.linux import syscalls as sc  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CGROUP_ROOT = "/sys/fs/cgroup"
TRACING_ON = "/sys/kernel/tracing/tracing_on"

# Tries each "path=value" write it is given, then says what it could see. busybox sh only.
PROBE = r"""
for target in "$@"; do
  path=${target%%=*}; value=${target#*=}
  if err=$( { printf '%s\n' "$value" > "$path"; } 2>&1 ); then
    echo "WROTE $path"
  else
    echo "REFUSED $path $err"
  fi
done
[ -e /dev/kmsg ] && echo "KMSG-PRESENT"
if mknod /dev/isoinspect-kmsg c 1 11 2>/dev/null; then
  if err=$( { echo isoinspect-sysfs-probe > /dev/isoinspect-kmsg; } 2>&1 ); then
    echo "WROTE /dev/kmsg"
  else
    echo "REFUSED /dev/kmsg $err"
  fi
  rm -f /dev/isoinspect-kmsg
fi
awk '$5 ~ /^\/sys(\/|$)/ {print "MOUNT", $5, $6}' /proc/self/mountinfo
for entry in $(ls -A /sys/fs/cgroup); do echo "CGENTRY $entry"; done
echo PROBE-DONE
"""

REFUSALS = ("Read-only file system", "Permission denied", "Operation not permitted",
            "No such file or directory", "nonexistent directory")


def host_is_unified() -> bool:
    return os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers")


def host_cgroup_dirs() -> list[str]:
    """The host's hierarchies (v1/hybrid) or its root's child cgroups (v2)."""
    return sorted(d for d in os.listdir(CGROUP_ROOT) if os.path.isdir(f"{CGROUP_ROOT}/{d}"))


def attack_writes(parent: str) -> list[str]:
    """path=value: the host's root cgroups, our own parent cgroup, and tracing_on (its value)."""
    targets = []
    if host_is_unified():
        targets += [f"{CGROUP_ROOT}/cgroup.procs=0", f"{CGROUP_ROOT}/{parent}/cgroup.procs=0"]
    else:
        for hierarchy in host_cgroup_dirs():
            targets += [f"{CGROUP_ROOT}/{hierarchy}/cgroup.procs=0",
                        f"{CGROUP_ROOT}/{hierarchy}/{parent}/cgroup.procs=0"]
    if os.path.exists(TRACING_ON):
        with open(TRACING_ON) as handle:
            targets.append(f"{TRACING_ON}={handle.read().strip()}")
    return targets


def check_probe_output(text: str, own_cgroup_view: bool = True,
                       host_mounts_below: bool = False) -> None:
    """``host_mounts_below``: the host's /sys was bound (user namespace), so its submounts are
    there, read-only and (for cgroups) covered, since locked mounts cannot be unmounted."""
    lines = text.splitlines()
    assert "PROBE-DONE" in lines, text
    wrote = [line for line in lines if line.startswith("WROTE ")]
    assert not wrote, f"writes below /sys (or to /dev/kmsg) succeeded: {wrote}\n{text}"
    refused = [line for line in lines if line.startswith("REFUSED ")]
    assert len(refused) >= 3, text
    for line in refused:
        assert any(reason in line for reason in REFUSALS), line
    assert "KMSG-PRESENT" not in lines
    mounts = [line.split() for line in lines if line.startswith("MOUNT ")]
    assert mounts and mounts[0][1] == "/sys", text
    writable = [m for m in mounts if "ro" not in m[2].split(",")]
    assert not writable, f"writable mounts under /sys: {writable}"
    if own_cgroup_view:
        seen = {line.split()[1] for line in lines if line.startswith("CGENTRY ")}
        assert not seen & set(host_cgroup_dirs()), f"the host's cgroup tree is visible: {seen}"
    if own_cgroup_view and not host_mounts_below:  # a fresh sysfs: no host submount at all
        assert not any(m[1].startswith(f"{CGROUP_ROOT}/") for m in mounts), mounts
        assert not any(m[1].startswith("/sys/kernel/") for m in mounts), mounts


# -- run --network host -------------------------------------------------------------------------

def run_probe(iso, *extra: str, host_mounts_below: bool = False) -> None:
    result = iso("run", "--rm", "--network", "host", *extra, "busybox", "sh", "-c", PROBE,
                 "probe", *attack_writes(iso.roots.cgroup_parent), timeout=60)
    assert result.returncode == 0, result.stderr
    check_probe_output(result.stdout, host_mounts_below=host_mounts_below)


def test_host_network_container_gets_a_readonly_sysfs_and_its_own_cgroups(iso):
    """``run --network host``: no write below /sys reaches the host, every /sys mount is
    read-only, the host's cgroup hierarchies are not visible, /dev/kmsg cannot be written.

    Docker: ``docker run --network host busybox sh -c
    'echo 0 > /sys/fs/cgroup/memory/cgroup.procs'``
    fails with "Read-only file system"; /sys and every mount below it are ro."""
    run_probe(iso)


def test_host_network_with_userns_remap_binds_sysfs_readonly_all_the_way_down(userns_iso):
    """``--userns remap --network host``: the kernel refuses a fresh sysfs (the network
    namespace belongs to the host's user namespace), so the host's /sys is bound; it must be
    read-only all the way down, with the host's cgroup hierarchies covered.

    Docker (userns-remap daemon, --network host): runc falls back to binding /sys recursively
    and read-only; writes below it fail with EROFS."""
    run_probe(userns_iso, "--userns", "remap", host_mounts_below=True)


def test_warm_pool_with_host_network_uses_the_same_readonly_sysfs(iso):
    """The warm pool's zygotes go through the same child set-up (one mount function)."""
    from isoinspect.runtime.runtime import Runtime
    from isoinspect.runtime.spec import ContainerSpec
    from isoinspect.runtime.warm_pool import WarmPool

    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="host")
    with WarmPool(runtime, spec, size=1, background=False) as pool:
        code, out = run_in_pool(pool, ["sh", "-c", PROBE, "probe",
                                       *attack_writes(iso.roots.cgroup_parent)])
    assert code == 0
    check_probe_output(out.decode())


def test_oci_bundle_sharing_the_host_network_gets_a_readonly_sysfs(tmp_path, busybox_rootfs):
    """An OCI bundle without a network namespace and a sysfs mount (runc's own spec minus
    "network"): the same sysfs as ``run --network host``. The spec's cgroup mount shows the
    container's own cgroup directories (runc's view without a cgroup namespace), read-only.

    runc (the same bundle): sysfs mounted fresh and read-only; the cgroup tmpfs and binds ro."""
    runc = Runc(tmp_path, busybox_rootfs)

    def host_network(config: dict) -> None:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != "network"]
    bundle = runc.bundle(["sh", "-c", PROBE, "probe", *attack_writes("isoinspect-oci")],
                         mutate=host_network)
    try:
        result = runc("run", "--bundle", bundle, "isoinspect-sysfs-oci", timeout=60)
    finally:
        runc("delete", "--force", "isoinspect-sysfs-oci")
    assert result.returncode == 0, result.stderr
    check_probe_output(result.stdout, own_cgroup_view=False)
    cgroup_mounts = [line.split() for line in result.stdout.splitlines()
                     if line.startswith(f"MOUNT {CGROUP_ROOT}/")]
    assert all("ro" in m[2].split(",") for m in cgroup_mounts)


@pytest.mark.parametrize("how", ["make_tree_readonly", "remount_each_readonly"])
def test_a_bound_sys_becomes_readonly_all_the_way_down(tmp_path, how):
    """The bind fallback on its own, both ways (mount_setattr(AT_RECURSIVE) and the pre-5.12
    walk over mountinfo), in a private mount namespace of a forked child: every mount of the
    bound tree is read-only and a write into tracefs or a cgroup hierarchy gets EROFS. The
    writes would be refused anyway if they got through (EINVAL: "x" is no value there)."""
    target = str(tmp_path / "sys")
    os.mkdir(target)

    def body() -> dict:
        private_mount_namespace()
        sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC)
        getattr(mount_tree, how)(target)
        points = mount_tree.mount_points_under(target)
        probes = [f"{target}/kernel/tracing/tracing_on", f"{target}/fs/cgroup/cgroup.procs"]
        probes += [f"{target}/fs/cgroup/{d}/cgroup.procs" for d in host_cgroup_dirs()]
        return {"points": points,
                "writable": [p for p in points if not os.statvfs(p).f_flag & os.ST_RDONLY],
                "errnos": {p: write_errno(p) for p in probes if os.path.exists(p)}}
    result = in_child(body)
    assert len(result["points"]) > 1  # the host's /sys has submounts (cgroups, tracefs)
    assert result["writable"] == []
    assert result["errnos"] and set(result["errnos"].values()) == {errno.EROFS}, result


# -- build ----------------------------------------------------------------------------------------

def write_context(path, dockerfile: str, probe: bool = False) -> str:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "Dockerfile"), "w") as handle:
        handle.write(dockerfile)
    if probe:
        with open(os.path.join(path, "probe.sh"), "w") as handle:
            handle.write(PROBE)
    return str(path)


@pytest.mark.parametrize("network", [None, "host"], ids=["default", "host"])
def test_build_run_step_cannot_write_host_sysfs(iso, tmp_path, network):
    """A RUN step writes to the host's root cgroups, its parent cgroup and tracing_on: every
    write fails, with the default network and with ``--network host``.

    Docker (classic builder): ``RUN echo 0 > /sys/fs/cgroup/memory/cgroup.procs`` fails with
    "Read-only file system", whatever --network the build uses."""
    args = " ".join(attack_writes(iso.roots.cgroup_parent))
    context = write_context(tmp_path / "ctx", "FROM busybox\nCOPY probe.sh /probe.sh\n"
                            f"RUN sh /probe.sh {args}\n", probe=True)
    extra = ["--network", network] if network else []
    result = iso("build", *extra, "-t", "isoinspect-sysfs:probe", context, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    check_probe_output(result.stdout)


def test_build_fails_when_a_run_step_needs_a_host_cgroup(iso, tmp_path):
    """``RUN echo 0 > /sys/fs/cgroup/<hierarchy>/cgroup.procs`` fails the build (non-zero exit,
    the step's error shown, no traceback), with the default network and with ``--network host``.

    Docker: the step fails ("can't create ...: Read-only file system" / "nonexistent
    directory") and the build stops with "returned a non-zero code"."""
    hierarchy = "" if host_is_unified() else f"/{host_cgroup_dirs()[0]}"
    context = write_context(tmp_path / "ctx", "FROM busybox\n"
                            f"RUN echo 0 > {CGROUP_ROOT}{hierarchy}/cgroup.procs\n")
    for extra in ([], ["--network", "host"]):
        result = iso("build", *extra, context, timeout=120)
        assert result.returncode != 0, result.stdout
        assert "returned a non-zero code" in result.stderr
        assert "Traceback" not in result.stderr


class LoopbackListener:
    """A TCP service on the host's 127.0.0.1 that counts connections and closes each at once
    (so a client that got through finishes). Stopped by the fixture; accept() waits 0.2 s at
    most per turn."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            client.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.server.close()


@pytest.fixture
def loopback_listener():
    listener = LoopbackListener()
    yield listener
    listener.close()


def test_build_run_step_cannot_reach_the_hosts_loopback(iso, tmp_path, loopback_listener):
    """The default build network is not the host's: a RUN step connecting to a service on the
    host's 127.0.0.1 reaches nothing (its 127.0.0.1 is its own). ``--network host`` is the
    explicit opt-in, and with it the same step does connect (the control).

    Docker: ``docker build`` runs RUN steps on the default bridge; only ``docker build
    --network host`` reaches the host's loopback."""
    port = loopback_listener.port
    step = (f"RUN if nc -w 5 127.0.0.1 {port} </dev/null; then echo REACHED; "
            "else echo NOT-REACHED; fi\n")
    context = write_context(tmp_path / "ctx", "FROM busybox\n" + step)
    result = iso("build", "--no-cache", context, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT-REACHED" in result.stdout.split(), result.stdout
    assert loopback_listener.connections == 0

    result = iso("build", "--no-cache", "--network", "host", context, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REACHED" in result.stdout.split(), result.stdout
    assert loopback_listener.connections == 1


def test_build_network_option_is_checked(iso, tmp_path):
    """An unknown build network is refused in one line before anything runs.

    Docker: ``docker build --network nosuch .`` fails: "network nosuch not found"."""
    context = write_context(tmp_path / "ctx", "FROM busybox\nRUN true\n")
    result = iso("build", "--network", "isoinspect-nosuch", context, timeout=60)
    assert result.returncode != 0
    assert "isoinspect-nosuch" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
