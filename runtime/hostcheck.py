"""Host checks for ``isoinspect doctor``: what the runtime needs, tried for real, never guessed.

Every check returns a :class:`~isoinspect.runtime.diagnostics.Check` and is registered in the
diagnostics registry's ``host`` group (doctor runs the group). Checks that change kernel state
do it in a child process in private namespaces (overlay, pivot_root, namespaces) or undo it
before returning (cgroups: a test cgroup is created and removed), so running them leaves the
host as it was.

Paths default to the real kernel interfaces and are arguments, so unit tests can point them at a
temporary tree. Nothing here is imported on the container start path.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from isoinspect.runtime.cgroups.layout import MOUNTINFO, read_layout
from isoinspect.runtime.cgroups.layout import ROOT as CGROUP_ROOT
from isoinspect.runtime.diagnostics import REGISTRY, Check, Entry, Status, register
from isoinspect.runtime.linux.namespaces import PROC_NAMES
from isoinspect.runtime.network.doctor import check as network_check

# doctor's table sections for the host group
HOST, CGROUPS, NAMESPACES = "Host", "cgroups", "Namespaces"


def _run(argv: list[str], timeout: float = 10.0, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, **kw)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ----------------------------------------------------------------------------- host basics


@register("host", "root", HOST)
def check_root(euid: int | None = None) -> Check:
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return Check("root", Status.OK, "running as uid 0")
    return Check("root", Status.FAIL, f"running as uid {euid}",
                 "containers, cgroups and eBPF need root: run isoinspect with sudo")


@register("host", "kernel", HOST)
def check_kernel() -> Check:
    uts = os.uname()
    return Check("kernel", Status.OK, f"{uts.release} ({uts.machine})",
                 data={"release": uts.release, "version": uts.version, "machine": uts.machine})


# ----------------------------------------------------------------------------- cgroups
#
# The layout comes from the runtime's own isoinspect.runtime.cgroups.layout (one source of truth:
# doctor reports what the runtime will do); doctor adds the cgroup2 mount's controller list.

V1_CORE_CONTROLLERS = ("cpu", "memory", "pids")


def detect_cgroup_setup(mountinfo_path: str = MOUNTINFO,
                        cgroup_root: str = CGROUP_ROOT) -> dict[str, Any]:
    """{"mode" (unified/hybrid/legacy, or none without any hierarchy), "v1": {controller:
    mount dir}, "v2_mount", "v2_controllers"} from layout.read_layout."""
    try:
        layout = read_layout(cgroup_root, mountinfo_path)
    except FileNotFoundError:
        return {"mode": "none", "v1": {}, "v2_mount": None, "v2_controllers": []}
    v2_controllers: list[str] = []
    if layout.v2:
        try:
            with open(os.path.join(layout.v2, "cgroup.controllers")) as handle:
                v2_controllers = handle.read().split()
        except OSError:
            pass
    return {"mode": layout.mode, "v1": dict(layout.v1), "v2_mount": layout.v2,
            "v2_controllers": v2_controllers}


def check_cgroup_mode(setup: dict[str, Any]) -> Check:
    mode = setup["mode"]
    v2 = setup["v2_mount"]
    if mode == "hybrid":
        return Check("cgroup mode", Status.OK,
                     f"hybrid: v1 controllers under /sys/fs/cgroup/<controller>, cgroup2 at {v2}"
                     f" (v2 controllers: {', '.join(setup['v2_controllers']) or 'none'})",
                     "containers use the v1 controllers; cgroup v2 is tested in a QEMU guest",
                     data={"mode": mode})
    if mode == "legacy":
        return Check("cgroup mode", Status.OK, "legacy: cgroup v1 only",
                     "containers use the v1 controllers", data={"mode": mode})
    if mode == "unified":
        return Check("cgroup mode", Status.OK, f"unified: cgroup v2 only at {v2}",
                     "containers use cgroup v2", data={"mode": mode})
    return Check("cgroup mode", Status.FAIL, "no cgroup filesystem mounted",
                 "resource limits and the cgroup readers are unavailable", data={"mode": mode})


def check_cgroup_controllers(setup: dict[str, Any]) -> list[Check]:
    v1 = sorted(setup["v1"])
    checks = []
    if v1:
        missing = [c for c in V1_CORE_CONTROLLERS if c not in setup["v1"]]
        checks.append(Check(
            "cgroup v1 controllers",
            Status.judge(not missing or setup["mode"] == "unified", degraded=bool(missing)),
            ", ".join(v1) + (f" (missing: {', '.join(missing)})" if missing else ""),
            f"limits on {', '.join(missing)} unavailable" if missing else "",
            data={"controllers": v1}))
    else:
        checks.append(Check("cgroup v1 controllers",
                            Status.SKIP if setup["mode"] == "unified" else Status.FAIL,
                            "none mounted", "" if setup["mode"] == "unified" else
                            "resource limits unavailable", data={"controllers": []}))
    v2c = setup["v2_controllers"]
    if setup["v2_mount"] is None:
        checks.append(Check("cgroup v2 controllers", Status.SKIP, "cgroup2 not mounted",
                            "cgroup v2 is tested in a QEMU guest", data={"controllers": []}))
    else:
        missing = [c for c in V1_CORE_CONTROLLERS if c not in v2c]
        usable_v2 = not missing
        checks.append(Check(
            "cgroup v2 controllers",
            Status.judge(usable_v2 if setup["mode"] == "unified" else True,
                         degraded=not usable_v2),
            f"{setup['v2_mount']}: {', '.join(v2c) or 'none'}",
            "" if usable_v2 else ("v2 limits are tested in a QEMU guest (the host's controllers "
                                  "are on v1)" if setup["mode"] == "hybrid"
                                  else f"limits on {', '.join(missing)} unavailable"),
            data={"controllers": v2c, "mount": setup["v2_mount"]}))
    return checks


def _probe_cgroup_dir(parent: str, writes: dict[str, str]) -> str | None:
    """mkdir a child of *parent*, write *writes* into it, rmdir it. None if fine, else why."""
    path = os.path.join(parent, f"isoinspect-doctor-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as exc:
        return f"mkdir in {parent}: {exc.strerror}"
    try:
        for name, value in writes.items():
            file = os.path.join(path, name)
            if not os.path.exists(file):
                return f"{file} missing"
            try:
                with open(file, "w") as handle:
                    handle.write(value)
            except OSError as exc:
                return f"write {value} > {name}: {exc.strerror}"
        return None
    finally:
        try:
            os.rmdir(path)
        except OSError:
            pass


def check_cgroups_usable(setup: dict[str, Any]) -> Check:
    """Create a cgroup for cpu, memory and pids and set a limit in each, then remove it."""
    mode = setup["mode"]
    problems: list[str] = []
    tried: list[str] = []
    if mode in ("legacy", "hybrid"):
        probes = {"cpu": {"cpu.cfs_quota_us": "50000"},
                  "memory": {"memory.limit_in_bytes": str(64 << 20)},
                  "pids": {"pids.max": "64"}}
        for controller, writes in probes.items():
            mountpoint = setup["v1"].get(controller)
            if not mountpoint:
                problems.append(f"{controller}: not mounted")
                continue
            tried.append(controller)
            why = _probe_cgroup_dir(mountpoint, writes)
            if why:
                problems.append(f"{controller}: {why}")
        where = "v1"
    elif mode == "unified":
        root = setup["v2_mount"]
        try:
            with open(os.path.join(root, "cgroup.subtree_control")) as handle:
                enabled = handle.read().split()
        except OSError:
            enabled = []
        writes = {}
        if "pids" in enabled:
            writes["pids.max"] = "64"
        if "memory" in enabled:
            writes["memory.max"] = str(64 << 20)
        if "cpu" in enabled:
            writes["cpu.max"] = "50000 100000"
        tried = sorted(writes)
        why = _probe_cgroup_dir(root, writes)
        if why:
            problems.append(why)
        missing = [c for c in V1_CORE_CONTROLLERS if c not in setup["v2_controllers"]]
        if missing:
            problems.append(f"controllers not available: {', '.join(missing)}")
        where = f"v2 ({', '.join(enabled) or 'no'} controllers enabled in {root})"
    else:
        return Check("cgroups usable", Status.FAIL, "no cgroup filesystem",
                     "containers run without resource limits")
    if problems:
        return Check("cgroups usable", Status.FAIL, "; ".join(problems),
                     "resource limits cannot be applied: fix the cgroup mounts or run as root",
                     data={"mode": mode})
    return Check("cgroups usable", Status.OK,
                 f"created a cgroup and set limits ({', '.join(tried)}) on {where}",
                 data={"mode": mode})


def check_device_filter(setup: dict[str, Any]) -> Check:
    """The cgroup v2 device allow-list: attach the eBPF device program (BPF_CGROUP_DEVICE) that
    containers get to a probe cgroup in the cgroup2 mount, then remove it. On v1 and hybrid hosts
    containers use the v1 devices controller; the v2 program is still tried where cgroup2 is
    mounted, so the report says whether this kernel could run v2 containers."""
    name = "device allow-list"
    mode, v2 = setup["mode"], setup["v2_mount"]
    v1_ok = "devices" in setup["v1"]
    why = None
    if v2:
        from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources
        from isoinspect.runtime.cgroups.v2 import devices

        path = os.path.join(v2, f"isoinspect-doctor-devices-{os.getpid()}")
        try:
            os.mkdir(path)
        except OSError as exc:
            why = f"mkdir in {v2}: {exc.strerror}"
        else:
            try:
                devices.apply(path, Resources(device_rules=DEFAULT_DEVICE_RULES))
            except Exception as exc:  # DeviceFilterError: the kernel said no
                why = str(exc)
            finally:
                os.rmdir(path)
    bpf_text = ("no cgroup2 mount" if not v2 else
                f"eBPF device program attached in {v2}" if why is None else why)
    if mode == "unified":
        return Check(name, Status.judge(why is None), bpf_text,
                     "" if why is None else "containers refuse to start: without the program "
                     "(kernel needs CONFIG_CGROUP_BPF) they could open any device node",
                     data={"enforced_by": "bpf"})
    return Check(name, Status.judge(v1_ok), f"v1 devices controller; v2: {bpf_text}",
                 "" if v1_ok else "no v1 devices hierarchy: containers could open any device "
                 "node they create", data={"enforced_by": "v1"})


# ----------------------------------------------------------------------------- overlayfs


def _filesystems(path: str = "/proc/filesystems") -> set[str]:
    try:
        with open(path) as handle:
            return {line.split()[-1] for line in handle if line.strip()}
    except OSError:
        return set()


def _fstype(path: str) -> str:
    """Filesystem type of the mount holding *path* (findmnt; stat -f says ext2/ext3 for ext4)."""
    for argv in (["findmnt", "-n", "-o", "FSTYPE", "--target", path],
                 ["stat", "-f", "-c", "%T", path]):
        try:
            result = _run(argv, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip().splitlines()[0]
    return "?"


@register("host", "overlayfs", HOST)
def check_overlayfs(tmp_parent: str | None = None) -> Check:
    """Mount an overlay for real in a private mount namespace child and write through it."""
    name = "overlayfs"
    if "overlay" not in _filesystems():
        return Check(name, Status.FAIL, "overlay not in /proc/filesystems (module not loaded?)",
                     "images cannot be layered: containers need a copied rootfs")
    unshare = shutil.which("unshare")
    if not unshare:
        return Check(name, Status.ERROR, "unshare(1) missing (util-linux): could not test",
                     "install util-linux")
    work = tempfile.mkdtemp(prefix="isoinspect-doctor-ovl-", dir=tmp_parent)
    try:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(work, sub))
        with open(os.path.join(work, "lower", "from-lower"), "w") as handle:
            handle.write("lower\n")
        script = ('set -e; cd "$1"; '
                  'mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work merged; '
                  'cat merged/from-lower >/dev/null; echo written > merged/from-upper; '
                  'umount merged')
        result = _run([unshare, "--mount", "--propagation", "private", "sh", "-c", script,
                       "sh", work], timeout=15)
        upper_ok = os.path.exists(os.path.join(work, "upper", "from-upper"))
        fs = _fstype(work)
        if result.returncode == 0 and upper_ok:
            return Check(name, Status.OK, f"overlay mounted and written (upper on {fs})",
                         data={"fs": fs})
        return Check(name, Status.FAIL,
                     f"overlay mount failed on {fs}: "
                     f"{_last_line(result.stderr) or 'exit ' + str(result.returncode)}",
                     "images cannot be layered: containers need a copied rootfs",
                     data={"fs": fs})
    except subprocess.TimeoutExpired:
        return Check(name, Status.FAIL, "overlay test timed out", "images cannot be layered")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- namespaces

NAMESPACE_TYPES = PROC_NAMES
_UNSHARE_ARGS = {
    "mnt": ["--mount"], "pid": ["--pid", "--fork"], "uts": ["--uts"], "ipc": ["--ipc"],
    "net": ["--net"], "cgroup": ["--cgroup"], "user": ["--user"], "time": ["--time", "--fork"],
}
_NS_IMPACT = {
    "mnt": "no container filesystem isolation: isoinspect cannot run containers",
    "pid": "containers would see host processes: isoinspect cannot run containers",
    "uts": "no private hostname: isoinspect cannot run containers",
    "ipc": "no IPC isolation: isoinspect cannot run containers",
    "net": "no network isolation: isoinspect cannot run containers",
    "cgroup": "containers see the host's cgroup paths (--cgroupns is refused)",
    "user": "rootless/user-namespaced containers are refused",
    "time": "--timens is refused; the time-namespace cost is not measured",
}


def check_namespace(ns: str) -> Check:
    """Really create a namespace of type *ns* with unshare(1) and run ``true`` inside it."""
    name = f"namespace {ns}"
    if not os.path.exists(f"/proc/self/ns/{ns if ns != 'pid' else 'pid'}"):
        return Check(name, Status.FAIL, f"/proc/self/ns/{ns} missing (kernel built without it)",
                     _NS_IMPACT[ns])
    unshare = shutil.which("unshare")
    if not unshare:
        return Check(name, Status.ERROR, "unshare(1) missing (util-linux): could not test",
                     "install util-linux")
    try:
        result = _run([unshare, *_UNSHARE_ARGS[ns], "true"], timeout=10)
    except subprocess.TimeoutExpired:
        return Check(name, Status.FAIL, "unshare timed out", _NS_IMPACT[ns])
    if result.returncode == 0:
        return Check(name, Status.OK, f"created (unshare {' '.join(_UNSHARE_ARGS[ns])})")
    return Check(name, Status.FAIL, _last_line(result.stderr) or f"exit {result.returncode}",
                 _NS_IMPACT[ns])


for _ns in NAMESPACE_TYPES:
    REGISTRY.add(Entry("host", f"namespace {_ns}", functools.partial(check_namespace, _ns),
                       NAMESPACES))
# the bridge network's line goes after the namespaces
register("host", "bridge networking", NAMESPACES)(network_check)


# ----------------------------------------------------------------------------- seccomp

_SECCOMP_PROBE = r"""
import errno, json, os
try:
    import seccomp
