"""``isoinspect exposure``: how much of the host kernel each isolation unit touches.

The same workload runs under each runtime (``Target.start(argv, Limits())``: one adapter per
peer, Docker's defaults and seccomp profile for the OCI peers; the VM is a ``GuestVM`` run) and
the syscall_counts probe counts, in the kernel, every host system call of the unit's host
processes over one window:

* containers (isoinspect, runc, docker): the container's cgroup (v2 id; on this hybrid host the
  unified hierarchy's) and its pid tree;
* runsc: the sandbox (Sentry) and Gofer host processes, found by the runsc state root on their
  command lines and by the sandbox pid's tree; the container's own processes are Sentry tasks
  with no host pid, so any host process of the workload itself would show up by name;
* qemu: the QEMU process (a child of this process, watched from its fork).

Windows: ``idle`` (after the workload's ready line, ``--duration`` seconds of ``sleep``);
``startup`` (from before the start, every process the start forks and the runtime's daemons,
to the workload's first output); ``script`` and ``-- CMD`` (from the ready line to the end
line; a guard sleep of GUARD_S between them makes sure the window is open before the work
starts, and calls per second are over the work's own time, the window minus the guard);
``overhead`` and each of its tests by name (the workload program of bench overhead, its layer
put into each image by the overhead runners' install step): from the program's first output to
its ``@@W-END``, and one window per test between the program's pauses (``-p``: it sleeps while
the counters are read), divided by the test's operations (warm-up included): host syscalls per
workload operation, the figure that puts ptrace-gVisor, containers and the VM side by side.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

from isoinspect.runtime.errors import IsoinspectError, UsageError

RUNTIMES = ("isoinspect", "runc", "runsc", "docker", "qemu")
WORKLOADS = ("idle", "startup", "script")
PROGRAM_WORKLOAD = "overhead"           # every test of the workload program, one short pass
PROGRAM_TEST_MS = 100                   # -t of each test
#: -p: the program sleeps this long around each test while the counters are read (the output
#: is polled every 10 ms; Docker's log file on a busy host and a TCG guest's 9p share lag more)
PROGRAM_PAUSE_MS = {"docker": 1000, "qemu": 1000}
DEFAULT_PROGRAM_PAUSE_MS = 300
PROGRAM_END = "@@W-END"
READY = "@@EXPOSURE-READY"
END = "@@EXPOSURE-END"
GUARD_S = 0.5
SETTLE_S = 0.2
WINDOW_TIMEOUT_S = 300.0
GUEST_MARKS = "/run/isoinspect-exposure"

#: file, process and network work for a fixed amount (busybox applets by name, so the same
#: script runs in a busybox container and in the Debian guest); ``program_workload`` runs the
#: overhead benchmark's workload program instead
SCRIPT = r"""
i=0
while [ $i -lt 100 ]; do
  busybox echo "line $i" > /tmp/isoinspect-exposure.txt
  busybox cat /tmp/isoinspect-exposure.txt > /dev/null
  busybox ls / > /dev/null
  busybox rm -f /tmp/isoinspect-exposure.txt
  ( : )
  busybox nc -w 1 127.0.0.1 7 < /dev/null > /dev/null 2>&1
  i=$((i + 1))
done
"""


@dataclass
class Workload:
    """What runs in the unit: ``work`` (a shell command; None for idle/startup); ``tests``: the
    workload program's tests it runs (program workloads: one window per test)."""

    name: str
    work: str | None = None
    tests: tuple[str, ...] = ()

    def script(self, mark: str, stay: bool, work: str | None = None) -> str:
        """The shell text run in the unit: ready mark, guard, work, end mark, then idle."""
        work = self.work if work is None else work
        lines = [f"mark() {{ {mark}; }}"]
        if stay:    # started first: after the end mark the shell only waits (no exec to count)
            lines.append("sleep 100000 &")
        lines.append(f"mark {READY}")
        if work is not None:
            lines += [f"sleep {GUARD_S}", work, f"mark {END}"]
        if stay:
            lines.append("wait")
        return "\n".join(lines)


