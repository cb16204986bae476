"""``isoinspect bench overhead``: how much slower the same workload runs inside each target.

    isoinspect bench overhead [--targets A,B] [--tests T,U] [--rounds N] [--duration-ms MS]
                              [--quick] [--json OUT] [--results-dir DIR]

Method: every target gets the suite's layer in its image (benches/overhead/runners.py), then
R rounds; a round runs the whole suite once in every interleaved target (the host and the
containers), in an order rotated by one each round, so drift hits all alike and a target's
round pairs with the host's. A batch target (the QEMU guest: one boot for all rounds) runs
its rounds after the others. Per target and test: p50 of the time per op with its CI, the
ratio to the host with a bootstrap CI, and that ratio over the target's own cpu-control ratio
(benches/overhead/summary.py). The cpu control must be ~1.0x on every container target; when
it is not, a "harness suspect" line is printed and the results carry the flag.

Results go into a RunRecord (kind ``overhead``, one per target and test), rewritten after
every round; Ctrl-C keeps what was measured, cleans every target up and exits 130. Progress
goes to stderr, one line per target and round.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

from isoinspect.benches.choices import parse_names
from isoinspect.benches.overhead import runners as runner_kinds
from isoinspect.benches.overhead.runners import Runner
from isoinspect.benches.overhead.suite import RunError, Suite
from isoinspect.benches.overhead.summary import (BASELINE, CONTROL, Cell, Series, TargetInfo,
                                                 cells_for, format_table, warning)
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

DEFAULT_ROUNDS, DEFAULT_MS = 10, 200
QUICK_ROUNDS, QUICK_MS = 5, 50
#: consecutive failed runs after which a target is given up for this run
MAX_FAILED_RUNS = 2


@dataclass
class Overhead:
    """One run's outcome: the targets, their series and the cells computed from them."""

    tests: list[str]
    rounds: int
    duration_ms: int
    infos: list[TargetInfo]
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    rounds_completed: int = 0
    interrupted: bool = False
    wall_seconds: float = 0.0
    #: share of the run's wall time some task waited for a CPU (PSI), None without PSI
    cpu_pressure: float | None = None

    def measured(self) -> bool:
        return any(cell.status == "ok" for cell in self.cells)

    def suspects(self) -> list[str]:
        return list(dict.fromkeys(c.target for c in self.cells if c.harness_suspect))

    def results(self) -> list[tuple[tuple[str, str], dict]]:
        infos = {info.name: info for info in self.infos}
        return [((c.target, c.test), c.to_result(self.series[(c.target, c.test)],
                                                 infos[c.target])) for c in self.cells]

    def table(self) -> str:
        head = (f"overhead ({self.rounds_completed}/{self.rounds} rounds, {self.duration_ms} ms "
                f"per test; cell: p50 value (x time per op / {BASELINE}'s [95% CI]); "
                f"{time_text(self.wall_seconds, self.cpu_pressure)})")
        if self.interrupted:
            head += "  [INTERRUPTED]"
        return "\n".join([head, *format_table(self.cells, self.infos, self.tests)])


def time_text(seconds: float, pressure: float | None = None) -> str:
    text = f"{seconds:.1f} s wall"
    if pressure is not None:
        text += f", cpu pressure {pressure:.0%}"
    return text


PSI_CPU = "/proc/pressure/cpu"


def cpu_pressure_total(path: str = PSI_CPU) -> float | None:
    """Microseconds some task has waited for a CPU since boot (PSI ``some total=``), or None
    without PSI. Over a run, its growth / the wall time says how contended the machine was: on
    a busy machine every figure is noisier (a harness-suspect control may just mean that)."""
    try:
        with open(path) as handle:
            first = handle.readline().split()
    except OSError:
        return None
    fields = dict(word.split("=", 1) for word in first[1:] if "=" in word)
    try:
        return float(fields["total"])
    except (KeyError, ValueError):
        return None


