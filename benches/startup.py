"""Start-up latency benchmark: every target, every metric, interleaved, into one RunRecord.

    isoinspect bench startup [--runs N] [--warmup N] [--quick] [--targets a,b] [--drop-caches]
                             [--trace-runs N] [--concurrency 1,2,4,8] [--results-dir DIR]
    python -m isoinspect.benches.startup (same options)

Method (DESIGN.md section 4): every target is prepared first (untimed), then warmed up, then
measured in rounds; each round runs every metric of every target once (start_to_ready,
lifecycle, teardown: see benches/targets/base.py), in a target order rotated by one each round,
so slow drift (page cache, CPU frequency, a neighbour's load) hits all targets alike and the
samples of one round can be paired. A target's metrics rotate too: what ran just before matters
(e.g. the first cgroup.procs write after a pause waits for an RCU grace period, ~10 ms here,
while one within a grace period of the previous is fast), so no metric always comes first. Reported per metric: p50/p90/p99, the distribution-free
confidence interval of p50, on-CPU p50, and each target's p50 relative to runc's and to the
host fork+exec floor with paired bootstrap intervals; the issue's goals are judged on those.
``--drop-caches`` syncs and writes 3 to /proc/sys/vm/drop_caches before every measured run
(a one-off write, not a sysctl setting). Then, unless ``--trace-runs 0``: a traced pass
(``--trace-runs`` interleaved traced/untraced pairs per container target, the tracer in its own
process) gives the per-phase breakdown from the inspector and the tracer's own overhead per
target (benches/trace_pass.py);
with ``--concurrency`` a sweep of parallel starts (benches/concurrency.py).

Results go into a RunRecord (benches/record.py) as they are measured: one ``startup`` result
per target and metric, rewritten after every round, so a crash or Ctrl-C keeps what was
measured. ``--json OUT`` also writes a copy of the record to OUT. Ctrl-C stops measuring and
still cleans every target up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback

from isoinspect.benches import stats
from isoinspect.benches.machine import machine_info
from isoinspect.benches.targets import (FLOOR, METRICS, REFERENCE, Target, TargetError,
                                        safe_version, select)
from isoinspect.benches.targets.base import CommandFailed
from isoinspect.runtime.errors import (USAGE_EXIT_CODE, IsoinspectError, UsageError,
                                       report_error)

QUICK_RUNS, QUICK_WARMUP, QUICK_TRACE_RUNS = 10, 1, 10
#: traced pass: interleaved (untraced, traced) lifecycle pairs per container target
TRACE_PAIRS = 100
MAX_CONSECUTIVE_FAILURES = 3
PUBLISH_EVERY_S = 2.0
P99_MIN_RUNS = stats.P99_MIN_RUNS
PLAIN_PROGRESS_EVERY_S = 2.0  # stderr not a terminal: a plain line at most this often
DROP_CACHES = "/proc/sys/vm/drop_caches"
#: the issues' goals: (target, relation, factor, peer, metrics); issue 20's: the CLI <= 0.6x
#: runc, its bridge start <= 1.3x its no-network start, ``rm`` (teardown) <= 2x runc delete,
#: the library <= 0.2x runc, the warm pool <= 2x a host fork+exec
GOALS = (("isoinspect-cli", "<=", 0.6, "runc", ("start_to_ready", "lifecycle")),
         ("isoinspect-cli", "<=", 2.0, "runc", ("teardown",)),
         ("isoinspect-cli-bridge", "<=", 1.3, "isoinspect-cli", ("start_to_ready", "lifecycle")),
         ("isoinspect-lib", "<=", 0.2, "runc", ("start_to_ready", "lifecycle")),
         ("isoinspect-pool", "<=", 2.0, "host-exec", ("start_to_ready", "lifecycle")),
         ("docker", ">=", 20.0, "isoinspect-cli", ("start_to_ready", "lifecycle")))


class _Entry:
    """What the runner knows about one target while it runs."""

    def __init__(self, target: Target, metrics: tuple[str, ...]) -> None:
        self.target = target
        self.metrics = [m for m in metrics if m not in target.unsupported]
        self.status = "pending"      # pending | ready | skipped | failed (disabled mid-run)
        self.reason = ""
        self.prepared = False
        self.samples: dict[str, list[float]] = {m: [] for m in metrics}
        self.cpu: dict[str, list[float]] = {m: [] for m in metrics}
        self.rounds: dict[str, list[int]] = {m: [] for m in metrics}
        self.phases: dict[str, list[float]] = {}
        self.kernel_phases: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.consecutive_failures = 0
        self.command_failed = False  # the user's command exited non-zero (CommandFailed)
        self.warmup_errors = 0
        self.prepare_seconds = 0.0
        self._version: str | None = None

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = safe_version(self.target)
        return self._version

    def result(self, metric: str) -> dict:
        """The RunRecord ``startup`` result of one metric."""
        samples = self.samples.get(metric, [])
        reason = self.target.unsupported.get(metric, "")
        if reason:
            status = "unsupported"
        elif self.status == "skipped":
            status, reason = "unsupported", self.reason
        elif self.status == "failed" and not samples:
            status, reason = "failed", self.reason
        elif samples:
            status = "ok"
            reason = self.reason if self.status == "failed" else ""
        else:
            status, reason = ("failed", self.errors[-1] if self.errors else "no samples") \
                if self.status != "pending" else ("pending", "")
        out = {"kind": "startup", "target": self.name, "metric": metric, "status": status,
               "reason": reason, "version": self.version, "unit": "s",
               "samples": list(samples), "stats": stats.summarize(samples),
               "rounds": list(self.rounds.get(metric, [])), "notes": self.target.notes}
        cpu = self.cpu.get(metric) or []
        if cpu and len(cpu) == len(samples):
            out["cpu_samples"] = list(cpu)
            out["cpu_stats"] = stats.summarize(cpu)
        phases = self.kernel_phases or (self.phases if metric == "lifecycle" else {})
        if phases and metric == "lifecycle":
            out["phases"] = {k: list(v) for k, v in phases.items()}
            out["phases_source"] = "inspector" if self.kernel_phases else "runtime"
        if self.target.labels:
            out["labels"] = dict(self.target.labels)
        if self.errors:
            out["errors"] = self.errors[:10]
            out["error_count"] = len(self.errors)
        return out


def run_startup(targets: list[Target] | None = None, runs: int = 100, warmup: int = 5,
                quick: bool = False, *, record=None, json_out: str | None = None,
                workdir: str | None = None, reference: str = REFERENCE, echo: bool = True,
                progress: bool | None = None, drop_caches: bool = False,
                metrics: tuple[str, ...] = METRICS, trace_runs: int = 0,
                concurrency: list[int] | None = None, concurrency_starts: int = 16,
                include_slow: bool = False, slow_runs: int | None = None,
                startup_results: bool = True, show_goals: bool = False,
                image=None, ignore_failure: bool = False,
                host_asked: bool = False) -> dict:
    """Measure each target's metrics ``runs`` times (round-robin); return the summary.

    ``quick``: at most 10 runs and 1 warm-up round, slow targets (VMs) left out unless
    ``include_slow``. ``slow_runs``: slow targets take part in the first N warm-up and measured
    rounds only (a VM boot costs seconds; its few samples still pair with the others' rounds).
    ``startup_results`` False: the record gets only what else is measured (`bench
    concurrency`'s one round is a warm-up, not start-up figures to merge into a report).
    ``record``: a RunRecord the results are written into as they come. ``workdir``: where
    targets prepare their images (a temporary directory by default, removed at the end).
    ``image``: the user's image and command (benches/user_image.UserImage) instead of busybox
    ``true``, in every target that can run it; a run whose command exits non-zero disables its
    target (CommandFailed) unless ``ignore_failure``; the host targets take part only when
    ``host_asked`` (they run the command on the host, not in the image).
    """
    targets = list(targets) if targets is not None else select(None)
    if quick:
        runs, warmup = min(runs, QUICK_RUNS), min(warmup, QUICK_WARMUP)
        trace_runs = min(trace_runs, QUICK_TRACE_RUNS)
    if runs < 1 or warmup < 0 or trace_runs < 0 or (slow_runs is not None and slow_runs < 1):
        raise UsageError("runs and slow runs must be >= 1, warmup and trace runs >= 0",
                         exit_code=USAGE_EXIT_CODE)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UsageError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}",
                         exit_code=USAGE_EXIT_CODE)
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"target names must be unique: {names}", exit_code=USAGE_EXIT_CODE)
    say = _Progress(progress is not False)
    entries = [_Entry(t, metrics) for t in targets]
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-bench-")
    summary = {"machine": record.data["machine"] if record else machine_info(),
               "config": {"runs": runs, "warmup": warmup, "quick": quick,
                          "reference": reference, "floor": FLOOR, "metrics": list(metrics),
                          "drop_caches": drop_caches, "trace_runs": trace_runs,
                          "concurrency": list(concurrency or []),
                          "include_slow": include_slow, "slow_runs": slow_runs,
                          "order": "round-robin, rotated per round",
                          "clock": "perf_counter_ns (CLOCK_MONOTONIC)",
                          "start_to_ready": "until the workload's marker (echo) is read",
                          "cpu": "rusage of reaped children (+ own, in-process targets; "
                                 "+ daemons for docker)"},
               "interrupted": False, "rounds_completed": 0, "trace": None,
               "concurrency": [], "command_failed": []}
    if image is not None:
        summary["config"]["image"] = {"ref": image.ref, "id": image.image_id,
                                      "argv": list(image.argv),
                                      "ignore_failure": ignore_failure}
    publisher = _Publisher(record if startup_results else None, entries, metrics)
    try:
        try:
            if image is not None:
                _use_image(entries, image, ignore_failure, host_asked, say)
            _prepare_all(entries, workdir, quick and not include_slow)
            publisher.publish(force=True)
            active = [e for e in entries if e.status == "ready"]
            for round_index in range(warmup):
                _one_round(in_round(active, round_index, slow_runs), round_index, False,
                           drop_caches)
                say(f"warm-up {round_index + 1}/{warmup}", round_index + 1 == warmup)
            for round_index in range(runs):
                _one_round(in_round(active, round_index, slow_runs), round_index, True,
                           drop_caches)
                summary["rounds_completed"] = round_index + 1
                say(f"round {round_index + 1}/{runs}", round_index + 1 == runs)
                publisher.publish()
            active = [e for e in entries if e.status == "ready"]
            if trace_runs:
                say("traced pass", True)
                summary["trace"] = _trace(active, trace_runs, record)
            if concurrency:
                from isoinspect.benches.concurrency import sweep

                for entry in active:
                    say(f"concurrency sweep: {entry.name}", True)
                    summary["concurrency"] += sweep(entry.target, concurrency,
                                                    concurrency_starts, record=record)
        except KeyboardInterrupt:
            summary["interrupted"] = True
            if say.enabled or echo:
                sys.stderr.write("\ninterrupted: keeping what was measured, cleaning up\n")
        finally:
            say("cleaning up", True, end="\n")
            _cleanup_all(entries)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    summary["command_failed"] = [e.name for e in entries if e.command_failed]
    summary["targets"] = {e.name: {"status": e.status, "reason": e.reason,
                                   "version": e.version, "notes": e.target.notes,
                                   "errors": e.errors[:20], "error_count": len(e.errors),
                                   "command_failed": e.command_failed,
                                   "results": {m: e.result(m) for m in metrics}}
                          for e in entries}
    summary["ratios"] = {m: _ratios(entries, reference, m) for m in metrics}
    summary["floor_ratios"] = {m: _ratios(entries, FLOOR, m) for m in metrics}
    summary["goals"] = _goals(entries)
    publisher.publish(force=True, ratios=(summary["ratios"], summary["floor_ratios"]))
    if record is not None:
        if startup_results:
            record.set(goals=summary["goals"])
        record.finish(interrupted=summary["interrupted"])
        summary["run_id"] = record.run_id
        summary["path"] = record.path
        if json_out:
            from isoinspect.benches.record import write_json_atomic

            write_json_atomic(json_out, record.data)
    if echo:
        print(format_table(summary, goals=show_goals))
    return summary


class _Publisher:
    """Keeps the record's ``startup`` results current: added once, then replaced in place."""

    def __init__(self, record, entries: list[_Entry], metrics: tuple[str, ...]) -> None:
        self.record, self.entries, self.metrics = record, entries, metrics
        self.positions: dict[tuple[str, str], int] = {}
        self.last = 0.0

    def publish(self, force: bool = False, ratios: tuple | None = None) -> None:
        if self.record is None or (not force and time.monotonic() - self.last < PUBLISH_EVERY_S):
            return
        results = self.record.data["results"]
        fresh = []
        for entry in self.entries:
            for metric in self.metrics:
                result = entry.result(metric)
                if result["status"] == "pending":
                    continue
                if ratios:
                    result["ratios"] = {table_name: table[metric][entry.name]
                                        for table_name, table in zip(("reference", "floor"),
                                                                     ratios)
                                        if entry.name in table.get(metric, {})}
                key = (entry.name, metric)
                if key in self.positions:
                    results[self.positions[key]] = result
                else:
                    self.positions[key] = len(results) + len(fresh)
                    fresh.append(result)
        if fresh:
            self.record.extend(fresh)
        else:
            self.record.save()
        self.last = time.monotonic()


def _use_image(entries: list[_Entry], image, ignore_failure: bool, host_asked: bool,
               say) -> None:
    """Hand the user's image to every target; those that cannot run it are skipped with the
    reason (printed with the table's notes)."""
    for entry in entries:
        target = entry.target
        if target.on_host and not host_asked:
            entry.status, entry.reason = "skipped", (
                "runs the command on this host, not in the image: only with --targets "
                f"{'host' if target.name == FLOOR else target.name}")
            continue
        reason = target.use_image(image, ignore_failure)
        if reason:
            entry.status, entry.reason = "skipped", reason
        elif target.on_host:
            target.notes = f"{' '.join(image.argv)} on this host, not in {image.ref}"
            say(f"note: {target.name} runs {' '.join(image.argv)!r} on this host, not in "
                f"{image.ref}", True)


def _prepare_all(entries: list[_Entry], workdir: str, quick: bool) -> None:
    for entry in entries:
        target = entry.target
        if entry.status == "skipped":
            continue
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


def in_round(active: list[_Entry], round_index: int, slow_runs: int | None) -> list[_Entry]:
    """The entries that take part in round ``round_index``: slow targets only in the first
    ``slow_runs`` rounds (all of them when None)."""
    if slow_runs is None:
        return active
    return [e for e in active if not e.target.slow or round_index < slow_runs]


def drop_page_cache(path: str = DROP_CACHES) -> None:
    """Write back dirty pages, then drop page cache, dentries and inodes (a one-off action)."""
    os.sync()
    with open(path, "w") as handle:
        handle.write("3\n")


def _one_round(active: list[_Entry], round_index: int, measured: bool,
               drop_caches: bool = False) -> None:
    if not active:
        return
    shift = round_index % len(active)
    for entry in active[shift:] + active[:shift]:
        turn = round_index % max(1, len(entry.metrics))
        for metric in entry.metrics[turn:] + entry.metrics[:turn]:
            if entry.status != "ready":
                break
            target = entry.target
            target.last_phases = {}
            try:
                target.settle()
                if drop_caches:
                    drop_page_cache()
                sample = target.measure(metric)
            except KeyboardInterrupt:
                raise
            except CommandFailed as exc:  # hyperfine stops there too
                entry.errors.append(f"{metric}: {exc}")
                entry.status, entry.command_failed = "failed", True
                entry.reason = f"{exc}. Use --ignore-failure to keep such runs."
                newline = "\n" if sys.stderr.isatty() else ""  # after a progress line
                sys.stderr.write(f"{newline}{entry.name}: {entry.reason}\n")
                break
            except Exception as exc:
                if not measured:
                    entry.warmup_errors += 1
                entry.errors.append(f"{metric}: {_describe(exc)}")
                entry.consecutive_failures += 1
                if entry.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    entry.status = "failed"
                    entry.reason = (f"{MAX_CONSECUTIVE_FAILURES} runs in a row failed; last: "
                                    f"{entry.errors[-1]}")
                continue
            entry.consecutive_failures = 0
            if not measured:
                continue
            if not sample.wall > 0:
                entry.errors.append(f"{metric}: non-positive sample {sample.wall!r}")
                continue
            entry.samples[metric].append(sample.wall)
            entry.rounds[metric].append(round_index)
            if sample.cpu is not None:
                entry.cpu[metric].append(sample.cpu)
            if metric == "lifecycle":
                for phase, value in (target.last_phases or {}).items():
                    entry.phases.setdefault(phase, []).append(value)


def _trace(active: list[_Entry], pairs: int, record) -> dict:
    from isoinspect.benches.trace_pass import traced_pass

    containers = [e for e in active if e.target.container and "lifecycle" in e.metrics]
    if not containers:
        return {"status": "unsupported", "reason": "no container target to trace",
                "probe_mode": None, "phases": {}, "overhead": []}
    result = traced_pass([e.target for e in containers], pairs)
    for entry in containers:
        phases = result["phases"].get(entry.name)
        if phases and "error" not in phases:
            entry.kernel_phases = phases
        elif phases:
            entry.errors.append(f"traced pass: {phases['error']}")
    if record is not None:
        capabilities = dict(record.data.get("capabilities") or {})
        capabilities["probe_mode"] = result["probe_mode"] or "unavailable"
        if result["reason"]:
            capabilities["probe_reason"] = result["reason"]
        record.set(capabilities=capabilities)
        record.extend(result["overhead"] or [{"kind": "trace_overhead",
                                              "status": result["status"],
                                              "reason": result["reason"]}])
    return {k: v for k, v in result.items() if k != "overhead"} | {
        "overhead": [{k: v for k, v in item.items() if not k.startswith("samples")}
                     for item in result["overhead"]]}


def _cleanup_all(entries: list[_Entry]) -> None:
    for entry in entries:
        if not entry.prepared:
            continue
        _twice(entry.target.cleanup, entry.errors)
    # A peer killed half-way through a create leaves a cgroup named after us that its own
    # runtime never knew of (in every hierarchy): the last step, once every target is done.
    from isoinspect.runtime.cgroups.leftovers import remove_owned

    _twice(lambda: remove_owned(only_owner=os.getpid()), [])


def _twice(step, errors: list[str]) -> None:
    """Run a clean-up step; a second Ctrl-C during it retries once, then moves on."""
    for _attempt in range(2):
        try:
            step()
            return
        except KeyboardInterrupt:
            continue
        except Exception as exc:
            errors.append(f"cleanup: {_describe(exc)}")
            return


def _ratios(entries: list[_Entry], reference: str, metric: str) -> dict:
    """p50 of each target / p50 of the reference, paired by round (bootstrap interval)."""
    ref = next((e for e in entries if e.name == reference), None)
    if ref is None or not ref.samples.get(metric):
        return {}
    ref_by_round = dict(zip(ref.rounds[metric], ref.samples[metric]))
    ratios = {}
    for entry in entries:
        samples = entry.samples.get(metric)
        if not samples:
            continue
        own = dict(zip(entry.rounds[metric], samples))
        common = [r for r in own if r in ref_by_round]
        if len(common) >= 2:
            ratio = stats.ratio_ci([own[r] for r in common], [ref_by_round[r] for r in common],
                                   paired=True)
        else:
            ratio = stats.ratio_ci(samples, ref.samples[metric], paired=False)
        ratio["vs"] = reference
        ratios[entry.name] = ratio
    return ratios


def _goals(entries: list[_Entry]) -> list[dict]:
    """The issue's targets, judged on this run's paired ratios (reported, never asserted)."""
    goals = []
    for name, relation, factor, peer, metrics in GOALS:
        for metric in metrics:
            ratio = _ratios(entries, peer, metric).get(name)
            if ratio is None:
                continue
            low, high = ratio["ci"]
            if relation == "<=":
                met, sure = ratio["ratio"] <= factor, high <= factor
            else:
                met, sure = ratio["ratio"] >= factor, low >= factor
            goals.append({"target": name, "metric": metric, "peer": peer,
                          "goal": f"p50 {relation} {factor} x {peer} p50", "factor": factor,
                          "relation": relation, "ratio": ratio["ratio"], "ci": ratio["ci"],
                          "met": met, "met_with_confidence": sure})
    return goals


# -- presentation --------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    ms = value * 1000.0
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _ratio_text(ratio: dict | None) -> str:
    return f"{ratio['ratio']:.3f} [{ratio['ci'][0]:.3f}, {ratio['ci'][1]:.3f}]" if ratio else "-"


def _table(headers: list[str], rows: list[list[str]], numeric: range) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return lines


def format_table(summary: dict, goals: bool = False) -> str:
    """The summary as fixed-width text tables, one per metric (milliseconds); the project's
    own goals (always in the record and the report) only with ``goals``."""
    config, machine = summary["config"], summary["machine"]
    reference, floor = config["reference"], config["floor"]
    head = (f"start-up ({summary['rounds_completed']}/{config['runs']} rounds, "
            f"{config['warmup']} warm-up{', caches dropped' if config['drop_caches'] else ''}; "
            f"{machine.get('kernel')}, {machine.get('cpus')} CPUs, cgroups "
            f"{machine.get('cgroup_mode')})")
    if config.get("image"):
        head += f"\nimage {config['image']['ref']}: {' '.join(config['image']['argv'])}"
    if summary.get("interrupted"):
        head += "  [INTERRUPTED]"
    out = [head]
    notes: list[str] = []
    for metric in config["metrics"]:
        rows = []
        for name, target in summary["targets"].items():
            result = target["results"][metric]
            s = result["stats"]
            if not s.get("n"):
                if result["status"] == "unsupported" and metric == config["metrics"][0]:
                    notes.append(f"  {name}: unsupported: {result['reason']}")
                continue
            cpu = (result.get("cpu_stats") or {}).get("p50")
            p99 = _ms(s["p99"]) if s["n"] >= P99_MIN_RUNS else "-"
            rows.append([name, str(s["n"]), _ms(s["p50"]), _ms(s["p90"]), p99,
                         f"{_ms(s['p50_ci'][0])} .. {_ms(s['p50_ci'][1])}", _ms(cpu),
                         _ratio_text(summary["ratios"][metric].get(name)),
                         _ratio_text(summary["floor_ratios"][metric].get(name))])
        if rows:
            out += [f"{metric}:", *_table(["target", "n", "p50 ms", "p90 ms", "p99 ms",
                                           "p50 95% CI", "cpu p50 ms", f"/ {reference}",
                                           f"/ {floor}"], rows, range(1, 7))]
    for name, target in summary["targets"].items():
        if target["error_count"] and not target.get("command_failed"):
            notes.append(f"  {name}: {target['error_count']} failed run(s); first: "
                         f"{target['errors'][0] if target['errors'] else '?'}")
        if target["status"] == "failed":
            notes.append(f"  {name}: disabled: {target['reason']}")
    phase_lines = []
    for name, target in summary["targets"].items():
        phases = target["results"].get("lifecycle", {}).get("phases") or {}
        if phases:
            parts = ", ".join(f"{p} {_ms(stats.median(v))}" for p, v in phases.items() if v)
            source = target["results"]["lifecycle"].get("phases_source")
            phase_lines.append(f"  {name} ({source}): {parts}")
    if phase_lines:
        out += ["lifecycle phases (p50 ms, each since the previous phase):", *phase_lines]
    trace = summary.get("trace") or {}
    if trace.get("status") == "unsupported":
        notes.append(f"  traced pass: {trace['reason']}")
    for overhead in trace.get("overhead") or []:
        if overhead.get("ratio"):
            out.append(f"tracer overhead on {overhead['target']} {overhead['metric']} "
                       f"({overhead['setup']}): x{overhead['ratio']:.3f} "
                       f"[{overhead['ci'][0]:.3f}, {overhead['ci'][1]:.3f}], "
                       f"BPF {overhead['bpf_run_time_ns_per_run'] / 1e3:.0f} us per traced run "
                       f"({overhead['bpf_untraced_run_time_ns_per_run'] / 1e3:.0f} us untraced), "
                       f"{overhead['lost']} events lost")
        elif overhead.get("status") != "ok":
            notes.append(f"  tracer overhead on {overhead['target']}: {overhead['status']}: "
                         f"{overhead.get('reason', '')}")
    if any(t["results"][m]["stats"].get("n", 0) < P99_MIN_RUNS
           for t in summary["targets"].values() for m in config["metrics"]
           if t["results"][m]["stats"].get("n")):
        notes.append(f"  p99 is shown from {P99_MIN_RUNS} runs on ('-': fewer runs)")
    for goal in (summary.get("goals") or []) if goals else []:
        verdict = "met" if goal["met"] else "NOT met"
        if goal["met"] and not goal["met_with_confidence"]:
            verdict += " (not at 95% confidence)"
        out.append(f"goal {goal['target']} {goal['metric']}: {goal['goal']}: ratio "
                   f"{goal['ratio']:.3f} [{goal['ci'][0]:.3f}, {goal['ci'][1]:.3f}]: {verdict}")
    for item in summary.get("concurrency") or []:
        if item["status"] == "ok":
            out.append(f"concurrency {item['target']} x{item['level']}: "
                       f"{item['containers_per_second']:.1f} starts/s, p50 "
                       f"{_ms(stats.median(item['samples']))} ms")
        else:
            out.append(f"concurrency {item['target']} x{item['level']}: {item['status']}: "
                       f"{item.get('reason', '')}")
    if summary.get("path"):
        out.append(f"record: {summary['path']} (run {summary['run_id']})")
    if notes:
        out += ["notes:", *notes]
    return "\n".join(out)


class _Progress:
    """Progress on stderr: one rewritten line on a terminal; otherwise plain lines (like
    hyperfine), at most one every PLAIN_PROGRESS_EVERY_S unless it closes a phase."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.terminal = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, text: str, closes: bool = False, end: str = "") -> None:
        if not self.enabled:
            return
        if self.terminal:
            sys.stderr.write(f"\r\033[K{text}{end}")
        else:
            now = time.monotonic()
            if not closes and now - self.last < PLAIN_PROGRESS_EVERY_S:
                return
            self.last = now
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, TargetError):
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" at {frame[0].filename}:{frame[0].lineno}" if frame else ""
        text = f"{type(exc).__name__}: {text}{where}"
    return text[:500]


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM stop the run like Ctrl-C (measured samples kept, targets cleaned
    up), also when started in the background, where a shell leaves SIGINT ignored."""
    import signal

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def parse_levels(text: str | None) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]; UsageError for anything else."""
    if not text:
        return []
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"levels must be comma-separated integers, not {text!r}",
                         exit_code=USAGE_EXIT_CODE) from None
    if not levels or any(level < 1 for level in levels):
        raise UsageError(f"levels must be >= 1: {text!r}", exit_code=USAGE_EXIT_CODE)
    return levels


def run_information(record_capabilities: dict | None = None) -> tuple[dict, dict]:
    """Versions of every runtime and the host's capabilities, for a record (a few seconds:
    each OCI runtime is tried for real)."""
    from isoinspect.benches import peers
    from isoinspect.benches.targets.isoinspect import package_version
    from isoinspect.runtime.diagnostics import Status

    checks = peers.check_all()
    versions = peers.versions(checks)
    versions["isoinspect"] = package_version().split(" ", 1)[-1]
    kvm = next(c for c in checks if c.name == "kvm")
    capabilities = {"kvm": bool(kvm.ok), "accelerator": "kvm" if kvm.ok else "tcg",
                    "accelerator_reason": kvm.detail,
                    "unsupported": {c.name: c.detail for c in checks
                                    if c.status is Status.UNSUPPORTED},
                    **(record_capabilities or {})}
    return versions, capabilities


def run_command(target_names: str | None, runs: int, warmup: int, quick: bool,
                json_out: str | None, workdir: str | None, *, results_dir: str | None = None,
                drop_caches: bool = False, trace_runs: int = TRACE_PAIRS,
                concurrency: str | None = None, concurrency_starts: int = 16,
                metrics: str | None = None, include_slow: bool = False,
                slow_runs: int | None = None, command: str = "bench startup",
                show_goals: bool = False, image: str | None = None,
                user_command: list[str] | None = None, ignore_failure: bool = False,
                store_root: str | None = None) -> int:
    """What `isoinspect bench startup` and `python -m ...startup` do; UsageError for bad
    arguments. Exit code: 130 when interrupted, 1 when no target measured anything or the
    user's command failed (``image``: benches/user_image.py)."""
    from isoinspect.benches.record import RunRecord

    targets = select(target_names.split(",") if target_names else None)
    levels = parse_levels(concurrency)
    chosen = tuple(m.strip() for m in metrics.split(",")) if metrics else METRICS
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}",
                         exit_code=USAGE_EXIT_CODE)
    user_image = None
    if image is None and (user_command or ignore_failure):
        raise UsageError("a command (after --) and --ignore-failure need --image",
                         exit_code=USAGE_EXIT_CODE)
    if image is not None:
        if metrics and chosen != ("lifecycle",):
            raise UsageError("--image measures the lifecycle only (create, run the command, "
                             "remove): the command prints no ready marker",
                             exit_code=USAGE_EXIT_CODE)
        chosen = ("lifecycle",)
        from isoinspect.benches.user_image import resolve

        user_image = resolve(image, list(user_command or []), store_root)
    if drop_caches and not os.access(DROP_CACHES, os.W_OK):
        raise UsageError(f"--drop-caches needs write access to {DROP_CACHES} (root)",
                         exit_code=USAGE_EXIT_CODE)
    interrupt_on_signals()
    versions, capabilities = run_information()
    config = {"runs": runs, "warmup": warmup, "quick": quick, "targets": target_names,
              "drop_caches": drop_caches, "trace_runs": trace_runs, "concurrency": levels,
              "metrics": list(chosen), "include_slow": include_slow, "slow_runs": slow_runs}
    if user_image is not None:
        config.update(image=user_image.ref, image_id=user_image.image_id,
                      command=list(user_image.argv), ignore_failure=ignore_failure)
    record = RunRecord.create(command, directory=results_dir, config=config,
                              versions=versions, capabilities=capabilities)
    summary = run_startup(targets, runs=runs, warmup=warmup, quick=quick, record=record,
                          json_out=json_out, workdir=workdir, drop_caches=drop_caches,
                          metrics=chosen, trace_runs=trace_runs, concurrency=levels,
                          concurrency_starts=concurrency_starts, include_slow=include_slow,
                          slow_runs=slow_runs, startup_results=command == "bench startup",
                          show_goals=show_goals, image=user_image,
                          ignore_failure=ignore_failure, host_asked=bool(target_names))
    if summary["interrupted"]:
        return 130
    measured = [r for t in summary["targets"].values() for r in t["results"].values()
                if r["samples"]]
    return 0 if measured and not summary["command_failed"] else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=100, help="measured rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up rounds (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help=f"at most {QUICK_RUNS} runs, {QUICK_WARMUP} warm-up, no slow targets")
    parser.add_argument("--json", metavar="OUT", help="also write the record here")
    parser.add_argument("--targets", metavar="A,B",
                        help="comma-separated target names (default: all)")
    parser.add_argument("--workdir", help="prepare images here (default: a temporary dir)")
    parser.add_argument("--results-dir", help="where the record goes ($ISOINSPECT_RESULTS)")
    parser.add_argument("--drop-caches", action="store_true",
                        help="drop the page cache before every measured run")
    parser.add_argument("--trace-runs", type=int, default=TRACE_PAIRS,
                        help="interleaved traced/untraced lifecycle pairs per container target "
                             "(phases, tracer overhead; 0: no traced pass)")
    parser.add_argument("--concurrency", metavar="1,2,4,8",
                        help="also sweep these numbers of parallel starts")
    parser.add_argument("--metrics", metavar="M,N", help=f"subset of {','.join(METRICS)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoinspect.benches.startup",
                                     description="Start-up latency of isoinspect vs its peers.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_command(args.targets, args.runs, args.warmup, args.quick, args.json,
                           args.workdir, results_dir=args.results_dir,
                           drop_caches=args.drop_caches, trace_runs=args.trace_runs,
                           concurrency=args.concurrency, metrics=args.metrics)
    except UsageError as exc:
        parser.error(str(exc))  # argparse's usage line and exit code 2
    except IsoinspectError as exc:
        return report_error(exc, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
