"""Where start-up time goes: cProfile of the library, import costs of the CLI's run path.

    python -m isoinspect.benches.profile_start [--runs N] [--top N] [--sort tottime|cumtime]
                                               [--what library,imports]

* library: ``Runtime.run(spec)`` of ``busybox true`` N times in this process (after warm-up)
  under cProfile. cProfile sees the parent only: time the container's PID 1 spends between
  clone and exec (mounts, pivot_root, cgroup join, seccomp) shows up as the parent's blocking
  ``os.read`` of the exec-error pipe in ``read_all``.
* timeline: the same runs with the start path's steps (parent and container PID 1) wrapped
  by timestamping shims (a few microseconds each), so the time between clone and exec, which
  cProfile cannot see, is split into steps: cgroup join, mounts, pivot_root, privileges, exec.
  Gaps between instrumented steps are reported as "(after X)".
* imports: the real CLI run (``isoinspect --root R run --rm busybox true``) executed with
  ``-X importtime`` through the interpreter line of the installed launcher (``-I -S``), so what
  is measured is exactly what a user's start imports.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from isoinspect.benches.targets.isoinspect import (clean_root, cli_path, ensure_base_root,
                                                    private_root)

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def profile_library(runs: int = 200, warmup: int = 10, top: int = 10, sort: str = "tottime",
                    workdir: str | None = None) -> str:
    import cProfile
    import io
    import pstats

    from isoinspect.runtime.runtime import Runtime
    from isoinspect.runtime.spec import ContainerSpec

    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-profile-")
    root = private_root(workdir, "profile")
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        runtime = Runtime(root)
        spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
        stdio = (null, null, null)
        for _ in range(warmup):
            runtime.run(spec, stdio)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(runs):
            runtime.run(spec, stdio)
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(sort).print_stats(top)
        text = out.getvalue()
        return f"cProfile of Runtime.run x{runs} (per-call times are totals over all runs)\n" \
            + text[text.index("   ncalls"):] if "   ncalls" in text else text
    finally:
        os.close(null)
        clean_root(root)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


# (module, attribute, label) of the steps to time; missing ones are skipped, so the tool keeps
# working while the runtime changes. Parent first, then the container's PID 1 in _setup order.
TIMELINE_STEPS = (
    ("isoinspect.runtime.runtime:Runtime", "init_plan", "parent: build plan"),
    ("isoinspect.runtime.linux.syscalls", "clone_process", "clone (parent side)"),
    ("isoinspect.runtime.linux.syscalls", "clone_into_cgroup", "clone into cgroup (parent side)"),
    ("isoinspect.runtime.process", "start_ticks", "parent: read start ticks"),
    ("isoinspect.runtime.runtime", "read_all", "parent: wait for exec (pipe EOF)"),
    ("isoinspect.runtime.records:ContainerStore", "save", "parent: save record"),
    ("isoinspect.runtime.child", "wire_stdio", "child: stdio"),
    ("isoinspect.runtime.child", "join_cgroups", "child: join cgroups"),
    ("isoinspect.runtime.linux.syscalls", "unshare", "child: unshare cgroup ns"),
    ("isoinspect.runtime.rootfs", "make_mounts_private", "child: make mounts private"),
    ("isoinspect.runtime.rootfs", "mount_overlay", "child: mount overlay"),
    ("isoinspect.runtime.rootfs", "mount_proc_sys", "child: mount proc, sys"),
    ("isoinspect.runtime.rootfs", "mount_cgroup2", "child: mount cgroup2"),
    ("isoinspect.runtime.rootfs", "populate_dev", "child: populate /dev"),
    ("isoinspect.runtime.linux.paths_policy", "mask_paths", "child: mask paths"),
    ("isoinspect.runtime.linux.paths_policy", "readonly_paths", "child: read-only paths"),
    ("isoinspect.runtime.rootfs", "pivot_into", "child: pivot_root"),
    ("isoinspect.runtime.linux.syscalls", "sethostname", "child: sethostname"),
    ("isoinspect.runtime.child", "bring_up_loopback", "child: loopback up"),
    ("isoinspect.runtime.linux.rlimits", "apply_rlimits", "child: rlimits"),
    ("isoinspect.runtime.child", "resolve_user", "child: resolve user"),
    ("isoinspect.runtime.linux.capabilities", "switch_user", "child: user + capabilities"),
    ("isoinspect.runtime.linux.syscalls", "load_seccomp_filter", "child: load seccomp"),
    ("isoinspect.runtime.child", "exec_command", "child: exec_command (PATH search, execve)"),
)


def _install_shims(log_fd: int) -> list[tuple[object, str, object]]:
    import importlib
    import time as _time

    installed = []
    for where, attr, label in TIMELINE_STEPS:
        module_name, _, class_name = where.partition(":")
        try:
            owner = importlib.import_module(module_name)
            if class_name:
                owner = getattr(owner, class_name)
            original = owner.__dict__[attr] if class_name else getattr(owner, attr)
        except (ImportError, AttributeError, KeyError):
            continue

        def shim(*args, __original=original, __label=label, **kwargs):
            os.write(log_fd, f"{os.getpid()} > {_time.monotonic_ns()} {__label}\n".encode())
            try:
                return __original(*args, **kwargs)
            finally:
                os.write(log_fd, f"{os.getpid()} < {_time.monotonic_ns()} {__label}\n".encode())

        setattr(owner, attr, shim)
        installed.append((owner, attr, original))
    return installed


def child_timeline(runs: int = 100, warmup: int = 10, workdir: str | None = None) -> str:
    """Median/p90 duration of each step of Runtime.start, parent and container PID 1."""
    from isoinspect.runtime.runtime import Runtime
    from isoinspect.runtime.spec import ContainerSpec
    from isoinspect.benches import stats

    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-profile-")
    root = private_root(workdir, "timeline")
    log_path = os.path.join(workdir, "timeline.log")
    log_fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    durations: dict[str, list[float]] = {}
    order: list[str] = []
    totals = []
    installed = _install_shims(log_fd)
    try:
        runtime = Runtime(root)
        spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
        for index in range(warmup + runs):
            os.ftruncate(log_fd, 0)
            record = runtime.create(spec)
            started = runtime.start(record, stdio=(null, null, null))
            runtime.wait_child(started)
            runtime.remove(record.id, force=True)
            if index < warmup:
                continue
            totals.append(started.startup_seconds)
            os.lseek(log_fd, 0, os.SEEK_SET)
            events = []
            for line in os.read(log_fd, 1 << 20).decode().splitlines():
                pid, kind, stamp, label = line.split(" ", 3)
                events.append((int(stamp), kind, label, int(pid)))
            events = [e for e in events if e[0] >= started.begin_ns]
            events.sort()
            parent_pid = os.getpid()  # the child logs its pid in its own PID namespace (1)
            segments: dict[str, float] = {}
            open_steps: dict[str, int] = {}
            last_child_end, last_child_label = None, None
            for stamp, kind, label, pid in events:
                if kind == ">":
                    open_steps[label] = stamp
                    if pid != parent_pid and last_child_end is not None:
                        gap = f"  (after {last_child_label.removeprefix('child: ')})"
                        segments[gap] = segments.get(gap, 0.0) + (stamp - last_child_end) / 1e9
                elif label in open_steps:
                    segments[label] = segments.get(label, 0.0) + (
                        stamp - open_steps.pop(label)) / 1e9
                    if pid != parent_pid:
                        last_child_end, last_child_label = stamp, label
            if "child: exec_command (PATH search, execve)" in open_steps:  # exec'd: no end
                begin = open_steps.pop("child: exec_command (PATH search, execve)")
                segments["child: exec_command .. parent sees EOF"] = (
                    started.ready_ns - begin) / 1e9
            first_child = next((e[0] for e in events if e[3] != parent_pid), None)
            if first_child is not None:
                segments["begin .. first child step"] = (first_child - started.begin_ns) / 1e9
            for label, value in segments.items():
                if label not in durations:
                    order.append(label)
                durations.setdefault(label, []).append(value)
    finally:
        for owner, attr, original in installed:
            setattr(owner, attr, original)
        os.close(log_fd)
        os.close(null)
        clean_root(root)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = [f"timeline of Runtime.start x{runs} (start-to-exec p50 "
             f"{stats.median(totals) * 1e3:.2f} ms, p90 {stats.quantile(totals, 0.9) * 1e3:.2f}"
             f" ms with shims); ms per step",
             f"  {'p50':>7} {'p90':>7} {'max':>7}  step"]
    for label in order:
        values = durations[label] + [0.0] * (runs - len(durations[label]))
        lines.append(f"  {stats.median(values) * 1e3:7.3f} {stats.quantile(values, 0.9) * 1e3:7.3f}"
                     f" {max(values) * 1e3:7.3f}  {label}")
    return "\n".join(lines)


def launcher_interpreter(cli: str) -> list[str]:
    """The interpreter and flags of the CLI's ``#!`` line (e.g. ``python3 -IS``)."""
    with open(cli, "rb") as handle:
        first = handle.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        return [sys.executable]
    return first[2:].split()


