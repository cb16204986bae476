"""Start-up latency benchmark: each target starts ``true`` many times, interleaved.

    python -m isoinspect.benches.startup [--runs N] [--warmup N] [--quick] [--json OUT]
                                         [--targets a,b,...]

Method (DESIGN.md section 4): every target is prepared first (untimed), then warmed up, then
measured in rounds; each round starts every target once, in an order rotated by one each round,
so slow drift (page cache, CPU frequency, a neighbour's load) hits all targets alike and the
samples of one round can be compared pairwise. Reported: p50/p90/p99, the distribution-free
confidence interval of p50, and each target's p50 relative to runc's with a paired bootstrap
interval. Ctrl-C stops measuring, keeps the samples so far and still cleans every target up.

``--json OUT`` is rewritten after every round, so a crash keeps what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

from isoinspect.benches import stats
from isoinspect.benches.machine import machine_info
from isoinspect.benches.targets import REFERENCE, Target, TargetError, safe_version, select

SCHEMA = "isoinspect.bench.startup/1"
QUICK_RUNS, QUICK_WARMUP = 10, 1
MAX_CONSECUTIVE_FAILURES = 3
#: the issue's goals: p50 of target <= factor x p50 of runc
GOALS = {"isoinspect-cli": 0.5, "isoinspect-lib": 0.1}


class _Entry:
    """What the runner knows about one target while it runs."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.status = "pending"      # pending | ready | skipped | failed (disabled mid-run)
        self.reason = ""
        self.prepared = False
        self.samples: list[float] = []
        self.rounds: list[int] = []
        self.phases: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.consecutive_failures = 0
        self.warmup_errors = 0
        self.prepare_seconds = 0.0
        self._version: str | None = None

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = safe_version(self.target)
        return self._version

    def to_dict(self, with_stats: bool) -> dict:
        data = {"name": self.target.name, "measures": self.target.measures,
                "notes": self.target.notes, "version": self.version,
                "status": self.status, "reason": self.reason,
                "prepare_seconds": self.prepare_seconds, "samples": list(self.samples),
                "rounds": list(self.rounds), "phases": {k: list(v) for k, v in
                                                        self.phases.items()},
                "errors": self.errors[:20], "error_count": len(self.errors),
                "warmup_errors": self.warmup_errors}
        if with_stats:
            data["stats"] = stats.summarize(self.samples) if self.samples else {"n": 0}
            data["phase_stats"] = {k: stats.summarize(v) for k, v in self.phases.items() if v}
        return data


def run_startup(targets: list[Target] | None = None, runs: int = 100, warmup: int = 5,
                quick: bool = False, *, json_out: str | None = None,
                workdir: str | None = None, reference: str = REFERENCE,
                echo: bool = True, progress: bool | None = None) -> dict:
    """Measure each target ``runs`` times (round-robin); return samples and statistics.

    ``quick``: at most 10 runs and 1 warm-up round, slow targets (VMs, Docker) left out.
    ``workdir``: where targets prepare their images (a temporary directory by default, removed
    at the end). ``echo``: print the table. ``progress``: a one-line progress indicator on
    stderr (default: when stderr is a terminal).
    """
    targets = list(targets) if targets is not None else select(None)
    if quick:
        runs, warmup = min(runs, QUICK_RUNS), min(warmup, QUICK_WARMUP)
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    if progress is None:
        progress = sys.stderr.isatty()
    entries = [_Entry(t) for t in targets]
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"target names must be unique: {names}")
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-bench-")
    result = {"schema": SCHEMA, "machine": machine_info(), "started": time.time(),
              "config": {"runs": runs, "warmup": warmup, "quick": quick,
                         "reference": reference, "order": "round-robin, rotated per round",
                         "clock": "perf_counter_ns (CLOCK_MONOTONIC)"},
              "interrupted": False, "rounds_completed": 0}
    try:
        try:
            _prepare_all(entries, workdir, quick)
            active = [e for e in entries if e.status == "ready"]
            for round_index in range(warmup):
                _one_round(active, round_index, measured=False)
                if progress:
                    _progress(f"warm-up {round_index + 1}/{warmup}")
            for round_index in range(runs):
                _one_round(active, round_index, measured=True)
                result["rounds_completed"] = round_index + 1
                if progress:
                    _progress(f"round {round_index + 1}/{runs}")
                if json_out:
                    _write_json(json_out, _assemble(result, entries, reference, final=False))
        except KeyboardInterrupt:
            result["interrupted"] = True
            if progress or echo:
                sys.stderr.write("\ninterrupted: keeping what was measured, cleaning up\n")
        finally:
            if progress:
                _progress("cleaning up", end="\n")
            _cleanup_all(entries)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    result["finished"] = time.time()
    result = _assemble(result, entries, reference, final=True)
    if json_out:
        _write_json(json_out, result)
    if echo:
        print(format_table(result))
    return result


