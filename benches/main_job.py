"""The main job (`isoinspect compare`): every measurement as a CLI stage, then one report.

Each stage is an `isoinspect` subprocess of the same installation (so a stage's crash, leak or
Ctrl-C handling stays its own), writing its RunRecord into one results folder. Which records a
stage wrote is not guessed from the folder (other runs may share it): every RunRecord created
under ``ISOINSPECT_RECORD_LOG`` lists its path there (benches/record.py), one log per stage.

Progress: one line per stage start and end on stderr, with the elapsed time and an estimate of
what remains (the stages' own estimates, scaled by how long the finished ones really took).
Ctrl-C / SIGTERM: the running stage (in its own process group, so it gets exactly one SIGINT)
keeps what it measured and exits 130; no further stage starts; the report of what was measured
is still written; the job exits 130. A failing stage is reported and the others still run
(exit 1). A stage whose command this installation lacks is skipped with a line saying so.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from isoinspect.benches.record import RECORD_LOG_ENV, write_json_atomic
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

REPORT = "report"
INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class Stage:
    """One step of the job: ``argv`` are the isoinspect arguments (the results folder is
    added); ``quick_s`` / ``full_s`` what it takes on a 2-core host, for the estimate."""

    name: str
    argv: tuple[str, ...]
    quick_s: float
    full_s: float
    what: str = ""

    @property
    def command(self) -> str:
        """The top-level isoinspect command the stage runs (``bench``, ``verify``, ...)."""
        return self.argv[0]

    @property
    def group(self) -> str:
        """``exposure-idle`` and ``exposure-script`` are both selected by ``exposure``."""
        return self.name.split("-", 1)[0]

    def estimate(self, quick: bool) -> float:
        return self.quick_s if quick else self.full_s


# (name, quick argv, full argv, quick s, full s, what). Quick seconds: measured on this
# project's 2-core test host while other jobs shared it (load 7-9): 9 minutes in all without
# the isolation stage; full seconds are rough.
_TABLE: tuple[tuple[str, tuple[str, ...], tuple[str, ...], float, float, str], ...] = (
    ("startup", ("bench", "startup", "--quick", "--include-slow", "--slow-runs", "3"),
     ("bench", "startup", "--slow-runs", "10"), 100, 1500,
     "start-up latency of every target, the QEMU guest included; traced phases"),
    ("namespaces", ("bench", "namespaces", "--quick"), ("bench", "namespaces"), 5, 120,
     "create/destroy cost of each namespace type"),
    ("concurrency", ("bench", "concurrency", "--levels", "1,4", "--starts", "8",
                     "--targets", "isoinspect-cli,runc,runsc,docker"),
     ("bench", "concurrency"), 15, 240, "starts per second with 1..N in flight"),
    ("verify", ("verify", "--runtime", "all", "--quick"), ("verify", "--runtime", "all"),
     160, 600, "are the limits enforced: every runtime, the VM and the control"),
    ("overhead", ("bench", "overhead", "--quick"), ("bench", "overhead"), 105, 400,
     "the same workload in every target against the host"),
    ("density", ("bench", "density", "--quick"), ("bench", "density"), 75, 400,
     "host memory per idle instance, start of the Nth"),
    ("exposure-idle", ("exposure", "--runtime", "all", "--workload", "idle"),
     ("exposure", "--runtime", "all", "--workload", "idle"), 30, 60,
     "host syscalls of an idle instance per runtime"),
    ("exposure-script", ("exposure", "--runtime", "all", "--workload", "script"),
     ("exposure", "--runtime", "all", "--workload", "script"), 50, 90,
     "host syscalls of a small script per runtime"),
    ("isolation", ("isolation", "--runtime", "all"), ("isolation", "--runtime", "all"), 40, 60,
     "isolation properties of a running instance of each runtime"),
    (REPORT, ("report",), ("report",), 15, 30, "the HTML report of every record of this job"),
)

STAGE_NAMES: tuple[str, ...] = tuple(row[0] for row in _TABLE)


def override_variable(name: str) -> str:
    """ISOINSPECT_COMPARE_<STAGE>: that stage's isoinspect arguments instead of the built-in
    ones (e.g. ISOINSPECT_COMPARE_STARTUP="bench startup --runs 3 --targets runc")."""
    return "ISOINSPECT_COMPARE_" + name.upper().replace("-", "_")


def all_stages(quick: bool, environ: dict | None = None) -> list[Stage]:
    environ = os.environ if environ is None else environ
    stages = []
    for name, quick_argv, full_argv, quick_s, full_s, what in _TABLE:
        argv = tuple(shlex.split(environ.get(override_variable(name), ""))) or \
            (quick_argv if quick else full_argv)
        stages.append(Stage(name, argv, quick_s, full_s, what))
    return stages


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def plan(quick: bool, only: str | None = None, skip: str | None = None,
         stages: Sequence[Stage] | None = None) -> list[Stage]:
    """The stages to run, in order: ``only`` / ``skip`` are comma lists of stage names or
    groups (``exposure``); UsageError naming unknown ones. The report stage is kept whenever
    a measuring stage is (it is what the job is for) unless skipped by name."""
    stages = list(stages if stages is not None else all_stages(quick))
    known = {s.name for s in stages} | {s.group for s in stages}
    wanted, unwanted = _names(only), _names(skip)
    unknown = [n for n in wanted + unwanted if n not in known]
    if unknown:
        raise UsageError(f"unknown stage(s) {', '.join(unknown)}; known: "
                         f"{', '.join(s.name for s in stages)}", exit_code=USAGE_EXIT_CODE)

    def named(stage: Stage, names: list[str]) -> bool:
        return stage.name in names or stage.group in names

    chosen = [s for s in stages
              if (not wanted or named(s, wanted) or s.name == REPORT) and not named(s, unwanted)]
    if not any(s.name != REPORT for s in chosen):
        raise UsageError("no measuring stage left to run", exit_code=USAGE_EXIT_CODE)
    return chosen


@dataclass(frozen=True)
class Outcome:
    """How one stage ended: ok | failed | skipped | interrupted | not run."""

    stage: Stage
    status: str
    seconds: float = 0.0
    exit_code: int | None = None
    records: tuple[str, ...] = ()
    reason: str = ""


def remaining_seconds(quick: bool, pending: Sequence[Stage], finished: Sequence[Outcome],
                      running: Stage | None = None, running_for: float = 0.0) -> float:
    """What is left: the pending stages' estimates (and what the running one has left), each
    scaled by measured / estimated over the stages that ran to the end so far (kept within
    0.33..3, so one odd stage does not swing it wildly)."""
    ran = [o for o in finished if o.status in ("ok", "failed") and o.stage.estimate(quick) > 0]
    estimated = sum(o.stage.estimate(quick) for o in ran)
    scale = min(3.0, max(1 / 3, sum(o.seconds for o in ran) / estimated)) if estimated else 1.0
    left = sum(s.estimate(quick) for s in pending) * scale
    if running is not None:
        left += max(0.0, running.estimate(quick) * scale - running_for)
    return left


def clock(seconds: float) -> str:
    """12 s, 3m05s, 1h02m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def default_program() -> tuple[str, ...]:
    """This installation's isoinspect: the venv's fast launcher beside this Python, else
    ``python -m isoinspect``."""
    launcher = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    if os.access(launcher, os.X_OK):
        return (launcher,)
    return (sys.executable, "-m", "isoinspect")