def parse_importtime(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            rows.append({"self_us": int(match[1]), "cumulative_us": int(match[2]),
                         "depth": len(match[3]), "module": match[4]})
    return rows


def import_costs(top: int = 15, repeat: int = 5, workdir: str | None = None) -> str:
    """Import costs of one CLI run (median of ``repeat`` runs per module)."""
    cli = cli_path()
    if not cli:
        return "isoinspect CLI not found"
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-profile-")
    root = private_root(workdir, "imports")
    interpreter = launcher_interpreter(cli)
    samples: dict[str, list[tuple[int, int, int]]] = {}
    argv = [*interpreter, "-X", "importtime", cli, "--root", root, "run", "--rm", "busybox",
            "true"]
    try:
        # the first run in a fresh root builds caches (the seccomp filter) and imports more
        subprocess.run(argv, capture_output=True, timeout=60)
        for _ in range(repeat):
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            for row in parse_importtime(result.stderr):
                samples.setdefault(row["module"], []).append(
                    (row["self_us"], row["cumulative_us"], row["depth"]))
    finally:
        clean_root(root)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)

    def mid(values: list[int]) -> int:  # a module missing from a run counts as 0 there
        values = sorted(values + [0] * (repeat - len(values)))
        return values[len(values) // 2]

    rows = [{"module": m, "self_us": mid([v[0] for v in vs]),
             "cumulative_us": mid([v[1] for v in vs]), "depth": vs[0][2]}
            for m, vs in samples.items()]
    rows = [r for r in rows if r["cumulative_us"]]
    total = sum(r["self_us"] for r in rows)
    ours = sum(r["self_us"] for r in rows if r["module"].startswith("isoinspect"))
    lines = [f"imports of `{' '.join(interpreter)} {os.path.basename(cli)} run --rm busybox true`"
             f" (median of {repeat}; -X importtime inflates absolute numbers)",
             f"  {len(rows)} modules, {total / 1000:.2f} ms self in total, "
             f"{ours / 1000:.2f} ms in isoinspect modules",
             f"  {'self ms':>8} {'cum ms':>8}  module (by self time)"]
    rows = [r for r in rows if r["cumulative_us"]]
    for row in sorted(rows, key=lambda r: -r["self_us"])[:top]:
        lines.append(f"  {row['self_us'] / 1000:8.2f} {row['cumulative_us'] / 1000:8.2f}  "
                     f"{row['module']}")
    lines.append(f"  {'self ms':>8} {'cum ms':>8}  top-level imports (by cumulative time)")
    for row in sorted((r for r in rows if r["depth"] == 1),
                      key=lambda r: -r["cumulative_us"])[:top]:
        lines.append(f"  {row['self_us'] / 1000:8.2f} {row['cumulative_us'] / 1000:8.2f}  "
                     f"{row['module']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoinspect.benches.profile_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumtime", "ncalls"])
    parser.add_argument("--what", default="imports,timeline,library",
                        help="comma-separated: imports, timeline, library")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("profiling starts containers: run as root")
    workdir = tempfile.mkdtemp(prefix="isoinspect-profile-")
    try:
        ensure_base_root(workdir)
        parts = args.what.split(",")
        if "imports" in parts:
            print(import_costs(top=args.top, workdir=workdir))
            print()
        if "timeline" in parts:
            print(child_timeline(runs=min(args.runs, 200), workdir=workdir))
            print()
        if "library" in parts:
            print(profile_library(runs=args.runs, top=args.top, sort=args.sort,
                                  workdir=workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