def _prepare_all(entries: list[_Entry], workdir: str, quick: bool) -> None:
    for entry in entries:
        target = entry.target
        if quick and target.slow:
            entry.status, entry.reason = "skipped", "slow target left out by --quick"
            continue
        try:
            ok, reason = target.available()
        except Exception as exc:
            ok, reason = False, f"availability check failed: {exc}"
        if not ok:
            entry.status, entry.reason = "skipped", reason
            continue
        begin = time.perf_counter()
        try:
            entry.prepared = True  # cleanup() must run even if prepare() fails half-way
            target.prepare(workdir)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            entry.status, entry.reason = "skipped", f"prepare failed: {_describe(exc)}"
            continue
        entry.prepare_seconds = time.perf_counter() - begin
        entry.status = "ready"


def _one_round(active: list[_Entry], round_index: int, measured: bool) -> None:
    if not active:
        return
    shift = round_index % len(active)
    for entry in active[shift:] + active[:shift]:
        if entry.status != "ready":
            continue
        target = entry.target
        target.last_phases = {}
        try:
            seconds = target.start_once()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if not measured:
                entry.warmup_errors += 1
            entry.errors.append(_describe(exc))
            entry.consecutive_failures += 1
            if entry.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                entry.status = "failed"
                entry.reason = (f"{MAX_CONSECUTIVE_FAILURES} starts in a row failed; last: "
                                f"{entry.errors[-1]}")
            continue
        entry.consecutive_failures = 0
        if measured:
            if not seconds > 0:
                entry.errors.append(f"non-positive sample {seconds!r}")
                continue
            entry.samples.append(seconds)
            entry.rounds.append(round_index)
            for phase, value in (target.last_phases or {}).items():
                entry.phases.setdefault(phase, []).append(value)


def _cleanup_all(entries: list[_Entry]) -> None:
    for entry in entries:
        if not entry.prepared:
            continue
        for attempt in range(2):  # a second Ctrl-C during cleanup retries once, then moves on
            try:
                entry.target.cleanup()
                break
            except KeyboardInterrupt:
                continue
            except Exception as exc:
                entry.errors.append(f"cleanup: {_describe(exc)}")
                break


def _assemble(result: dict, entries: list[_Entry], reference: str, final: bool) -> dict:
    out = dict(result)
    out["targets"] = {e.target.name: e.to_dict(with_stats=final) for e in entries}
    if final:
        out["ratios"] = _ratios(entries, reference)
        out["goals"] = _goals(out)
    return out


def _ratios(entries: list[_Entry], reference: str) -> dict:
    """p50 of each target / p50 of the reference, paired by round (bootstrap interval)."""
    ref = next((e for e in entries if e.target.name == reference), None)
    if ref is None or not ref.samples:
        return {}
    ref_by_round = dict(zip(ref.rounds, ref.samples))
    ratios = {}
    for entry in entries:
        if not entry.samples:
            continue
        common = [r for r in entry.rounds if r in ref_by_round]
        own = dict(zip(entry.rounds, entry.samples))
        if len(common) >= 2:
            ratio = stats.ratio_ci([own[r] for r in common], [ref_by_round[r] for r in common],
                                   paired=True)
        else:
            ratio = stats.ratio_ci(entry.samples, ref.samples, paired=False)
        ratio["vs"] = reference
        ratios[entry.target.name] = ratio
    return ratios


def _goals(result: dict) -> dict:
    goals = {}
    for name, factor in GOALS.items():
        ratio = result["ratios"].get(name)
        if ratio is None:
            continue
        goals[name] = {"goal": f"p50 <= {factor} x {ratio['vs']} p50", "factor": factor,
                       "ratio": ratio["ratio"], "met": ratio["ratio"] <= factor,
                       "met_with_confidence": ratio["ci"][1] <= factor}
    return goals