except ImportError as exc:
    print(json.dumps({"import": False, "error": str(exc)})); raise SystemExit(0)
out = {"import": True, "file": getattr(seccomp, "__file__", "?")}
f = seccomp.SyscallFilter(seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(errno.EOPNOTSUPP), "uname")
f.load()
try:
    os.uname(); out["enforced"] = False
except OSError as exc:
    out["enforced"] = exc.errno == errno.EOPNOTSUPP
print(json.dumps(out))
"""


@register("host", "seccomp", HOST)
def check_seccomp(python: str | None = None) -> Check:
    """Import Debian's python3-seccomp and load a real filter in a child (uname -> EOPNOTSUPP)."""
    name = "seccomp"
    try:
        result = _run([python or sys.executable, "-c", _SECCOMP_PROBE], timeout=20)
    except subprocess.TimeoutExpired:
        return Check(name, Status.ERROR, "seccomp probe timed out")
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Check(name, Status.FAIL, f"probe failed: {_last_line(result.stderr)}",
                     "containers run without a seccomp filter")
    if not info.get("import"):
        return Check(name, Status.FAIL,
                     f"python module seccomp not importable ({info.get('error')})",
                     "install python3-seccomp (and use a venv with --system-site-packages); "
                     "until then containers run without a seccomp filter")
    if info.get("enforced"):
        return Check(name, Status.OK, "python3-seccomp imported; a filter was loaded and enforced",
                     data={"module": info.get("file")})
    return Check(name, Status.FAIL, "filter loaded but not enforced",
                 "containers run without a seccomp filter")


