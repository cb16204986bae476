"""The peers isoinspect is benchmarked against: installed? which version? usable here, for real?

* docker: dockerd answers GET /version on its socket (and is our busybox image loaded?);
* runc, crun, runsc: run ``/bin/true`` in a tiny busybox OCI bundle in a temp dir, configured
  as bench and verify run them (benches/bundle.py; crun 1.8 refuses hybrid cgroups: reported
  as "unsupported" with crun's own reason);
* qemu-system-x86_64: version and accelerators;
* KVM: open /dev/kvm, KVM_GET_API_VERSION, KVM_CREATE_VM, plus the CPU's vmx/svm flags. A timed
  guest boot (the VM harness) has the last word; this only says what the device claims.

Every check returns a :class:`Check` whose ``data`` holds {"available", "version", "usable", ...}
so benchmark records can take the versions from here. Nothing is cached.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Any

from isoinspect.benches import bundle as oci_bundle
from isoinspect.runtime.diagnostics import REGISTRY, Check, Entry, Status, register

DOCKER_SOCK = "/var/run/docker.sock"
DOCKER_IMAGE = "isoinspect-busybox:latest"
BUSYBOX = "/bin/busybox"
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01

NOT_BENCHED = "left out of the benchmarks on this host"
SECTION = "Peers"   # doctor's table section
OCI_RUNTIMES = ("runc", "crun", "runsc")


def _run(argv: list[str], timeout: float = 20.0, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, **kw)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _version_line(argv: list[str]) -> str | None:
    try:
        result = _run(argv, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (result.stdout or result.stderr).strip().splitlines()
    return out[0].strip() if out else None


def _peer(name: str, status: Status, detail: str, impact: str = "", *, available: bool,
          version: str | None, path: str | None = None, **extra: Any) -> Check:
    data = {"available": available, "version": version, "usable": status.ok, "path": path,
            **extra}
    return Check(name, status, detail, impact, data=data)


# ----------------------------------------------------------------------------- docker


def docker_api(path: str, sock: str = DOCKER_SOCK, timeout: float = 3.0) -> tuple[int, Any]:
    """GET *path* from the Docker Engine API on a unix socket: (HTTP status, parsed JSON)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(sock)
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return status, body.decode(errors="replace")


@register("peers", "docker", SECTION)
def check_docker(sock: str = DOCKER_SOCK, image: str = DOCKER_IMAGE) -> Check:
    dockerd = shutil.which("dockerd")
    if not dockerd:
        return _peer("docker", Status.FAIL, "dockerd not installed", f"apt-get install docker.io; "
                     f"{NOT_BENCHED}", available=False, version=None)
    try:
        status, info = docker_api("/version", sock)
    except (OSError, ValueError, IndexError) as exc:
        version = _version_line([dockerd, "--version"])
        return _peer("docker", Status.DEGRADED,
                     f"{version or 'dockerd'} installed, but {sock} does not answer "
                     f"({getattr(exc, 'strerror', None) or exc})",
                     f"start it with scripts/start-dockerd.sh (make test does); until then "
                     f"docker is {NOT_BENCHED}", available=True, version=version, path=dockerd)
    if status != 200 or not isinstance(info, dict):
        return _peer("docker", Status.FAIL, f"{sock} answered HTTP {status}", NOT_BENCHED,
                     available=True, version=None, path=dockerd)
    version = info.get("Version")
    components = {c.get("Name"): c.get("Version") for c in info.get("Components") or []}
    extra = {"api_version": info.get("ApiVersion"), "components": components}
    detail = f"dockerd {version} (API {info.get('ApiVersion')}) answers on {sock}"
    if components.get("containerd"):
        detail += f", containerd {components['containerd']}"
    try:
        img_status, _ = docker_api(f"/images/{image}/json", sock)
    except (OSError, ValueError, IndexError):
        img_status = 0
    extra["image_loaded"] = img_status == 200
    detail += f"; image {image} " + ("loaded" if img_status == 200 else "not loaded")
    impact = "" if img_status == 200 else "scripts/docker-busybox.sh loads it (no Docker Hub)"
    return _peer("docker", Status.OK, detail, impact, available=True, version=version, path=dockerd,
                 **extra)