def workload_names() -> list[str]:
    """Every ``--workload`` name: ours, ``overhead`` and each of its tests."""
    from isoinspect.benches.overhead.program import TEST_NAMES

    return [*WORKLOADS, PROGRAM_WORKLOAD, *TEST_NAMES]


def program_command(binary: str, tests: tuple[str, ...], pause_ms: int) -> str:
    """The workload program's command line (the overhead suite's, plus the pauses)."""
    from isoinspect.benches.overhead.suite import workload_suite

    argv = workload_suite().argv(tests, PROGRAM_TEST_MS, binary)
    argv[1:1] = ["-p", str(pause_ms)]
    return shlex.join(argv)


def program_workload(name: str) -> Workload:
    """``overhead`` (every test) or one test of the overhead benchmark's workload program, run
    from its place in the containers' images (the VM's differs: ``run_vm``)."""
    from isoinspect.benches.overhead.program import TEST_NAMES
    from isoinspect.benches.overhead.suite import workload_suite

    if name == PROGRAM_WORKLOAD:
        tests = TEST_NAMES
    elif name in TEST_NAMES:
        tests = (name,)
    else:
        raise UsageError(f"unknown workload {name!r}: choose {', '.join(workload_names())} "
                         "or '-- CMD'")
    return Workload(name, program_command(workload_suite().binary, tests,
                                          DEFAULT_PROGRAM_PAUSE_MS), tests)


def pause_ms(runtime: str) -> int:
    return PROGRAM_PAUSE_MS.get(runtime, DEFAULT_PROGRAM_PAUSE_MS)


def make_workload(name: str, command: list[str] | None) -> Workload:
    if command:
        return Workload("command", shlex.join(command))
    if name in ("idle", "startup"):
        return Workload(name)
    if name == "script":
        return Workload(name, SCRIPT.strip())
    return program_workload(name)


def select_runtimes(text: str) -> list[str]:
    wanted = list(RUNTIMES) if text == "all" else [p.strip() for p in text.split(",") if p]
    unknown = [n for n in wanted if n not in RUNTIMES]
    if unknown or not wanted:
        raise UsageError(f"unknown runtime {', '.join(unknown) or text!r}: choose from "
                         f"{', '.join(RUNTIMES)} or all")
    return wanted


# ----------------------------------------------------------------------- what is allowed


@dataclass
class Allowed:
    """What the unit may do, next to what it did: read from the workload's host process (the
    Sentry for runsc, QEMU for the VM) with the scorecard's readers."""

    pid: int | None
    process: str
    seccomp: str | None
    seccomp_filters: int | None
    seccomp_allowed_syscalls: int | None
    seccomp_profile: str
    capabilities_effective: int | None
    capabilities: list[str] = field(default_factory=list)
    namespaces_shared_with_host: list[str] = field(default_factory=list)
    shares_host_kernel: str | bool = True


def profile_allowed_count() -> int | None:
    """Syscalls of this host's ABI the runtime's default profile lets through (those it denies
    only for some arguments count as allowed)."""
    from isoinspect.inspector.syscall_names import native_table
    from isoinspect.runtime.linux.seccomp_profile import default_profile

    table = native_table()
    if not table:
        return None
    section = default_profile()
    if section.get("defaultAction") != "SCMP_ACT_ALLOW":
        allowed = {name for rule in section["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
                   for name in rule["names"]}
        return len(set(table.values()) & allowed)
    denied = {name for rule in section["syscalls"] if not rule.get("args")
              for name in rule["names"]}
    return len(set(table.values()) - denied)


PROFILES = {
    "isoinspect": "isoinspect default (runtime/linux/seccomp_default.json)",
    "runc": "isoinspect default, in the bundle",
    "runsc": "the bundle's profile is applied inside the sandbox only with --oci-seccomp "
             "(not set: the workload has no filter); the host filter shown is runsc's own on "
             "the Sentry",
    "docker": "Docker's built-in default (not readable from here)",
    "qemu": "QEMU's own (-sandbox off by default)",
}


def allowed_of(runtime: str, pid: int | None) -> Allowed:
    from isoinspect.inspector.exposure import comm_of
    from isoinspect.inspector.scorecard import scorecard

    shares = {"qemu": False, "runsc": "via the Sentry"}.get(runtime, True)
    if pid is None:
        return Allowed(None, "?", None, None, None, PROFILES[runtime], None,
                       shares_host_kernel=shares)
    try:
        card = scorecard(pid)      # vs this host process (/proc/1 may be unreadable)
    except OSError:
        return Allowed(pid, "gone", None, None, None, PROFILES[runtime], None,
                       shares_host_kernel=shares)
    counted = profile_allowed_count() if runtime in ("isoinspect", "runc") else None
    effective = card["capabilities"]["effective"]
    return Allowed(pid, comm_of(pid) or "?", card["seccomp"], card.get("seccomp_filters"),
                   counted, PROFILES[runtime], len(effective), effective,
                   sorted(n for n, state in card["namespaces"].items()
                          if state == "shared with host"), shares)


# ---------------------------------------------------------------------------- the units


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), from /proc."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                out += [int(p) for p in handle.read().split()]
        except OSError:
            continue
    return out