# ----------------------------------------------------------------------------- pivot_root


@register("host", "pivot_root", HOST)
def check_pivot_root(tmp_parent: str | None = None) -> Check:
    """pivot_root(2) into a bind-mounted temp dir inside a private mount namespace child."""
    name = "pivot_root"
    unshare, pivot = shutil.which("unshare"), shutil.which("pivot_root")
    if not unshare or not pivot:
        return Check(name, Status.ERROR,
                     "unshare(1)/pivot_root(8) missing (util-linux): could not test")
    new_root = tempfile.mkdtemp(prefix="isoinspect-doctor-pivot-", dir=tmp_parent)
    try:
        os.mkdir(os.path.join(new_root, "old"))
        script = f'set -e; mount --bind "$1" "$1"; cd "$1"; {pivot} . old'
        result = _run([unshare, "--mount", "--propagation", "private", "sh", "-c", script,
                       "sh", new_root], timeout=10)
        if result.returncode == 0:
            return Check(name, Status.OK, "pivot_root into a bind mount worked")
        return Check(name, Status.FAIL, _last_line(result.stderr) or f"exit {result.returncode}",
                     "root filesystem cannot be switched (e.g. rootfs on ramfs): "
                     "containers would need chroot, which isoinspect does not do")
    except subprocess.TimeoutExpired:
        return Check(name, Status.FAIL, "pivot_root test timed out")
    finally:
        shutil.rmtree(new_root, ignore_errors=True)


# ----------------------------------------------------------------------------- cgroups, together


@register("host", "cgroups", CGROUPS)
def cgroup_checks(mountinfo_path: str = MOUNTINFO) -> list[Check]:
    """The cgroup checks share one reading of the mounts, so they are one registered entry."""
    try:
        setup = detect_cgroup_setup(mountinfo_path)
    except OSError as exc:
        return [Check("cgroup mode", Status.FAIL,
                      f"cannot read {mountinfo_path}: {exc.strerror}")]
    from isoinspect.runtime.cgroups import dynmods

    return [check_cgroup_mode(setup), *check_cgroup_controllers(setup),
            check_cgroups_usable(setup), check_device_filter(setup),
            dynmods.check(mountinfo_path)]