class _Run:
    """The bench while it runs: runners, their infos, the series and the record."""

    def __init__(self, runners: list[Runner], overhead: Overhead, suite: Suite, record,
                 log) -> None:
        self.runners, self.overhead, self.suite = runners, overhead, suite
        self.record, self.log = record, log
        self.info = {info.name: info for info in overhead.infos}
        self.failures = {r.name: 0 for r in runners}
        self.slots = None
        if record is not None:
            from isoinspect.benches.record import ResultSlots

            self.slots = ResultSlots(record)

    def prepare(self, workdir: str) -> list[Runner]:
        ready = []
        for runner in self.runners:
            info = self.info[runner.name]
            ok, reason = runner.available()
            if not ok:
                info.status, info.reason = "unsupported", reason
                self.log(f"{runner.name}: unsupported: {reason}")
                continue
            begin = time.monotonic()
            try:
                runner.prepare(workdir, self.suite)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                info.status, info.reason = "error", f"prepare failed: {_describe(exc)}"
                self.log(f"{runner.name}: {info.reason}")
                continue
            info.version, info.labels = runner.version(), dict(runner.labels)
            info.status = "ready"
            self.log(f"{runner.name}: prepared in {time.monotonic() - begin:.1f} s")
            ready.append(runner)
        return ready

    def outcome(self, runner: Runner, index: int, outcome: dict | RunError,
                seconds: float | None = None) -> None:
        """Store one round of one target and say so on stderr."""
        info = self.info[runner.name]
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        where = f"round {index + 1}/{self.overhead.rounds} {runner.name}"
        if isinstance(outcome, RunError):
            info.errors.append(f"round {index + 1}: {outcome}")
            self.failures[runner.name] += 1
            self.log(f"{where}: ERROR{took}: {outcome}")
            if self.failures[runner.name] >= MAX_FAILED_RUNS:
                info.status, info.reason = "error", f"gave up after {MAX_FAILED_RUNS} failed " \
                                                    f"runs; last: {outcome}"
            return
        self.failures[runner.name] = 0
        for test, figure in outcome.items():
            key = (runner.name, test)
            self.overhead.series.setdefault(key, Series(runner.name, test)).add(index, figure)
        ok = sum(1 for f in outcome.values() if f.status == "ok")
        self.log(f"{where}: {ok}/{len(outcome)} ok{took}")

    def one(self, runner: Runner, index: int) -> None:
        begin = time.monotonic()
        try:
            outcome: dict | RunError = runner.run(self.overhead.tests, self.overhead.duration_ms)
        except RunError as exc:
            outcome = exc
        except Exception as exc:  # one target's bug must not stop the others
            outcome = RunError(_describe(exc))
        self.outcome(runner, index, outcome, time.monotonic() - begin)

    def batch(self, runner: Runner) -> None:
        self.log(f"{runner.name}: {self.overhead.rounds} rounds in one run")
        begin = time.monotonic()
        try:
            runner.run_rounds(self.overhead.rounds, self.overhead.tests,
                              self.overhead.duration_ms,
                              lambda index, outcome: self.outcome(runner, index, outcome))
        except Exception as exc:  # the whole batch failed (the guest did not boot, ...)
            error = exc if isinstance(exc, RunError) else RunError(_describe(exc))
            self.outcome(runner, 0, error)
            info = self.info[runner.name]
            info.status, info.reason = "error", str(error)
        self.log(f"{runner.name}: done in {time.monotonic() - begin:.1f} s")

    def finish(self) -> None:
        """Targets still ``ready`` at the end: ok when they measured something."""
        for info in self.overhead.infos:
            if info.status != "ready":
                continue
            if any(s.seconds for (t, _), s in self.overhead.series.items() if t == info.name):
                info.status = "ok"
            elif info.errors:
                info.status, info.reason = "error", info.reason or info.errors[-1]
            else:
                info.status, info.reason = "skipped", "interrupted before it measured anything"

    def publish(self) -> None:
        overhead = self.overhead
        overhead.cells = cells_for(overhead.infos, overhead.series, overhead.tests)
        if self.slots is not None:
            self.slots.put(overhead.results())


