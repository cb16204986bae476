"""The runner: checks x runtimes, each check under a hard time limit, every result written to
the RunRecord as it comes; a table (or JSON) at the end and an exit code that means something.

Exit code: 0 when every real runtime PASSed (or was UNSUPPORTED, with why) and every check of
the control target FAILed; 1 when a real runtime FAILed/ERRORed or a control check PASSed (that
check cannot tell a missing limit from an enforced one).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager

from isoinspect.benches.targets.base import Target
from isoinspect.benches.targets.box import CheckError
from isoinspect.benches.verify import cpu, cpuset, io, memory, pids
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.result import exit_code, format_table, make_result, unsupported
from isoinspect.benches.verify.runtimes import select
from isoinspect.runtime.diagnostics import REGISTRY, Entry, Status
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

GROUP = "verify"

# The checks, in the diagnostics registry's "verify" group: family = the limit each one proves
# (its results' "limit"); run(runtime, context) -> results; timeout in seconds.
for _entry in (
    Entry(GROUP, "memory-oom", memory.check_oom, "memory", 90),
    Entry(GROUP, "memory-under-limit", memory.check_under_limit, "memory", 90),
    Entry(GROUP, "memory-swap", memory.check_swap, "memory", 120),
    *(Entry(GROUP, f"cpu-quota-{c:g}", functools.partial(cpu.check_quota, cpus=c), "cpu", 90)
      for c in cpu.QUOTAS),
    Entry(GROUP, "cpu-shares", cpu.check_shares, "cpu", 90),
    Entry(GROUP, "cpuset", cpuset.check_cpuset, "cpuset", 60),
    Entry(GROUP, "pids-limit", pids.check_pids, "pids", 90),
    Entry(GROUP, "io-write-bps", functools.partial(io.check_io, direction="write"), "io", 120),
    Entry(GROUP, "io-read-bps", functools.partial(io.check_io, direction="read"), "io", 120),
):
    REGISTRY.add(_entry)


def select_checks(names: str | None) -> list[Entry]:
    """All checks, or those named (a family like ``cpu`` or a check like ``cpu-shares``)."""
    checks = REGISTRY.entries(GROUP)
    if not names:
        return checks
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if not any(n in (c.name, c.family) for c in checks)]
    if unknown:
        raise UsageError(f"unknown check {', '.join(unknown)}: choose from "
                         f"{', '.join(sorted({c.family for c in checks}))} or "
                         f"{', '.join(c.name for c in checks)}", exit_code=USAGE_EXIT_CODE)
    return [c for c in checks if c.name in wanted or c.family in wanted]


class CheckTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Raise CheckTimeout in this (main) thread after ``seconds``; the check's own ``finally``
    blocks then stop its containers."""
    def expire(_signum, _frame):
        raise CheckTimeout(f"check did not finish within {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_check(rt: Target, check: Entry, ctx: Context) -> list[dict]:
    """One check on one runtime (the runtime's own version of it, if it has one), with the
    evidence the runtime adds to every result; never raises (ERROR results say what went
    wrong)."""
    results = _run_check(rt, check, ctx)
    extra = rt.take_evidence()
    for result in results:
        result["evidence"] = {**extra, **result.get("evidence", {})}
        if rt.labels:  # e.g. a VM's accelerator: the figures mean little without it
            result["labels"] = dict(rt.labels)
    return results


def _run_check(rt: Target, check: Entry, ctx: Context) -> list[dict]:
    why = rt.check_unsupported(check.name)
    if why:
        return [unsupported(rt.name, check.name, check.family, why)]
    run = rt.verify_checks.get(check.name, check.run)
    try:
        with time_limit(check.timeout):
            return run(rt, ctx)
    except CheckError as exc:
        why = rt.explain(check.name, exc)
        return [make_result(rt.name, check.name, check.family,
                            Status.UNSUPPORTED if why else Status.ERROR,
                            why=why or f"CheckError: {exc}"[:500],
                            evidence={"error": str(exc)[:500], **exc.evidence})]
    except Exception as exc:  # CheckTimeout, CheckError, a runtime's IsoinspectError, ...
        return [make_result(rt.name, check.name, check.family, Status.ERROR,
                            why=f"{type(exc).__name__}: {exc}"[:500])]


def run_all(runtimes: list[Target], checks: list[Entry], ctx: Context, record=None,
            progress=None) -> list[dict]:
    results: list[dict] = []

    def add(result: dict) -> None:
        if runtimes_control.get(result["runtime"]):
            result["expected_status"] = Status.FAIL.verdict
        results.append(result)
        if record is not None:
            record.add(result)
        if progress is not None:
            progress(result)

    runtimes_control = {rt.name: rt.control for rt in runtimes}
    try:
        for rt in runtimes:
            ok, why = rt.available()
            if not ok:
                for check in checks:
                    add(unsupported(rt.name, check.name, check.family, why))
                continue
            try:
                try:
                    rt.prepare(ctx.workdir)
                except Exception as exc:  # e.g. a guest that does not boot: the others go on
                    for check in checks:
                        add(make_result(rt.name, check.name, check.family, Status.ERROR,
                                        why=f"{rt.name} could not be prepared: "
                                            f"{type(exc).__name__}: {exc}"[:500]))
                    continue
                for check in checks:
                    began = time.monotonic()
                    for result in run_check(rt, check, ctx):
                        result["duration_s"] = round(time.monotonic() - began, 2)
                        add(result)
            finally:
                rt.cleanup()
    finally:
        ctx.close()
    return results


def _progress(result: dict) -> None:
    sys.stderr.write(f"verify: {result['runtime']:<10} {result['check']:<19} "
                     f"{result['status']:<11} {result.get('why', '')[:100]}\n")
    sys.stderr.flush()


def run_command(runtime: str, checks: str | None, quick: bool, json_out: bool,
                results_dir: str | None, workdir: str | None = None, trace: bool = True) -> int:
    """``isoinspect verify``: what the CLI calls; returns the exit code."""
    from isoinspect.benches.record import RunRecord
    from isoinspect.runtime.errors import IsoinspectError

    if os.geteuid() != 0:
        raise IsoinspectError("verify starts containers and sets cgroup limits: run it as root")
    runtimes = select(runtime)
    selected = select_checks(checks)
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-verify-")
    try:  # a --workdir that does not exist yet is made (as `mkdir -p`), not an ERROR per check
        os.makedirs(workdir, exist_ok=True)
    except OSError as exc:
        raise IsoinspectError(f"--workdir {workdir}: {exc.strerror}") from None
    ctx = Context(workdir, quick=quick)
    capabilities = {"trace": "off"}
    if trace and any(c.family in ("memory", "pids") for c in selected):
        from isoinspect.benches.verify.trace import start

        ctx.trace, why = start()
        capabilities = {"trace": "on" if ctx.trace else f"unavailable: {why}",
                        "probe_mode": getattr(getattr(ctx.trace, "tracer", None), "mode", None)}
    record = RunRecord.create(
        "verify", directory=results_dir,
        config={"runtime": runtime, "checks": [c.name for c in selected], "quick": quick},
        versions={rt.name: _safe_version(rt) for rt in runtimes}, capabilities=capabilities)
    interrupted = False
    try:
        results = run_all(runtimes, selected, ctx, record, _progress)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        record.finish(interrupted=interrupted)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    if json_out:
        sys.stdout.write(json.dumps({"run_id": record.run_id, "path": record.path,
                                     "results": results}, indent=1) + "\n")
    else:
        sys.stdout.write(format_table(results) + "\n")
        if any(rt.control for rt in runtimes):
            sys.stdout.write("control = isoinspect with every limit left out: its checks must "
                             "FAIL; a PASS there means the check cannot see a missing limit.\n")
        sys.stdout.write(f"record: {record.path}\n")
    return exit_code(results)


def _safe_version(rt: Target) -> str:
    try:
        return rt.version() if rt.available()[0] else ""
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"
