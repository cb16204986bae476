"""The doctor's check helpers on fake kernel trees and fake tools (no root, no BCC needed)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import stat
import threading

import pytest

from isoinspect.benches import peers
from isoinspect.inspector import capabilities as caps
from isoinspect.runtime import hostcheck

HYBRID_MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:12 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw
"""
UNIFIED_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
LEGACY_MOUNTINFO = ("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                    "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n")


# ----------------------------------------------------------------------------- cgroups

@pytest.mark.parametrize("text,mode", [(HYBRID_MOUNTINFO, "hybrid"),
                                       (UNIFIED_MOUNTINFO, "unified"),
                                       (LEGACY_MOUNTINFO, "legacy")])
def test_mode_from_mountinfo(tmp_path, text, mode):
    """Doctor reports the runtime's own layout (runtime/cgroups/layout.py)."""
    info = tmp_path / "mountinfo"
    info.write_text(text)
    setup = hostcheck.detect_cgroup_setup(str(info))
    assert setup["mode"] == mode
    if mode == "legacy":
        combined = "/sys/fs/cgroup/cpu,cpuacct"
        assert setup["v1"] == {"cpu": combined, "cpuacct": combined, "pids": "/sys/fs/cgroup/pids"}
    if mode == "hybrid":
        assert set(setup["v1"]) == {"cpu", "memory", "pids"}   # name=systemd is no controller
        assert setup["v2_mount"] == "/sys/fs/cgroup/unified"


def test_no_cgroup_hierarchy_is_mode_none(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("22 1 254:0 / / rw - ext4 /dev/vda rw\n")
    setup = hostcheck.detect_cgroup_setup(str(info), cgroup_root=str(tmp_path / "none"))
    assert setup["mode"] == "none"
    assert hostcheck.check_cgroup_mode(setup).ok is False


def test_detect_setup_reads_v2_controllers(tmp_path):
    v2 = tmp_path / "cg2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    info = tmp_path / "mountinfo"
    info.write_text(f"30 23 0:26 / {v2} rw - cgroup2 cgroup2 rw\n")
    setup = hostcheck.detect_cgroup_setup(str(info), cgroup_root=str(v2))
    assert setup["mode"] == "unified"
    assert setup["v2_mount"] == str(v2)
    assert setup["v2_controllers"] == ["cpuset", "cpu", "io", "memory", "pids"]
    checks = {c.name: c for c in hostcheck.check_cgroup_controllers(setup)}
    assert checks["cgroup v2 controllers"].ok is True
    assert checks["cgroup v1 controllers"].status == "n/a"


def test_hybrid_mode_check_and_missing_v1_controller(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(HYBRID_MOUNTINFO.replace("/sys/fs/cgroup", str(tmp_path)))
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    setup = hostcheck.detect_cgroup_setup(str(info), cgroup_root=str(tmp_path))
    mode = hostcheck.check_cgroup_mode(setup)
    assert mode.ok and mode.detail.startswith("hybrid") and "hugetlb" in mode.detail
    del setup["v1"]["memory"]
    v1 = hostcheck.check_cgroup_controllers(setup)[0]
    assert v1.status == "degraded" and "memory" in v1.detail


def test_cgroups_usable_reports_missing_files(tmp_path):
    # Plain directories are not cgroupfs: mkdir works, the limit files are missing.
    setup = {"mode": "legacy", "v1": {c: str(tmp_path / c) for c in ("cpu", "memory", "pids")},
             "v2_mount": None, "v2_controllers": []}
    for c in ("cpu", "memory", "pids"):
        (tmp_path / c).mkdir()
    check = hostcheck.check_cgroups_usable(setup)
    assert check.ok is False and "pids.max missing" in check.detail
    assert not any(p.name.startswith("isoinspect-doctor") for p in (tmp_path / "pids").iterdir())


def test_cgroups_usable_none():
    check = hostcheck.check_cgroups_usable({"mode": "none", "v1": {}, "v2_mount": None,
                                            "v2_controllers": []})
    assert check.ok is False


def test_check_root_not_root():
    check = hostcheck.check_root(euid=1000)
    assert check.ok is False and "sudo" in check.impact
    assert hostcheck.check_root(euid=0).ok is True


# ----------------------------------------------------------------------------- inspector

def test_find_tracefs(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(HYBRID_MOUNTINFO)
    assert caps.find_tracefs(str(info)) == "/sys/kernel/tracing"
    info.write_text("60 23 0:12 / /sys/kernel/debug/tracing rw - tracefs tracefs rw\n")
    assert caps.find_tracefs(str(info)) == "/sys/kernel/debug/tracing"
    info.write_text(UNIFIED_MOUNTINFO)
    assert caps.find_tracefs(str(info)) is None
    assert caps.check_tracefs(str(info)).ok is False


def test_tracepoints_present_and_missing(tmp_path):
    for spec in caps.REQUIRED_TRACEPOINTS:
        cat, event = spec.split(":")
        (tmp_path / "events" / cat / event).mkdir(parents=True)
        (tmp_path / "events" / cat / event / "format").write_text("x")
    assert caps.check_tracepoints(str(tmp_path)).ok is True
    (tmp_path / "events/oom/mark_victim/format").unlink()
    check = caps.check_tracepoints(str(tmp_path))
    assert check.ok is False and check.status == "degraded"
    assert check.data["missing"] == ["oom:mark_victim"]
    assert caps.check_tracepoints(None).ok is None


def _headers_tree(root, release, uts):
    build = root / "src" / "linux-headers"
    (build / "include" / "generated").mkdir(parents=True)
    (build / "include/generated/utsrelease.h").write_text(f'#define UTS_RELEASE "{uts}"\n')
    (root / "modules" / release).mkdir(parents=True)
    (root / "modules" / release / "build").symlink_to(build)


def test_kernel_headers(tmp_path):
    _headers_tree(tmp_path, "6.18.1-x", "6.1.0-56-amd64")
    check = caps.check_kernel_headers("6.18.1-x", str(tmp_path / "modules"), kheaders="/nope")
    assert check.status == "degraded" and check.data["matches"] is False
    assert "6.1.0-56-amd64" in check.detail
    same = tmp_path / "same"
    _headers_tree(same, "6.1.0-56-amd64", "6.1.0-56-amd64")
    assert caps.check_kernel_headers("6.1.0-56-amd64", str(same / "modules"),
                                     kheaders="/nope").ok is True
    missing = caps.check_kernel_headers("9.9", str(tmp_path / "modules"), kheaders="/nope")
    assert missing.status == "missing" and "make setup" in missing.impact


def test_kprobe_facts(tmp_path):
    config = tmp_path / "config.gz"
    with gzip.open(config, "wt") as handle:
        handle.write("CONFIG_BPF=y\n# CONFIG_KPROBES is not set\n")
    facts = caps.kprobe_facts(str(tmp_path), str(config), pmu_dir=str(tmp_path / "nokprobe"))
    assert facts == ["no kprobe PMU", f"no {tmp_path}/kprobe_events", "CONFIG_KPROBES is not set"]


# The shape of what run_attach_tests returns on the project's hosts.
HOST_RESULTS = {
    "bcc": {"ok": True, "file": "/usr/lib/python3/dist-packages/bcc/__init__.py"},
    "tracepoint": {"ok": True, "events": 1},
    "raw_tracepoint": {"ok": True, "events": 1},
    "kprobe": {"ok": False, "error": "Exception: Failed to attach BPF program b'probe' to "
               "kprobe b'__x64_sys_getpid', it's not traceable",
               "stderr": ["create_probe_event: open(/sys/kernel/tracing/kprobe_events): "
                          "No such file or directory"]},
    "fentry": {"ok": False, "error": "Exception: Need super-user privileges to run",
               "stderr": ["bpf: Failed to load program: Operation not permitted"]},
    "uprobe": {"ok": True, "events": 2},
}


def test_attach_checks_on_this_kind_of_host():
    checks = {c.name: c for c in caps.attach_checks(HOST_RESULTS, "/nonexistent-tracefs")}
    assert checks["attach: tracepoint"].status == "ok"
    assert checks["attach: kprobe"].status == "degraded"
    assert "tracepoints" in checks["attach: kprobe"].impact
    assert "EPERM" in checks["attach: fentry/kfunc"].detail
    assert checks["attach: uprobe (libc)"].ok is True
    assert caps.inspector_mode(HOST_RESULTS, euid=0) == caps.MODE_TRACEPOINTS


@pytest.mark.parametrize("change,euid,mode", [
    ({}, 0, caps.MODE_TRACEPOINTS),
    ({"kprobe": {"ok": True}}, 0, caps.MODE_FULL),
    ({}, 1000, caps.MODE_CGROUP_ONLY),
    ({"bcc": {"ok": False, "error": "ModuleNotFoundError"}}, 0, caps.MODE_CGROUP_ONLY),
    ({"tracepoint": {"ok": False}}, 0, caps.MODE_CGROUP_ONLY),
])
def test_inspector_mode(change, euid, mode):
    assert caps.inspector_mode({**HOST_RESULTS, **change}, euid=euid) == mode


def test_attach_checks_without_bcc():
    checks = caps.attach_checks({"bcc": {"ok": False, "error": "No module named 'bcc'"}}, None)
    assert checks[0].status == "missing" and "python3-bpfcc" in checks[0].impact
    assert all(c.ok is None for c in checks[1:]) and len(checks) == 1 + len(caps.ATTACH_TESTS)


def _fake_python(tmp_path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_attach_child_crash_keeps_partial_results(tmp_path):
    python = _fake_python(tmp_path, """
echo '{"test": "bcc", "ok": true}'
echo '{"test": "tracepoint", "ok": true, "events": 3}'
echo 'libbcc: something bad' >&2
kill -SEGV $$
""")
    results = caps.run_attach_tests(python=python, timeout=10)
    assert results["tracepoint"] == {"ok": True, "events": 3}
    assert results["kprobe"]["ok"] is None
    assert "signal 11" in results["kprobe"]["error"]


def test_attach_child_timeout(tmp_path):
    python = _fake_python(tmp_path, 'echo \'{"test": "bcc", "ok": true}\'\nexec sleep 30\n')
    results = caps.run_attach_tests(python=python, timeout=1)
    assert results["bcc"]["ok"] is True
    assert results["uprobe"]["ok"] is None and "timed out" in results["uprobe"]["error"]


def test_attach_child_reports_nothing(tmp_path):
    results = caps.run_attach_tests(python=_fake_python(tmp_path, "exit 3\n"), timeout=5)
    assert results["bcc"]["ok"] is None and "exited 3" in results["bcc"]["error"]


# ----------------------------------------------------------------------------- peers

def test_cpu_flags_and_kvm_without_device(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags\t\t: fpu sse2 hypervisor avx2\n")
    assert peers.cpu_virt_flags(str(cpuinfo)) == {"hypervisor"}
    check = peers.check_kvm(device=str(tmp_path / "kvm"), cpuinfo=str(cpuinfo))
    assert check.status == "degraded" and "TCG" in check.impact
    assert check.data["available"] is False


def test_docker_api_and_check_against_fake_daemon(tmp_path):
    sock_path = str(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(4)
    bodies = {"/version": {"Version": "20.10.24", "ApiVersion": "1.41",
                           "Components": [{"Name": "containerd", "Version": "1.6.20"}]}}

    def serve():
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                path = conn.recv(4096).decode().split()[1]
                if path in bodies:
                    body = json.dumps(bodies[path]).encode()
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
                                 + body)
                else:
                    conn.sendall(b'HTTP/1.0 404 Not Found\r\n\r\n{"message": "no such image"}')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        if not peers.shutil.which("dockerd"):
            pytest.skip("dockerd not installed")
        check = peers.check_docker(sock=sock_path, image="nope:latest")
    finally:
        thread.join(5)
        server.close()
    assert check.ok is True and check.data["version"] == "20.10.24"
    assert "containerd 1.6.20" in check.detail and "not loaded" in check.detail
    assert check.data["image_loaded"] is False


def test_docker_not_answering(tmp_path):
    if not peers.shutil.which("dockerd"):
        pytest.skip("dockerd not installed")
    check = peers.check_docker(sock=str(tmp_path / "absent.sock"))
    assert check.ok is False and check.status == "degraded"
    assert "start-dockerd.sh" in check.impact


def test_oci_config_is_runnable_shape():
    from isoinspect.benches import bundle

    config = bundle.config("rootfs", bundle.Workload(("/bin/true",)), cgroupns=False)
    assert config["process"]["args"] == ["/bin/true"]
    assert config["process"]["terminal"] is False
    assert {n["type"] for n in config["linux"]["namespaces"]} == {
        "pid", "network", "ipc", "uts", "mount"}
    host = bundle.config("rootfs", bundle.Workload(("/bin/true",), network="host"),
                         cgroupns=True)
    assert {n["type"] for n in host["linux"]["namespaces"]} == {
        "pid", "cgroup", "ipc", "uts", "mount"}


def test_crun_hybrid_refusal_is_unsupported(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "crun"
    fake.write_text("""#!/bin/sh
for a in "$@"; do
  case "$a" in
    --version) echo "crun version 1.8.1"; exit 0;;
    run) echo "cgroups in hybrid mode not supported, drop all controllers from cgroupv2" >&2
         exit 1;;
    delete) exit 0;;
  esac
done
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    busybox = tmp_path / "busybox"
    busybox.write_text("not really busybox")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    check = peers.check_oci_runtime("crun", tmp_parent=str(tmp_path), busybox=str(busybox))
    assert check.status == "unsupported"
    assert check.data["version"] == "1.8.1" and check.data["reason"] == "hybrid cgroups"
    assert "v1-only or a v2-only" in check.detail
    assert [p for p in tmp_path.iterdir() if p.name.startswith("isoinspect-doctor")] == []


def test_missing_runtime(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    check = peers.check_oci_runtime("runsc")
    assert check.status == "missing" and check.data["available"] is False


def test_device_filter_check_reports_a_refusal_on_v2(tmp_path):
    """A v2 host whose kernel cannot attach the device program: not ok, with the reason and
    that containers will refuse to start (never a silent allow-all). A plain directory stands in
    for a cgroup2 mount the kernel refuses; the probe directory is removed again."""
    setup = {"mode": "unified", "v1": {}, "v2_mount": str(tmp_path), "v2_controllers": []}
    check = hostcheck.check_device_filter(setup)
    assert check.ok is False and "cgroup v2 devices: cannot" in check.detail
    assert "refuse to start" in check.impact
    assert list(tmp_path.iterdir()) == []


def test_device_filter_check_on_v1_names_the_controller():
    setup = {"mode": "legacy", "v1": {"devices": "/sys/fs/cgroup/devices"}, "v2_mount": None,
             "v2_controllers": []}
    check = hostcheck.check_device_filter(setup)
    assert check.ok is True and check.detail == "v1 devices controller; v2: no cgroup2 mount"
    assert hostcheck.check_device_filter(dict(setup, v1={})).ok is False