@dataclass
class JobResult:
    outcomes: list[Outcome] = field(default_factory=list)
    report: str | None = None
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def records(self) -> list[str]:
        return [path for o in self.outcomes if o.stage.name != REPORT for path in o.records]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return INTERRUPTED_EXIT
        return 1 if any(o.status == "failed" for o in self.outcomes) or not self.report else 0


class _Interrupts:
    """SIGINT / SIGTERM while the job runs: remember it and pass one SIGINT to the running
    stage (its own process group does not see the terminal's Ctrl-C)."""

    def __init__(self) -> None:
        self.count = 0
        self.child: subprocess.Popen | None = None
        self.signalled: set[int] = set()  # pids already passed a SIGINT
        self._saved: dict[int, object] = {}

    def __enter__(self) -> "_Interrupts":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, _signum: int, _frame: object) -> None:
        self.count += 1
        if self.child is not None:
            self.forward(self.child)

    def forward(self, child: subprocess.Popen) -> None:
        self.signalled.add(child.pid)
        if child.poll() is None:
            try:
                child.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass


class MainJob:
    """Runs a plan of stages; ``log`` gets the progress lines (stderr by default)."""

    def __init__(self, stages: Sequence[Stage], *, quick: bool, results_dir: str,
                 report_path: str, program: Sequence[str] | None = None,
                 command_exists: Callable[[str], bool] | None = None,
                 log: Callable[[str], None] | None = None, stage_output=None) -> None:
        self.stages = list(stages)
        self.quick = quick
        self.results_dir = os.path.abspath(results_dir)
        self.report_path = os.path.abspath(report_path)
        self.program = tuple(program or default_program())
        self.command_exists = command_exists or (lambda _name: True)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stage_output = stage_output if stage_output is not None else sys.stderr
        self.started = 0.0

    def run(self) -> JobResult:
        result = JobResult()
        self.started = time.monotonic()
        os.makedirs(self.results_dir, exist_ok=True)
        with _Interrupts() as interrupts, \
                tempfile.TemporaryDirectory(prefix="isoinspect-compare-") as scratch:
            for index, stage in enumerate(self.stages):
                is_report = stage.name == REPORT
                if interrupts.count and not is_report:
                    if not any(o.status == "not run" for o in result.outcomes):
                        left = [s.name for s in self.stages[index:] if s.name != REPORT]
                        self.log(f"compare: interrupted: not starting {', '.join(left)}")
                    result.outcomes.append(Outcome(stage, "not run", reason="interrupted"))
                    continue
                seen = interrupts.count  # a signal from here on is this stage's to get
                pending = [s for s in self.stages[index + 1:]
                           if not interrupts.count or s.name == REPORT]
                if not self.command_exists(stage.command):
                    outcome = Outcome(stage, "skipped", reason=f"this isoinspect has no "
                                      f"'{stage.command}' command yet")
                    self.log(self._line(index, stage, outcome.reason, result, pending))
                    result.outcomes.append(outcome)
                    continue
                if is_report:
                    records = measured(result.records)
                    if not records:
                        outcome = Outcome(stage, "skipped", reason="no record was written")
                        self.log(self._line(index, stage, outcome.reason, result, pending))
                        result.outcomes.append(outcome)
                        continue
                    argv = (*stage.argv, *records, "-o", self.report_path)
                else:
                    argv = (*stage.argv, "--results-dir", self.results_dir)
                self.log(self._line(index, stage, "start: isoinspect " + " ".join(argv),
                                    result, [stage, *pending]))
                outcome = self._run_stage(stage, argv, interrupts, scratch, index, seen)
                result.outcomes.append(outcome)
                if is_report and outcome.status == "ok":
                    result.report = self.report_path
                words = f"{outcome.status} in {clock(outcome.seconds)}"
                if outcome.exit_code not in (None, 0):
                    words += f" (exit {outcome.exit_code})"
                if not is_report:
                    words += f", {len(outcome.records)} record(s)"
                if outcome.reason:
                    words += f": {outcome.reason}"
                self.log(self._line(index, stage, words, result,
                                    [s for s in pending if not interrupts.count or
                                     s.name == REPORT]))
            result.interrupted = bool(interrupts.count)
        result.seconds = time.monotonic() - self.started
        return result

    def _run_stage(self, stage: Stage, argv: tuple[str, ...], interrupts: _Interrupts,
                   scratch: str, index: int, interrupted_before: int) -> Outcome:
        log_path = os.path.join(scratch, f"{index:02d}-{stage.name}.records")
        env = dict(os.environ, **{RECORD_LOG_ENV: log_path,
                                  "ISOINSPECT_RESULTS": self.results_dir})
        is_report = stage.name == REPORT
        begin = time.monotonic()
        try:
            child = subprocess.Popen([*self.program, *argv], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if is_report else self.stage_output,
                                     process_group=0, text=True)
        except OSError as exc:
            return Outcome(stage, "failed", reason=f"cannot start: {exc}")
        interrupts.child = child
        if interrupts.count > interrupted_before and child.pid not in interrupts.signalled:
            interrupts.forward(child)  # signalled while it was being started
        try:
            out = child.communicate()[0] if is_report else None
            code = child.wait()
        finally:
            interrupts.child = None
        seconds = time.monotonic() - begin
        records = _read_log(log_path)
        if is_report and out:
            self.stage_output.write(out)
            self.stage_output.flush()
        if interrupts.count > interrupted_before and code in (INTERRUPTED_EXIT,
                                                              -signal.SIGINT):
            return Outcome(stage, "interrupted", seconds, code, records,
                           "kept what it measured")
        if code == 0:
            return Outcome(stage, "ok", seconds, code, records)
        return Outcome(stage, "failed", seconds, code, records)

    def _line(self, index: int, stage: Stage, words: str, result: JobResult,
              pending: Sequence[Stage]) -> str:
        elapsed = time.monotonic() - self.started
        left = remaining_seconds(self.quick, pending, result.outcomes)
        return (f"compare: [{index + 1}/{len(self.stages)}] {stage.name}: {words} "
                f"(elapsed {clock(elapsed)}, about {clock(left)} left)")


def _read_log(path: str) -> tuple[str, ...]:
    """The record paths a stage listed, each once, in order, those that exist."""
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return ()
    return tuple(dict.fromkeys(p for p in lines if os.path.exists(p)))


def measured(paths: Sequence[str]) -> list[str]:
    """The records that hold results (a stage stopped before measuring leaves an empty one,
    which the report refuses) and can be read."""
    kept = []
    for path in paths:
        try:
            with open(path) as handle:
                if json.load(handle).get("results"):
                    kept.append(path)
        except (OSError, ValueError, AttributeError):
            continue
    return kept


def write_records_json(paths: Sequence[str], out: str) -> int:
    """Every record of the job as one JSON list (for collecting from many machines); returns
    how many were written. Records are read as stored (the report loader migrates them)."""
    records = []
    for path in paths:
        with open(path) as handle:
            records.append(json.load(handle))
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    write_json_atomic(out, records)
    return len(records)