# -- presentation --------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    ms = value * 1000.0
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def format_table(result: dict) -> str:
    """The result as a fixed-width text table (milliseconds)."""
    reference = result["config"]["reference"]
    headers = ["target", "measures", "n", "p50 ms", "p90 ms", "p99 ms", "p50 95% CI",
               f"p50 / {reference} [95% CI]"]
    rows, notes = [], []
    for name, data in result["targets"].items():
        summary = data.get("stats") or stats.summarize(data["samples"])
        if not summary.get("n"):
            notes.append(f"  {name}: {data['status']}: {data['reason'] or 'no samples'}")
            continue
        low, high = summary["p50_ci"]
        ratio = result.get("ratios", {}).get(name)
        ratio_text = (f"{ratio['ratio']:.3f} [{ratio['ci'][0]:.3f}, {ratio['ci'][1]:.3f}]"
                      if ratio else "-")
        rows.append([name, data["measures"], str(summary["n"]), _ms(summary["p50"]),
                     _ms(summary["p90"]), _ms(summary["p99"]), f"{_ms(low)} .. {_ms(high)}",
                     ratio_text])
        if data["error_count"]:
            notes.append(f"  {name}: {data['error_count']} failed start(s); first: "
                         f"{data['errors'][0] if data['errors'] else '?'}")
        if data["status"] == "failed":
            notes.append(f"  {name}: disabled: {data['reason']}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(c.rjust(w) if 2 <= i <= 5 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    config = result["config"]
    head = (f"start-up of `true` ({result['rounds_completed']}/{config['runs']} rounds, "
            f"{config['warmup']} warm-up; {result['machine']['kernel']}, "
            f"{result['machine']['cpus']} CPUs, cgroups {result['machine']['cgroup_mode']})")
    if result.get("interrupted"):
        head += "  [INTERRUPTED]"
    out = [head, *lines]
    phase_lines = []
    for name, data in result["targets"].items():
        phase_stats = data.get("phase_stats") or {}
        if phase_stats:
            parts = ", ".join(f"{phase} {_ms(s['p50'])}" for phase, s in phase_stats.items())
            phase_lines.append(f"  {name}: {parts}")
    if phase_lines:
        out += ["phases (p50 ms):", *phase_lines]
    for name, goal in (result.get("goals") or {}).items():
        verdict = "met" if goal["met"] else "NOT met"
        if goal["met"] and not goal["met_with_confidence"]:
            verdict += " (not at 95% confidence)"
        out.append(f"goal {name}: {goal['goal']}: ratio {goal['ratio']:.3f}: {verdict}")
    if notes:
        out += ["notes:", *notes]
    return "\n".join(out)


def _progress(text: str, end: str = "") -> None:
    sys.stderr.write(f"\r\033[K{text}{end}")
    sys.stderr.flush()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, TargetError):
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" at {frame[0].filename}:{frame[0].lineno}" if frame else ""
        text = f"{type(exc).__name__}: {text}{where}"
    return text[:500]


def _write_json(path: str, data: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".startup-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)


def _interrupt_on_signals() -> None:
    """SIGINT and SIGTERM stop the run like Ctrl-C (measured samples kept, targets cleaned
    up), also when started in the background, where a shell leaves SIGINT ignored."""
    import signal

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoinspect.benches.startup",
                                     description="Start-up latency of isoinspect vs its peers.")
    parser.add_argument("--runs", type=int, default=100, help="measured rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up rounds (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help=f"at most {QUICK_RUNS} runs, {QUICK_WARMUP} warm-up, no slow targets")
    parser.add_argument("--json", metavar="OUT", help="write samples and statistics here")
    parser.add_argument("--targets", metavar="A,B",
                        help="comma-separated target names (default: all)")
    parser.add_argument("--workdir", help="prepare images here (default: a temporary dir)")
    args = parser.parse_args(argv)
    try:
        return run_command(args.targets, args.runs, args.warmup, args.quick, args.json,
                           args.workdir)
    except ValueError as exc:
        parser.error(str(exc))
        return 2


def run_command(target_names: str | None, runs: int, warmup: int, quick: bool,
                json_out: str | None, workdir: str | None) -> int:
    """What both `isoinspect bench startup` and `python -m ...startup` do; ValueError for
    bad arguments. Exit code: 130 when interrupted, 1 when no target measured anything."""
    targets = select(target_names.split(",") if target_names else None)
    _interrupt_on_signals()
    result = run_startup(targets, runs=runs, warmup=warmup, quick=quick, json_out=json_out,
                         workdir=workdir)
    if result["interrupted"]:
        return 130
    measured = [d for d in result["targets"].values() if d["samples"]]
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