def pids_with_argument(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (runsc's sandbox and gofer carry the
    state root they were started with)."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def unit_pids(runtime: str, target, box) -> list[int]:
    """The unit's host processes now: the box's tree, its cgroup's processes (on a hierarchy
    where it has a cgroup of its own) and, for runsc, the sandbox's and gofer's trees."""
    from isoinspect.benches.density.procmem import descendants, process_table

    table = process_table()
    roots = {box.pid}
    if runtime == "runsc" and getattr(target, "state_root", None):
        roots.update(pids_with_argument(f"--root={target.state_root}"))
    pids = descendants(roots, table)
    view = box.view
    for name, path in view.paths.items():
        if path.strip("/") and name in view.dirs:
            from isoinspect.runtime.cgroups import fs

            pids.update(fs.read_pids(view.dirs[name]) or ())
            break
    pids.discard(os.getpid())
    return sorted(pids)


def watch_unit(counter, runtime: str, target, box) -> list[int]:
    view = box.view
    if view.paths.get("unified", "/").strip("/"):   # a cgroup of its own in the v2 hierarchy
        cgroup_id = view.cgroup_id()
        if cgroup_id:
            counter.watch_cgroup(cgroup_id)
    pids = unit_pids(runtime, target, box)
    for pid in pids:
        counter.watch_pid(pid)
    return pids


# ------------------------------------------------------------------------------ results


@dataclass
class TestExposure:
    """One test of the workload program: its window's host syscalls per operation.

    ``ops`` counts every operation between the program's pauses (warm-up included: the
    window holds their syscalls too); ``value unit`` is the program's own figure."""

    test: str
    status: str                        # the program's: ok | unsupported | error
    reason: str = ""
    ops: int = 0
    value: float | None = None
    unit: str = ""
    seconds: float = 0.0
    calls: int = 0
    calls_per_op: float | None = None
    distinct: int = 0
    top: list[dict] = field(default_factory=list)          # name, calls, per_op
    calls_by_name: dict[str, int] = field(default_factory=dict)
    calls_by_process: dict[str, int] = field(default_factory=dict)


@dataclass
class ExposureResult:
    runtime: str
    workload: str
    status: str                        # ok | error | unavailable
    reason: str = ""
    figures: dict = field(default_factory=dict)
    work_seconds: float | None = None
    allowed: dict = field(default_factory=dict)
    bpf: dict = field(default_factory=dict)
    watched: dict = field(default_factory=dict)
    tests: list[TestExposure] = field(default_factory=list)

    def record(self) -> dict:
        """The RunRecord result (kind "exposure")."""
        data = asdict(self)
        figures = data.pop("figures")
        return {"kind": "exposure", "metric": f"syscalls/{self.workload}", **data, **figures}


def _wait_mark(read, mark: str | re.Pattern, timeout: float, alive=None,
               interval: float = 0.01) -> float:
    """When ``mark`` (text, or a pattern) showed up in the output; raises if the unit died
    or it did not come within ``timeout``."""
    deadline = time.monotonic() + timeout
    found = mark.search if isinstance(mark, re.Pattern) else lambda text: mark in text
    name = mark.pattern if isinstance(mark, re.Pattern) else mark
    while True:
        if found(read()):
            return time.monotonic()
        if alive is not None and not alive():
            raise IsoinspectError(f"the workload ended before {name}: {read()[-300:]!r}")
        if time.monotonic() > deadline:
            raise IsoinspectError(f"no {name} within {timeout:.0f} s: {read()[-300:]!r}")
        time.sleep(interval)


def _program_line(prefix: str, test: str) -> re.Pattern:
    """The program's line for ``test`` (not a longer name's), also inside Docker's JSON log."""
    return re.compile(re.escape(f"{prefix} test={test}") + r"(?![\w])")


@dataclass
class TestWindow:
    test: str
    counts: object
    seconds: float


@dataclass
class Window:
    counts: object
    seconds: float
    work_seconds: float | None
    tests: list[TestWindow] = field(default_factory=list)


def measure_program(counter, tests: tuple[str, ...], read, alive) -> Window:
    """The program's windows: each test's between its pauses (``@@W-BEGIN`` read, counters
    read while it sleeps, then its result line while it sleeps again), the whole one from the
    first ``@@W-BEGIN`` to ``@@W-END``."""
    _wait_mark(read, READY, WINDOW_TIMEOUT_S, alive)
    windows: list[TestWindow] = []
    first = start = None
    for test in tests:
        _wait_mark(read, _program_line("@@W-BEGIN", test), WINDOW_TIMEOUT_S, alive)
        begin, began = counter.snapshot(), time.monotonic()
        if first is None:
            first, start = begin, began
        _wait_mark(read, _program_line("@@W", test), WINDOW_TIMEOUT_S, alive)
        windows.append(TestWindow(test, counter.snapshot().minus(begin),
                                  time.monotonic() - began))
    end = _wait_mark(read, PROGRAM_END, WINDOW_TIMEOUT_S, alive)
    after = counter.snapshot(False)
    return Window(after.minus(first), end - start, end - start, windows)


def _significant(number: float) -> float:
    return float(f"{number:.6g}")


def per_op_text(number: float) -> str:
    """A calls-per-op figure for a table: 3 decimals below 10 (1.000 is the bare syscall)."""
    return f"{number:.3f}" if number < 10 else f"{number:.1f}" if number < 1000 else f"{number:.0f}"


def per_test_exposures(window: Window, output: str, comms: dict) -> list[TestExposure]:
    """Each test's window next to the program's line for it: calls per operation."""
    from isoinspect.benches.overhead.program import parse
    from isoinspect.inspector.exposure import summarize

    try:
        lines = {figure.test: figure for figure in parse(output)}
    except ValueError as exc:
        raise IsoinspectError(str(exc)) from None
    results = []
    for part in window.tests:
        figures = summarize(part.counts, part.seconds, comms, top=5)
        line = lines.get(part.test)
        if line is None:
            results.append(TestExposure(part.test, "error", "no line in the output"))
            continue
        if line.ok and part.seconds * 1e9 < line.ops * line.ns_per_op:
            results.append(TestExposure(   # the begin line was read after the test started
                part.test, "error", "window_shorter_than_the_test (output read late: pause "
                "too short for this host)", seconds=round(part.seconds, 3)))
            continue
        ops = line.all_ops or line.ops
        per_op = _significant(figures.total / ops) if line.ok and ops else None
        results.append(TestExposure(
            part.test, line.status, line.reason, ops if line.ok else 0, line.value, line.unit,
            round(part.seconds, 3), figures.total, per_op, figures.distinct,
            [{"name": row.name, "calls": row.calls,
              "per_op": _significant(row.calls / ops) if line.ok and ops else None}
             for row in figures.top],
            figures.calls_by_name, figures.calls_by_process))
    return results


def measure_window(counter, workload: Workload, read, alive, duration: float,
                   before=None, began: float | None = None) -> Window:
    """Wait for the unit's marks and take the snapshots that bound the window."""
    if workload.tests:
        return measure_program(counter, workload.tests, read, alive)
    if workload.name == "startup":
        end = _wait_mark(read, READY, WINDOW_TIMEOUT_S, alive)
        return Window(counter.snapshot(False).minus(before), end - began, end - began)
    _wait_mark(read, READY, WINDOW_TIMEOUT_S, alive)
    if workload.work is None:                      # idle
        time.sleep(SETTLE_S)
        first, start = counter.snapshot(), time.monotonic()
        time.sleep(duration)
        after, end = counter.snapshot(False), time.monotonic()
        return Window(after.minus(first), end - start, end - start)
    first, start = counter.snapshot(), time.monotonic()
    end = _wait_mark(read, END, WINDOW_TIMEOUT_S, alive)
    after = counter.snapshot(False)
    return Window(after.minus(first), end - start, max(end - start - GUARD_S, 1e-3))


def fast_reader(runtime: str, box):
    """The box's output, read cheaply enough to poll every 10 ms: Docker's ``docker logs``
    costs a CLI start and a daemon round trip (~100 ms here, which would stretch the window),
    so its JSON log file is read directly."""
    if runtime != "docker":
        return box.output
    import subprocess

    path = subprocess.run(["docker", "inspect", "-f", "{{.LogPath}}", box.name],
                          capture_output=True, text=True, timeout=30).stdout.strip()
    if not path:
        return box.output

    def read() -> str:
        try:
            with open(path, errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""
    return read


def run_container(counter, runtime: str, target, workload: Workload,
                  duration: float) -> ExposureResult:
    from isoinspect.benches.bundle import Limits
    from isoinspect.benches.targets.isoinspect import InProcessTarget
    from isoinspect.inspector.exposure import cost_between, summarize

    me = os.getpid()
    work = None
    if workload.tests:
        from isoinspect.benches.overhead.suite import workload_suite

        work = program_command(workload_suite().binary, workload.tests, pause_ms(runtime))
    argv = ["/bin/sh", "-c", workload.script("echo \"$1\"", stay=True, work=work)]
    startup = workload.name == "startup"
    daemons = target.trace_pids() if startup else []
    in_process = isinstance(target, InProcessTarget)
    cost0 = counter.cost()
    before, began = counter.snapshot(), time.monotonic()
    if startup:
        counter.watch_children_of(me)
        for pid in daemons:
            counter.watch_pid(pid)
        if in_process:      # the runtime is this process: its work is the start
            counter.watch_pid(me)
    box = None
    try:
        try:
            box = target.start(argv, Limits())
        finally:
            counter.unwatch_children_of(me)
            for pid in [*daemons, *([me] if in_process else [])]:
                counter.tracer.unwatch_pid(pid)
        pids = watch_unit(counter, runtime, target, box)
        window = measure_window(counter, workload, fast_reader(runtime, box), box.alive,
                                duration, before, began)
        counter.note_comms(unit_pids(runtime, target, box))
        figures = summarize(window.counts, window.work_seconds or window.seconds,
                            counter.comms)
        allowed = allowed_of(runtime, box.pid)
        watched = {"cgroup": box.view.path, "pids": pids,
                   "window_seconds": round(window.seconds, 3)}
        if runtime == "runsc":   # the workload's processes are Sentry tasks: no host syscalls
            watched["non_sandbox_processes"] = sorted(
                name for name in figures.calls_by_process
                if not name.startswith("runsc") and name != "exe")
        tests = (per_test_exposures(window, box.output(), counter.comms)
                 if workload.tests else [])
        return ExposureResult(runtime, workload.name, "ok", figures=figures.to_dict(),
                              work_seconds=round(window.work_seconds, 3),
                              allowed=asdict(allowed), bpf=cost_between(cost0, counter.cost()),
                              watched=watched, tests=tests)
    finally:
        if box is not None:
            box.stop()
        counter.unwatch_all()


def run_vm(counter, workload: Workload, duration: float, workdir: str) -> ExposureResult:
    """The workload in a QEMU guest (busybox sh); QEMU, a child of this process, is watched
    from its fork; marks (and the workload program's lines) come back through a read-write
    share. The program's layer goes in as bench overhead's QEMU runner puts it in: a read-only
    share copied into the guest's root before the ready mark."""
    from isoinspect.benches.vm import GuestVM
    from isoinspect.inspector.exposure import cost_between, summarize

    marks = tempfile.mkdtemp(prefix="isoinspect-exposure-vm-", dir=workdir)
    shares = [(marks, GUEST_MARKS, "rw")]
    work, install = None, ""
    if workload.tests:
        from isoinspect.benches.overhead import runners
        from isoinspect.benches.overhead.suite import workload_suite

        suite = workload_suite()
        shares.append(runners.vm_layer_share(suite.layer()))
        install = runners.VM_INSTALL + "\n"
        work = (program_command(runners.VM_ROOT + suite.binary, workload.tests,
                                pause_ms("qemu")) + f" >> {GUEST_MARKS}/marks")
    vm = GuestVM(cpus=1, memory_mb=512, extra_shares=shares)
    accel = vm.choose_accel()
    text = install + workload.script(f"echo \"$1\" >> {GUEST_MARKS}/marks",
                                     stay=workload.work is None, work=work)
    if workload.work is None:           # idle/startup: stay up for the window, then power off
        text = text.replace("sleep 100000 &", f"sleep {duration + 30:.0f} &")
    done: dict = {}
    me = os.getpid()

    def boot() -> None:
        try:
            done["result"] = vm.run(["busybox", "sh", "-c", text], timeout=WINDOW_TIMEOUT_S)
        except BaseException as exc:   # noqa: BLE001 - reported by the caller
            done["error"] = exc

    def read() -> str:
        try:
            with open(os.path.join(marks, "marks")) as handle:
                return handle.read()
        except OSError:
            return ""

    seen: dict = {}

    def alive() -> bool:
        """Also finds QEMU and reads what it is allowed while it runs (a guest that is done
        powers off at once, maybe before the window's end is read)."""
        if "allowed" not in seen:
            pid = next((p for p in _children(me) if (comm_of_safe(p) or "").startswith("qemu")),
                       None)
            if pid is not None:
                seen["qemu"], seen["allowed"] = pid, allowed_of("qemu", pid)
        return thread.is_alive()

    cost0 = counter.cost()
    before, began = counter.snapshot(), time.monotonic()
    counter.watch_children_of(me)
    thread = threading.Thread(target=boot, daemon=True)
    thread.start()
    qemu = None
    try:
        window = measure_window(counter, workload, read, alive, duration, before, began)
        alive()
        qemu = seen.get("qemu")
        figures = summarize(window.counts, window.work_seconds or window.seconds,
                            counter.comms)
        tests = per_test_exposures(window, read(), counter.comms) if workload.tests else []
        allowed = seen.get("allowed") or allowed_of("qemu", None)
    finally:
        counter.unwatch_children_of(me)
        if workload.work is not None:       # the guest powers off after its end mark
            thread.join(timeout=30)
        if thread.is_alive():               # idle/startup, or interrupted: stop QEMU here
            for pid in _children(me):
                if (comm_of_safe(pid) or "").startswith("qemu"):
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
        thread.join(timeout=60)
        counter.unwatch_all()
        shutil.rmtree(marks, ignore_errors=True)
    if "error" in done and workload.work is not None:   # idle/startup: QEMU killed on purpose
        raise done["error"]
    return ExposureResult("qemu", workload.name, "ok", figures=figures.to_dict(),
                          work_seconds=round(window.work_seconds, 3), allowed=asdict(allowed),
                          bpf={**cost_between(cost0, counter.cost()), "accelerator": accel},
                          watched={"pids": [qemu] if qemu else [],
                                   "window_seconds": round(window.seconds, 3)}, tests=tests)


def comm_of_safe(pid: int) -> str | None:
    from isoinspect.inspector.exposure import comm_of

    return comm_of(pid)


def make_target(runtime: str):
    from isoinspect.benches.targets import DockerTarget, RuncTarget, RunscTarget
    from isoinspect.benches.targets.isoinspect import IsoinspectLibrary

    return {"isoinspect": IsoinspectLibrary, "runc": RuncTarget, "runsc": RunscTarget,
            "docker": DockerTarget}[runtime]()


def run_one(counter, runtime: str, workload: Workload, duration: float, workdir: str,
            target=None) -> ExposureResult:
    """One runtime, one workload; never raises for a runtime's own failure."""
    if runtime == "qemu":
        if not shutil.which("qemu-system-x86_64"):
            return ExposureResult(runtime, workload.name, "unavailable",
                                  "qemu-system-x86_64 not installed")
        try:
            return run_vm(counter, workload, duration, workdir)
        except KeyboardInterrupt:
            raise
        except Exception as exc:   # noqa: BLE001 - one runtime's failure, recorded
            return ExposureResult(runtime, workload.name, "error", str(exc)[:500])
    own = target is None
    runner = None
    if own and workload.tests:     # the program's layer goes in by bench overhead's install
        from isoinspect.benches.overhead import runners

        runner = runners.make(runtime)
        target = runner.target
    target = target or make_target(runtime)
    ok, why = target.available()
    if not ok:
        return ExposureResult(runtime, workload.name, "unavailable", why)
    try:
        if runner is not None:
            from isoinspect.benches.overhead.suite import workload_suite

            runner.prepare(workdir, workload_suite())
        elif own:
            target.prepare(workdir)
        return run_container(counter, runtime, target, workload, duration)
    except KeyboardInterrupt:
        raise
    except Exception as exc:   # noqa: BLE001 - one runtime's failure, recorded
        return ExposureResult(runtime, workload.name, "error", f"{type(exc).__name__}: "
                              f"{str(exc)[:500]}")
    finally:
        if runner is not None:
            runner.cleanup()
        elif own:
            target.cleanup()


# --------------------------------------------------------------------------------- output


def format_table(results: list[ExposureResult], top: int = 5) -> str:
    lines = [f"{'RUNTIME':<11} {'WORKLOAD':<9} {'STATUS':<6} {'CALLS':>8} {'DISTINCT':>8} "
             f"{'PER S':>9} {'FAILED':>7} {'SECCOMP':<16} {'CAPS':>4} {'HOST NS':<22} "
             f"{'HOST KERNEL':<14} TOP SYSCALLS"]
    for r in results:
        if r.status != "ok":
            lines.append(f"{r.runtime:<11} {r.workload:<9} {r.status:<6} {r.reason[:100]}")
            continue
        f, a = r.figures, r.allowed
        seccomp = a.get("seccomp") or "-"
        if a.get("seccomp_allowed_syscalls"):
            seccomp += f" {a['seccomp_allowed_syscalls']} ok"
        elif a.get("seccomp_filters"):
            seccomp += f" ({a['seccomp_filters']} f)"
        names = a.get("namespaces_shared_with_host") or []
        shared = f"all {len(names)}" if len(names) >= 7 else ",".join(names) or "none"
        host = a.get("shares_host_kernel")
        host = "yes" if host is True else "no" if host is False else str(host)
        tops = ", ".join(f"{row['name']} {row['calls']}" for row in f["top"][:top])
        lines.append(f"{r.runtime:<11} {r.workload:<9} {'ok':<6} {f['total']:>8} "
                     f"{f['distinct']:>8} {f['per_second']:>9.1f} "
                     f"{f['failed_share'] * 100:>6.1f}% {seccomp[:16]:<16} "
                     f"{a.get('capabilities_effective') if a.get('capabilities_effective') is not None else '-':>4} "
                     f"{shared[:22]:<22} {host[:14]:<14} {tops}")
    per_op = format_per_op(results)
    if per_op:
        lines += ["", per_op]
    costs = [r.bpf for r in results if r.bpf]
    if costs:
        runs = sum(c["run_cnt"] for c in costs)
        ns = sum(c["run_time_ns"] for c in costs)
        lines.append(f"BPF cost: {runs} program runs, {ns / 1e6:.1f} ms in BPF "
                     f"({ns / runs if runs else 0:.0f} ns per run, every syscall of the "
                     "machine passes the filter); lost events 0 by construction (counts stay "
                     "in BPF maps)")
    return "\n".join(lines)


def format_per_op(results: list[ExposureResult]) -> str:
    """Host syscalls per workload operation: one row per test of the workload program, one
    column per runtime, then each cell's top syscalls ('' without program workloads)."""
    done = [r for r in results if r.status == "ok" and r.tests]
    if not done:
        return ""
    names = [t.test for t in done[0].tests]
    cells = {(r.runtime, t.test): t for r in done for t in r.tests}

    def cell(test: TestExposure | None) -> str:
        if test is None:
            return "-"
        if test.calls_per_op is None:
            return test.status
        return per_op_text(test.calls_per_op)

    lines = ["HOST SYSCALLS PER WORKLOAD OPERATION (ops: the program's, warm-up included)",
             f"{'TEST':<16}" + "".join(f"{r.runtime:>12}" for r in done)]
    for name in names:
        lines.append(f"{name:<16}" + "".join(f"{cell(cells.get((r.runtime, name))):>12}"
                                             for r in done))
    lines.append("top syscalls per op:")
    for name in names:
        for r in done:
            test = cells.get((r.runtime, name))
            if test is not None and test.top and test.calls_per_op is not None:
                tops = ", ".join(f"{row['name']} {row['per_op']:.3g}" for row in test.top[:4])
                lines.append(f"  {name:<15} {r.runtime:<10} {test.ops:>9} ops  {tops}")
    return "\n".join(lines)


def _progress(result: ExposureResult) -> None:
    if result.status == "ok":
        f = result.figures
        sys.stderr.write(f"  {result.runtime}/{result.workload}: {f['total']} host syscalls, "
                         f"{f['distinct']} distinct, {f['per_second']:.0f}/s\n")
        for test in result.tests:
            per_op = "-" if test.calls_per_op is None else per_op_text(test.calls_per_op)
            sys.stderr.write(f"    {test.test}: {per_op} host syscalls/op ({test.status})\n")
    else:
        sys.stderr.write(f"  {result.runtime}/{result.workload}: {result.status}: "
                         f"{result.reason[:200]}\n")


def run_command(runtime: str, workload_name: str, duration: float, json_out: str | None,
                results_dir: str | None, command: list[str] | None) -> int:
    """``isoinspect exposure``: what the CLI calls; the exit code (0 unless every runtime
    failed)."""
    from isoinspect.benches.record import RunRecord
    from isoinspect.benches.startup import interrupt_on_signals
    from isoinspect.inspector.exposure import SyscallCounter
    from isoinspect.inspector.tracer import TracerUnavailable

    runtimes = select_runtimes(runtime)
    if not duration > 0:
        raise UsageError(f"--duration must be > 0, not {duration}")
    workload = make_workload(workload_name, command)
    try:
        counter = SyscallCounter()
    except TracerUnavailable as exc:
        raise IsoinspectError(f"exposure counts syscalls with eBPF: {exc}".replace(
            "; cgroup readers only", "").replace(": cgroup readers only", "")) from None
    interrupt_on_signals()
    workdir = tempfile.mkdtemp(prefix="isoinspect-exposure-")
    record = RunRecord.create("exposure", directory=results_dir,
                              config={"runtimes": runtimes, "workload": workload.name,
                                      "work": workload.work, "tests": list(workload.tests),
                                      "duration": duration},
                              capabilities={"probe_mode": counter.tracer.mode})
    results: list[ExposureResult] = []
    interrupted = False
    try:
        for name in runtimes:
            result = run_one(counter, name, workload, duration, workdir)
            results.append(result)
            record.add(result.record())
            _progress(result)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        record.finish(interrupted=interrupted)
        counter.close()
        shutil.rmtree(workdir, ignore_errors=True)
    from isoinspect.benches.publish import publish

    publish(record, [r.record() for r in results], json_out, format_table(results))
    return 0 if any(r.status == "ok" for r in results) else 1