def run_overhead(runners: list[Runner], tests: list[str], rounds: int = DEFAULT_ROUNDS,
                 duration_ms: int = DEFAULT_MS, *, suite: Suite, record=None,
                 workdir: str | None = None, json_out: str | None = None,
                 log=None) -> Overhead:
    """Measure ``tests`` in every runner's target ``rounds`` times; the outcome (see module)."""
    if rounds < 1 or duration_ms < 1:
        raise UsageError("rounds and the duration must be >= 1", exit_code=USAGE_EXIT_CODE)
    log = log or _progress
    infos = [TargetInfo(r.name, container=r.container, batch=r.batch) for r in runners]
    overhead = Overhead(list(tests), rounds, duration_ms, infos)
    run = _Run(runners, overhead, suite, record, log)
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="isoinspect-overhead-")
    begin, waited = time.monotonic(), cpu_pressure_total()
    try:
        try:
            ready = run.prepare(workdir)
            interleaved = [r for r in ready if not r.batch]
            for index in range(rounds):
                live = [r for r in interleaved if run.info[r.name].status == "ready"]
                shift = index % max(1, len(live))
                for runner in live[shift:] + live[:shift]:
                    run.one(runner, index)
                overhead.rounds_completed = index + 1
                run.publish()
            for runner in (r for r in ready if r.batch):
                run.batch(runner)
                run.publish()
        except KeyboardInterrupt:
            overhead.interrupted = True
            log("interrupted: keeping what was measured, cleaning up")
        finally:
            _cleanup(runners, run.info, log)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    overhead.wall_seconds = time.monotonic() - begin
    now = cpu_pressure_total()
    if waited is not None and now is not None and overhead.wall_seconds > 0:
        overhead.cpu_pressure = (now - waited) / 1e6 / overhead.wall_seconds
    run.finish()
    run.publish()
    for name in overhead.suspects():
        log(warning(name, next(c for c in overhead.cells
                               if c.target == name and c.test == CONTROL)).strip())
    if record is not None:
        record.set(harness_suspect=overhead.suspects(), wall_seconds=overhead.wall_seconds,
                   cpu_pressure=overhead.cpu_pressure,
                   rounds_completed=overhead.rounds_completed)
        record.finish(interrupted=overhead.interrupted)
        if json_out:
            from isoinspect.benches.record import write_json_atomic

            write_json_atomic(json_out, record.data)
    return overhead


def _cleanup(runners: list[Runner], infos: dict[str, TargetInfo], log) -> None:
    for runner in runners:
        for _attempt in range(2):  # a second Ctrl-C during cleanup retries once
            try:
                runner.cleanup()
                break
            except KeyboardInterrupt:
                continue
            except Exception as exc:
                infos[runner.name].errors.append(f"cleanup: {_describe(exc)}")
                log(f"{runner.name}: cleanup failed: {_describe(exc)}")
                break


def _progress(text: str) -> None:
    """One line per event on stderr, terminal or not (like hyperfine's progress)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _describe(exc: BaseException) -> str:
    from isoinspect.benches.startup import _describe as describe

    return describe(exc)


# -- command line ------------------------------------------------------------------------------

def run_command(targets: str | None = None, tests: str | None = None,
                rounds: int | None = None, duration_ms: int | None = None, quick: bool = False,
                json_out: str | None = None, results_dir: str | None = None,
                suite: Suite | None = None) -> int:
    """What ``isoinspect bench overhead`` does. Exit code: 0, 1 when nothing was measured,
    130 when interrupted; UsageError (125) for bad input."""
    from isoinspect.benches.overhead.suite import workload_suite
    from isoinspect.benches.record import RunRecord
    from isoinspect.benches.startup import interrupt_on_signals, run_information

    suite = suite or workload_suite()
    names = parse_names(targets, runner_kinds.NAMES, "target")
    if BASELINE not in names:
        names.insert(0, BASELINE)  # every ratio divides by the host's figures
    chosen = parse_names(tests, suite.tests(), "test")
    if CONTROL not in chosen:
        chosen.insert(0, CONTROL)  # the control every ratio is judged by
    rounds = rounds if rounds is not None else (QUICK_ROUNDS if quick else DEFAULT_ROUNDS)
    duration_ms = duration_ms if duration_ms is not None else (QUICK_MS if quick else DEFAULT_MS)
    if rounds < 1 or duration_ms < 1:
        raise UsageError("--rounds and --duration-ms must be >= 1", exit_code=USAGE_EXIT_CODE)
    interrupt_on_signals()
    versions, capabilities = run_information()
    config = {"targets": names, "tests": chosen, "rounds": rounds, "duration_ms": duration_ms,
              "quick": quick, "suite": suite.name, "baseline": BASELINE, "control": CONTROL,
              "order": "round-robin, rotated per round; batch targets (VM) after",
              "ratio": "p50 time per op in the target / on the host"}
    record = RunRecord.create("bench overhead", directory=results_dir, config=config,
                              versions=versions, capabilities=capabilities)
    overhead = run_overhead([runner_kinds.make(n) for n in names], chosen, rounds,
                            duration_ms, suite=suite, record=record, json_out=json_out)
    print(overhead.table())
    print(f"record: {record.path} (run {record.run_id})")
    if overhead.interrupted:
        return 130
    return 0 if overhead.measured() else 1