# ----------------------------------------------------------------------------- OCI runtimes

def _try_oci(binary: str, name: str, bundle: str, state: str,
             extra_global: list[str] | None = None, timeout: float = 30.0
             ) -> tuple[bool, str]:
    """Run the bundle with an OCI runtime CLI; (worked, error text)."""
    cid = f"isoinspect-doctor-{os.getpid()}-{name}"
    base = [binary, "--root", state, *(extra_global or [])]
    try:
        result = _run([*base, "run", "--bundle", bundle, cid], timeout=timeout)
        ok = result.returncode == 0
        error = "" if ok else (_last_line(result.stderr) or _last_line(result.stdout)
                               or f"exit {result.returncode}")
    except subprocess.TimeoutExpired:
        ok, error = False, f"timed out after {timeout:.0f}s"
    finally:
        try:  # leave nothing behind, whatever happened
            _run([*base, "delete", "--force", cid], timeout=15)
        except (OSError, subprocess.SubprocessError):
            pass
        # runsc does not always remove the cgroup it made at its default path (/<id>): an
        # empty isoinspect-doctor-<pid>-runsc stayed in every v1 hierarchy once here
        from isoinspect.benches.targets.isoinspect import remove_cgroup_parents

        remove_cgroup_parents("/sys/fs/cgroup", cid)
    return ok, error


