"""What the eBPF inspector can do on this host, found by trying, and which mode follows.

Static facts (tracefs mounted, BTF, required tracepoints, kernel headers) are read from the
filesystem; dynamic ones (BCC importable, tracepoint / raw tracepoint / kprobe / fentry / uprobe
attach) are tried for real with BCC in ONE child process with a timeout, so a hang or a crash of
libbcc cannot take the caller down and BCC's start-up cost is paid once. Each probe that attaches
also triggers its event and checks the BPF program counted it.

Result: :class:`~isoinspect.runtime.diagnostics.Check` objects and an inspector mode:

* ``kprobes+tracepoints`` - everything the inspector can use;
* ``tracepoints``         - no kprobes: phases come from tracepoints only (this project's hosts);
* ``cgroup readers only`` - no BCC, not root, or no tracepoint attach: only cgroupfs is read.

Nothing is cached: every call re-checks. This module knows nothing of isoinspect's runtime
(it only shares the diagnostics vocabulary); ``check_all`` is registered in the diagnostics
registry's ``inspector`` group.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from typing import Any

from isoinspect.runtime.diagnostics import Check, Status, register

MODE_FULL = "kprobes+tracepoints"
MODE_TRACEPOINTS = "tracepoints"
MODE_CGROUP_ONLY = "cgroup readers only"

SECTION = "eBPF/inspector"   # doctor's table section

REQUIRED_TRACEPOINTS = (
    "syscalls:sys_enter_unshare", "syscalls:sys_exit_unshare",
    "syscalls:sys_enter_clone", "syscalls:sys_exit_clone",
    "syscalls:sys_enter_clone3", "syscalls:sys_exit_clone3",
    "syscalls:sys_enter_setns", "syscalls:sys_enter_mount", "syscalls:sys_enter_pivot_root",
    "syscalls:sys_enter_sethostname", "syscalls:sys_enter_execve",
    "sched:sched_process_exec", "sched:sched_process_fork", "sched:sched_process_exit",
    "sched:sched_switch",
    "task:task_newtask",
    "cgroup:cgroup_mkdir", "cgroup:cgroup_rmdir", "cgroup:cgroup_attach_task",
    "oom:mark_victim",
    "signal:signal_generate",
)

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

# Probe names, in the order the child runs them.
ATTACH_TESTS = ("tracepoint", "raw_tracepoint", "kprobe", "fentry", "uprobe")
ATTACH_LABELS = {
    "tracepoint": "attach: tracepoint",
    "raw_tracepoint": "attach: raw tracepoint",
    "kprobe": "attach: kprobe",
    "fentry": "attach: fentry/kfunc",
    "uprobe": "attach: uprobe (libc)",
}


# ----------------------------------------------------------------------------- static facts


def find_tracefs(mountinfo_path: str = "/proc/self/mountinfo") -> str | None:
    """Mountpoint of tracefs (preferring /sys/kernel/tracing), or None when not mounted."""
    mounts = []
    try:
        with open(mountinfo_path) as handle:
            for line in handle:
                if " - " not in line:
                    continue
                pre, post = line.split(" - ", 1)
                if post.split()[0] == "tracefs":
                    mounts.append(pre.split()[4])
    except OSError:
        return None
    for candidate in TRACEFS_CANDIDATES:
        if candidate in mounts:
            return candidate
    return mounts[0] if mounts else None


def check_tracefs(mountinfo_path: str = "/proc/self/mountinfo") -> Check:
    path = find_tracefs(mountinfo_path)
    if path:
        return Check("tracefs", Status.OK, f"mounted at {path}", data={"path": path})
    return Check("tracefs", Status.FAIL, "not mounted",
                 "tracepoints cannot be attached: mount -t tracefs tracefs /sys/kernel/tracing "
                 "(make setup does)")


def check_btf(path: str = "/sys/kernel/btf/vmlinux") -> Check:
    try:
        size = os.stat(path).st_size
    except OSError:
        return Check("BTF", Status.DEGRADED, f"{path} missing",
                     "no fentry/CO-RE; BCC tracepoints are unaffected")
    return Check("BTF", Status.OK, f"{path} ({size / 1e6:.1f} MB)", data={"path": path})


def missing_tracepoints(tracefs: str, required: tuple[str, ...] = REQUIRED_TRACEPOINTS
                        ) -> list[str]:
    missing = []
    for spec in required:
        category, event = spec.split(":", 1)
        if not os.path.exists(os.path.join(tracefs, "events", category, event, "format")):
            missing.append(spec)
    return missing


def check_tracepoints(tracefs: str | None,
                      required: tuple[str, ...] = REQUIRED_TRACEPOINTS) -> Check:
    name = "required tracepoints"
    if not tracefs:
        return Check(name, Status.ERROR, "tracefs not mounted: cannot list tracepoints",
                     "mount tracefs (make setup does)")
    events = os.path.join(tracefs, "events")
    if not os.access(events, os.R_OK | os.X_OK):
        return Check(name, Status.ERROR, f"cannot read {events} (not root?)", "run as root")
    missing = missing_tracepoints(tracefs, required)
    if not missing:
        return Check(name, Status.OK, f"all {len(required)} present "
                     "(syscalls, sched, task, cgroup, oom, signal)",
                     data={"missing": []})
    return Check(name, Status.DEGRADED if len(missing) < len(required) else Status.FAIL,
                 f"{len(required) - len(missing)}/{len(required)} present; "
                 f"missing: {', '.join(missing)}",
                 "events of the missing tracepoints are not reported", data={"missing": missing})


def _headers_release(build_dir: str) -> str | None:
    """UTS_RELEASE of a kernel headers tree."""
    for rel in ("include/generated/utsrelease.h",):
        try:
            with open(os.path.join(build_dir, rel)) as handle:
                for line in handle:
                    if "UTS_RELEASE" in line and '"' in line:
                        return line.split('"')[1]
        except OSError:
            continue
    return None


def check_kernel_headers(release: str | None = None, modules_root: str = "/lib/modules",
                         kheaders: str = "/sys/kernel/kheaders.tar.xz") -> Check:
    release = release or os.uname().release
    build = os.path.join(modules_root, release, "build")
    name = "kernel headers"
    if not os.path.isdir(os.path.join(build, "include")):
        if os.path.exists(kheaders):
            return Check(name, Status.OK, f"{build} missing; BCC uses {kheaders}",
                         data={"release": release, "build": None, "matches": True})
        return Check(name, Status.FAIL, f"{build} missing",
                     "BCC cannot compile probes: install linux-headers-amd64 and link "
                     f"{build} (make setup does)",
                     data={"release": release, "build": None, "matches": False})
    target = os.path.realpath(build)
    headers = _headers_release(build) or os.path.basename(target)
    if headers == release:
        return Check(name, Status.OK, f"{target} (matches {release})",
                     data={"release": release, "build": target, "headers": headers,
                           "matches": True})
    return Check(name, Status.DEGRADED, f"{target} is {headers}, running kernel is {release}",
                 "fine for TRACEPOINT_PROBE (argument layouts come from tracefs); the inspector "
                 "never walks kernel structs",
                 data={"release": release, "build": target, "headers": headers,
                       "matches": False})


def kprobe_facts(tracefs: str | None, config_gz: str = "/proc/config.gz",
                 pmu_dir: str = "/sys/bus/event_source/devices/kprobe") -> list[str]:
    """Why kprobes may be unavailable, as short facts."""
    facts = []
    if not os.path.exists(pmu_dir):
        facts.append("no kprobe PMU")
    if tracefs and not os.path.exists(os.path.join(tracefs, "kprobe_events")):
        facts.append(f"no {tracefs}/kprobe_events")
    try:
        with gzip.open(config_gz, "rt") as handle:
            for line in handle:
                if line.startswith("# CONFIG_KPROBES is not set"):
                    facts.append("CONFIG_KPROBES is not set")
                    break
    except OSError:
        pass
    return facts


# ----------------------------------------------------------------------------- attach tests

# Runs in the child. Prints one JSON object per line: {"test", "ok", ...}. libbcc's own stderr
# is captured per test (fd 2 is redirected to a temp file around each one).
_PROBE_CHILD = r'''
import ctypes, json, os, sys, tempfile, time

def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()

t0 = time.monotonic()
try:
    import bcc
    from bcc import BPF
except Exception as exc:
    emit(test="bcc", ok=False, error="%s: %s" % (type(exc).__name__, exc),
         file=getattr(sys.modules.get("bcc"), "__file__", None))
    raise SystemExit(0)
emit(test="bcc", ok=True, file=bcc.__file__, version=getattr(bcc, "__version__", None),
     seconds=round(time.monotonic() - t0, 3))

libc = ctypes.CDLL(None, use_errno=True)
COUNTER = "BPF_ARRAY(hits, u64, 1);\n"
BUMP = "{ int k = 0; u64 *v = hits.lookup(&k); if (v) __sync_fetch_and_add(v, 1); return 0; }"

def hits(b):
    return b["hits"][ctypes.c_int(0)].value

def tracepoint():
    b = BPF(text=COUNTER + "TRACEPOINT_PROBE(syscalls, sys_enter_unshare) " + BUMP)
    libc.unshare(0)                      # a no-op unshare: fires sys_enter_unshare
    n = hits(b); b.cleanup()
    if n < 1:
        raise RuntimeError("attached, but no event counted after unshare(0)")
    return {"events": n}

def raw_tracepoint():
    b = BPF(text=COUNTER + "RAW_TRACEPOINT_PROBE(sched_process_fork) " + BUMP)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    n = hits(b); b.cleanup()
    if n < 1:
        raise RuntimeError("attached, but no event counted after fork()")
    return {"events": n}

def kprobe():
    b = BPF(text=COUNTER + "int probe(void *ctx) " + BUMP)
    fn = b.get_syscall_fnname("getpid")
    b.attach_kprobe(event=fn, fn_name="probe")
    libc.getpid()
    n = hits(b); b.cleanup()
    if n < 1:
        raise RuntimeError("attached, but no event counted after getpid()")
    return {"events": n, "function": fn.decode()}

def fentry():
    # KFUNC_PROBE programs are loaded and attached when BPF() is constructed.
    b = BPF(text=COUNTER + "KFUNC_PROBE(do_nanosleep) " + BUMP)
    b.cleanup()
    return {}

def uprobe():
    b = BPF(text=COUNTER + "int probe(void *ctx) " + BUMP)
    b.attach_uprobe(name="c", sym="getpid", fn_name="probe", pid=os.getpid())
    libc.getpid()
    n = hits(b); b.cleanup()
    if n < 1:
        raise RuntimeError("attached, but no event counted after libc getpid()")
    return {"events": n}

for name in sys.argv[1:]:
    fn = globals()[name]
    t = time.monotonic()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as err:
        os.dup2(err.fileno(), 2)
        try:
            try:
                info = fn() or {}
                result = dict(test=name, ok=True, **info)
            except Exception as exc:
                result = dict(test=name, ok=False, error="%s: %s" % (type(exc).__name__, exc),
                              errno=ctypes.get_errno())
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        lines = [l for l in err.read().decode(errors="replace").splitlines() if l.strip()]
    result["stderr"] = lines[-6:]
    result["seconds"] = round(time.monotonic() - t, 3)
    emit(**result)
'''


def run_attach_tests(python: str | None = None, timeout: float = 60.0,
                     tests: tuple[str, ...] = ATTACH_TESTS) -> dict[str, dict[str, Any]]:
    """Run the BCC probes in one child; test name ("bcc" and each of *tests*) -> result dict.

    A test the child never reported (hang, crash) gets ``{"ok": None, "error": why}``.
    """
    argv = [python or sys.executable, "-c", _PROBE_CHILD, *tests]
    results: dict[str, dict[str, Any]] = {}
    problem = None
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr, code = "", None
        problem = f"probe child timed out after {timeout:.0f}s"
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and "test" in item:
            results[item.pop("test")] = item
    if problem is None and code not in (0, None):
        tail = [l for l in (stderr or "").splitlines() if l.strip()][-1:]
        problem = (f"probe child died (signal {-code})" if code < 0
                   else f"probe child exited {code}") + (f": {tail[0]}" if tail else "")
    if "bcc" not in results:
        results["bcc"] = {"ok": None, "error": problem or "probe child reported nothing"}
    if results["bcc"].get("ok"):
        for test in tests:
            results.setdefault(test, {"ok": None,
                                      "error": problem or "probe child reported nothing"})
    return results


def _bcc_error_text(result: dict[str, Any]) -> str:
    """A readable reason: BCC's exception plus libbcc's own stderr, with known translations."""
    error = result.get("error") or ""
    if "Need super-user privileges" in error:
        # BCC says this for any EPERM from BPF_PROG_LOAD, even as root.
        error = "BPF_PROG_LOAD refused with EPERM (as root: forbidden by kernel/host policy)"
    stderr = [l for l in result.get("stderr") or []
              if l.strip() and not l.startswith("bpf: Failed to load program")]
    if stderr:
        error += f" [{stderr[-1].strip()}]"
    return error


def attach_checks(results: dict[str, dict[str, Any]], tracefs: str | None) -> list[Check]:
    """Checks for BCC and each attach test from :func:`run_attach_tests` output."""
    bcc = results.get("bcc", {})
    checks = []
    if bcc.get("ok"):
        checks.append(Check("BCC (python3-bpfcc)", Status.OK,
                            f"import bcc ok ({bcc.get('file')})",
                            data={"file": bcc.get("file"), "version": bcc.get("version")}))
    else:
        err = bcc.get("error") or "not importable"
        hint = ("the PyPI package 'bcc' is an unrelated project: pip uninstall bcc; "
                if bcc.get("file") and "dist-packages" not in str(bcc.get("file")) else "")
        checks.append(Check("BCC (python3-bpfcc)",
                            Status.FAIL if bcc.get("ok") is False else Status.ERROR, err,
                            f"{hint}apt-get install python3-bpfcc and use a venv made with "
                            "--system-site-packages; until then: cgroup readers only"))
        for test in ATTACH_TESTS:
            checks.append(Check(ATTACH_LABELS[test], Status.ERROR, "not tried (BCC unavailable)"))
        return checks

    impacts = {
        "tracepoint": ("", "no tracepoints: the inspector falls back to cgroup readers only"),
        "raw_tracepoint": ("", "none: the inspector uses TRACEPOINT_PROBE"),
        "kprobe": ("", "the inspector runs on tracepoints only (syscalls/sched/task/cgroup/oom/"
                       "signal); nothing it reports needs kprobes"),
        "fentry": ("", "no fentry/fexit: the inspector runs on tracepoints"),
        "uprobe": ("", "user-space probes (runtime-side markers) unavailable"),
    }
    for test in ATTACH_TESTS:
        result = results.get(test)
        label = ATTACH_LABELS[test]
        if result is None:
            continue
        if result.get("ok") is True:
            extra = f", {result['events']} event(s) counted" if "events" in result else ""
            checks.append(Check(label, Status.OK, f"loaded and attached{extra}",
                                impacts[test][0], data=result))
            continue
        if result.get("ok") is None:
            checks.append(Check(label, Status.ERROR, result.get("error", "not tried"),
                                impacts[test][1],
                                data=result))
            continue
        detail = _bcc_error_text(result)
        if test == "kprobe":
            facts = kprobe_facts(tracefs)
            if facts:
                # BCC's own message ("not traceable ... inlined ...") is misleading here;
                # its full text stays in data.
                detail = f"attach failed: kernel has no kprobes ({'; '.join(facts)})"
        checks.append(Check(label, Status.FAIL if test == "tracepoint" else Status.DEGRADED,
                            detail, impacts[test][1], data=result))
    return checks


def inspector_mode(results: dict[str, dict[str, Any]], euid: int | None = None) -> str:
    euid = os.geteuid() if euid is None else euid
    if euid != 0 or not results.get("bcc", {}).get("ok"):
        return MODE_CGROUP_ONLY
    if not results.get("tracepoint", {}).get("ok"):
        return MODE_CGROUP_ONLY
    if results.get("kprobe", {}).get("ok"):
        return MODE_FULL
    return MODE_TRACEPOINTS


def mode_check(mode: str, results: dict[str, dict[str, Any]]) -> Check:
    if mode == MODE_FULL:
        return Check("inspector mode", Status.OK, mode, data={"mode": mode})
    if mode == MODE_TRACEPOINTS:
        return Check("inspector mode", Status.DEGRADED, mode,
                     "start-up phases, namespace costs, OOM and pids events come from "
                     "tracepoints; kprobe-only extras are off", data={"mode": mode})
    why = ("not root" if os.geteuid() != 0 else
           "BCC unavailable" if not results.get("bcc", {}).get("ok") else
           "tracepoints cannot be attached")
    return Check("inspector mode", Status.DEGRADED, f"{mode} ({why})",
                 "no kernel events: only cgroupfs counters (memory/pids/cpu) are read",
                 data={"mode": mode})


def check_all(python: str | None = None, timeout: float = 60.0
              ) -> tuple[list[Check], str]:
    """Every inspector capability, and the inspector mode that follows."""
    tracefs = find_tracefs()
    checks = [check_tracefs(), check_btf(), check_tracepoints(tracefs), check_kernel_headers()]
    if os.geteuid() == 0:
        results = run_attach_tests(python=python, timeout=timeout)
    else:
        results = run_attach_tests(python=python, timeout=timeout, tests=())
        for test in ATTACH_TESTS:
            results[test] = {"ok": None, "error": "not tried: needs root"}
    checks.extend(attach_checks(results, tracefs))
    mode = inspector_mode(results)
    checks.append(mode_check(mode, results))
    return checks, mode


@register("inspector", "capabilities", SECTION)
def capability_checks() -> list[Check]:
    """Doctor's inspector section: :func:`check_all`'s checks, the mode last (its ``data``)."""
    return check_all()[0]