def check_oci_runtime(name: str, tmp_parent: str | None = None, busybox: str = BUSYBOX,
                      bundle: str | None = None) -> Check:
    """runc / crun / runsc: version, then a real `run` of /bin/true in a busybox bundle."""
    binary = shutil.which(name)
    if not binary:
        pkg = {"runsc": "runsc (gVisor)"}.get(name, name)
        return _peer(name, Status.FAIL, f"{name} not installed", f"apt-get install {pkg}; "
                     f"{NOT_BENCHED}", available=False, version=None)
    version_line = _version_line([binary, "--version"]) or "?"
    version = version_line.split("version", 1)[-1].strip() if "version" in version_line \
        else version_line
    if not os.path.exists(busybox) and bundle is None:
        return _peer(name, Status.ERROR, f"{name} {version}; not tried: {busybox} missing "
                     "(apt-get install busybox-static)", available=True, version=version,
                     path=binary)
    work = tempfile.mkdtemp(prefix=f"isoinspect-doctor-{name}-", dir=tmp_parent)
    try:
        if bundle is None:
            rootfs = oci_bundle.busybox_rootfs(os.path.join(work, "rootfs"), busybox)
            bundle = oci_bundle.write(os.path.join(work, "bundle"), rootfs,
                                      oci_bundle.Workload(("/bin/true",)))
        state = os.path.join(work, "state")
        os.makedirs(state)
        extra = ["--network=none"] if name == "runsc" else None
        ok, error = _try_oci(binary, name, bundle, state, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if ok:
        return _peer(name, Status.OK, f"{name} {version}: ran /bin/true in a busybox bundle",
                     available=True, version=version, path=binary)
    if name == "crun" and "hybrid mode not supported" in error:
        return _peer(name, Status.UNSUPPORTED,
                     f"crun {version} refuses hybrid cgroups (\"{error}\"): crun 1.8 needs a "
                     "v1-only or a v2-only host", NOT_BENCHED,
                     available=True, version=version, path=binary, reason="hybrid cgroups")
    return _peer(name, Status.FAIL, f"{name} {version}: run failed: {error}", NOT_BENCHED,
                 available=True, version=version, path=binary)


# ----------------------------------------------------------------------------- QEMU / KVM


for _name in OCI_RUNTIMES:
    REGISTRY.add(Entry("peers", _name, functools.partial(check_oci_runtime, _name), SECTION))


@register("peers", "qemu", SECTION)
def check_qemu(binary_name: str = "qemu-system-x86_64") -> Check:
    binary = shutil.which(binary_name)
    if not binary:
        return _peer("qemu", Status.FAIL, f"{binary_name} not installed",
                     f"apt-get install qemu-system-x86; VMs are {NOT_BENCHED}",
                     available=False, version=None)
    line = _version_line([binary, "--version"]) or "?"
    version = line.split("version", 1)[-1].strip() if "version" in line else line
    try:
        result = _run([binary, "-accel", "help"], timeout=10)
        accels = [l.strip() for l in result.stdout.splitlines()[1:] if l.strip()]
    except (OSError, subprocess.SubprocessError):
        accels = []
    if "tcg" not in accels and "kvm" not in accels:
        return _peer("qemu", Status.FAIL, f"QEMU {version}: no accelerator listed", NOT_BENCHED,
                     available=True, version=version, path=binary, accelerators=accels)
    return _peer("qemu", Status.OK, f"QEMU {version}; accelerators: {', '.join(accels)}",
                 "boot speed is measured by the VM harness (timed boot decides KVM vs TCG)",
                 available=True, version=version, path=binary, accelerators=accels)


def cpu_virt_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """vmx / svm / hypervisor flags of the CPU."""
    found: set[str] = set()
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    found |= {"vmx", "svm", "hypervisor"} & set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return found


def kvm_probe(device: str = "/dev/kvm") -> dict[str, Any]:
    """Open *device*, KVM_GET_API_VERSION, KVM_CREATE_VM: {"open", "api", "create_vm", "error"}."""
    out: dict[str, Any] = {"open": False, "api": None, "create_vm": False, "error": None}
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        out["error"] = f"open {device}: {exc.strerror}"
        return out
    out["open"] = True
    try:
        out["api"] = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        out["create_vm"] = True
        os.close(vm)
    except OSError as exc:
        out["error"] = f"ioctl: {exc.strerror}"
    finally:
        os.close(fd)
    return out


@register("peers", "kvm", SECTION)
def check_kvm(device: str = "/dev/kvm", cpuinfo: str = "/proc/cpuinfo") -> Check:
    flags = cpu_virt_flags(cpuinfo)
    hw = sorted(flags & {"vmx", "svm"})
    probe = kvm_probe(device)
    extra = {"cpu_flags": sorted(flags), **probe}
    if not probe["open"]:
        return _peer("kvm", Status.DEGRADED, probe["error"] or f"{device} missing",
                     "VMs use TCG (-accel tcg); every VM figure is labelled with its accelerator",
                     available=False, version=None, **extra)
    if not probe["create_vm"]:
        return _peer("kvm", Status.DEGRADED,
                     f"{device} opens (API {probe['api']}) but {probe['error']}",
                     "VMs use TCG (-accel tcg)", available=True, version=str(probe["api"]),
                     **extra)
    if not hw:
        return _peer("kvm", Status.DEGRADED,
                     f"KVM device present (API {probe['api']}, KVM_CREATE_VM ok) but no hardware "
                     "virtualization (no vmx/svm in /proc/cpuinfo): software-backed KVM, "
                     "stock guest kernels crawl",
                     "VMs use TCG; figures are labelled with the accelerator (a timed boot in "
                     "the VM harness confirms)", available=True, version=str(probe["api"]),
                     **extra)
    return _peer("kvm", Status.OK, f"KVM API {probe['api']}, KVM_CREATE_VM ok, CPU has {hw[0]}",
                 "VMs use KVM if a timed boot confirms it (VM harness), else TCG",
                 available=True, version=str(probe["api"]), **extra)


# ----------------------------------------------------------------------------- all


def check_all() -> list[Check]:
    """Every peer check, from the diagnostics registry's ``peers`` group."""
    return [check for _, check in REGISTRY.run("peers")]


def versions(checks: list[Check] | None = None) -> dict[str, str | None]:
    """Peer name -> version, for benchmark records' machine info."""
    return {c.name: c.data.get("version") for c in (checks or check_all())}
