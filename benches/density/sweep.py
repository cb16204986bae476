"""One target's sweep: start instances up to each level, measure, record, stop them all.

Levels grow (1, 8, 32): the instances of a level stay up and the next level starts only the
missing ones (a restart would cost as much as the whole sweep again and measure the same
thing), so level 32 holds the first level's instances too. After a level's last start the
sweep waits ``settle`` seconds, then measures (accounting.py) and writes one ``density``
result. A start that fails ends the sweep of that target: the level's result says at which
instance and why, with the memory of those still running. Everything started is stopped in
a ``finally`` (KeyboardInterrupt included; a second Ctrl-C retries once), then the launcher's
own ``cleanup``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from isoinspect.benches import stats
from isoinspect.benches.density import procmem
from isoinspect.benches.density.accounting import (DEFINITION, Accountant, LevelMemory,
                                                   marginal_bytes)
from isoinspect.benches.density.instances import Instance, Launcher

SETTLE_S = 0.5
MIB = float(1 << 20)


@dataclass
class Sweep:
    """What one target's sweep did (the results also went into the record)."""

    target: str
    results: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False


def progress(text: str) -> None:
    """One line on stderr (always: a sweep runs for minutes)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def describe(exc: BaseException) -> str:
    """bench startup's one-line description of an error (its first line: a guest's console
    tail stays out of the record)."""
    from isoinspect.benches.startup import _describe

    return _describe(exc).split("\n")[0]


def base_result(launcher: Launcher, level: int | None, status: str, reason: str = "",
                version: str = "") -> dict:
    out = {"kind": "density", "target": launcher.name, "level": level, "status": status,
           "reason": reason, "version": version, "notes": launcher.notes,
           "accounting": DEFINITION}
    if launcher.labels:
        out["labels"] = dict(launcher.labels)
    if launcher.setup:
        out["setup"] = dict(launcher.setup)
    return out


def level_result(launcher: Launcher, level: int, status: str, reason: str, version: str,
                 instances: list[Instance], memory: LevelMemory | None,
                 previous: tuple[int, float] | None, failure: dict | None) -> dict:
    """The record's ``density`` result of one level (bytes and seconds)."""
    out = base_result(launcher, level, status, reason, version)
    starts = [i.start_seconds for i in instances]
    out.update({"instances": len(starts), "names": [i.name for i in instances],
                "unit": "s", "samples": starts,
                "stats": stats.summarize(starts),
                "nth_start_seconds": starts[-1] if starts else None, "failure": failure})
    if memory is None:
        return out
    n = len(memory.instances)
    growth = memory.daemons_pss - memory.daemons_baseline if launcher.daemons else None
    used = memory.mem_available_baseline - memory.mem_available
    out.update({
        "total_bytes": memory.total_bytes, "runtime_pss_bytes": memory.runtime_pss(),
        "workload_pss_bytes": memory.workload_pss(), "cgroup_bytes": memory.cgroup_bytes(),
        "daemon_growth_bytes": growth, "daemons": list(launcher.daemons),
        "host_used_bytes": used,
        "per_instance_bytes": memory.estimate.to_dict()
        | {"values": [i.total_bytes for i in memory.instances]},
        "marginal_bytes_per_instance": marginal_bytes(previous, (n, memory.total_bytes)),
        "host_used_per_instance_bytes": used / n,
        "daemon_growth_per_instance_bytes": None if growth is None else growth / n,
        "processes": memory.process_kinds()})
    return out


class TargetSweep:
    """Runs one launcher through ``levels`` (see the module notes)."""

    def __init__(self, launcher: Launcher, levels: list[int], record=None,
                 settle: float = SETTLE_S, shared_daemons: tuple[str, ...] = ()) -> None:
        self.launcher, self.levels, self.record, self.settle = launcher, levels, record, settle
        self.shared_daemons = tuple(shared_daemons) or launcher.daemons
        self.instances: list[Instance] = []
        self.sweep = Sweep(launcher.name)
        self.version = ""

    def _add(self, result: dict) -> None:
        self.sweep.results.append(result)
        if self.record is not None:
            self.record.add(result)

    def run(self, workdir: str) -> Sweep:
        launcher = self.launcher
        try:
            ok, reason = launcher.available()
        except Exception as exc:
            ok, reason = False, f"availability check failed: {describe(exc)}"
        if not ok:
            progress(f"density {launcher.name}: unsupported: {reason}")
            self._add(base_result(launcher, None, "unsupported", reason))
            return self.sweep
        self.version = launcher.version()
        prepared = False
        try:
            try:
                prepared = True        # cleanup() must run even if prepare() fails half-way
                launcher.prepare(workdir)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                progress(f"density {launcher.name}: prepare failed: {describe(exc)}")
                self._add(base_result(launcher, None, "failed",
                                      f"prepare failed: {describe(exc)}", self.version))
                return self.sweep
            self._levels()
        except KeyboardInterrupt:
            self.sweep.interrupted = True
        finally:
            self._stop_all(prepared)
        return self.sweep

    def _levels(self) -> None:
        accountant = Accountant(self.shared_daemons)
        baseline_daemons = accountant.daemons_pss() if self.launcher.daemons else 0
        baseline_available = procmem.mem_available()
        previous: tuple[int, float] | None = None
        for level in self.levels:
            failure = self._start_up_to(level)
            memory = None
            if self.instances:
                time.sleep(self.settle)
                measured, daemons = accountant.measure(self.instances)
                memory = LevelMemory(measured, daemons, baseline_daemons,
                                     procmem.mem_available(), baseline_available)
            status = "failed" if failure else "ok"
            reason = (f"instance {failure['instance']} did not start: {failure['error']}"
                      if failure else "")
            result = level_result(self.launcher, level, status, reason, self.version,
                                  self.instances, memory, previous, failure)
            self._add(result)
            self._report(level, result)
            if failure:
                return
            previous = (len(self.instances), memory.total_bytes)

    def _start_up_to(self, level: int) -> dict | None:
        """Start instances until ``level`` run; the failure (instance, error) or None."""
        while len(self.instances) < level:
            index = len(self.instances) + 1
            try:
                self.instances.append(self.launcher.start(index))
            except KeyboardInterrupt:
                self._interrupted_result(level)
                raise
            except Exception as exc:
                return {"instance": index, "error": describe(exc)}
        return None

    def _interrupted_result(self, level: int) -> None:
        self._add(level_result(self.launcher, level, "interrupted",
                               f"interrupted after {len(self.instances)} of {level} starts",
                               self.version, self.instances, None, None, None))

    def _report(self, level: int, result: dict) -> None:
        head = f"density {self.launcher.name}: level {level}: {result['instances']} running"
        if result["nth_start_seconds"] is not None:
            head += f", start of the Nth {result['nth_start_seconds'] * 1e3:.1f} ms"
        estimate = result.get("per_instance_bytes")
        if estimate:
            low, high = estimate["ci"]
            head += (f", {estimate['estimate'] / MIB:.2f} MiB/instance "
                     f"[{low / MIB:.2f}, {high / MIB:.2f}]")
        if result["status"] != "ok":
            head += f"; {result['status']}: {result['reason']}"
        progress(head)

    def _stop_all(self, prepared: bool) -> None:
        """Stop every instance (newest first), then the launcher's cleanup; a second Ctrl-C
        retries the step once and moves on."""
        steps = [(f"stop {i.name}", i.stop) for i in reversed(self.instances)]
        if prepared:
            steps.append(("cleanup", self.launcher.cleanup))
        for what, step in steps:
            for _attempt in range(2):
                try:
                    step()
                    break
                except KeyboardInterrupt:
                    self.sweep.interrupted = True
                    continue
                except Exception as exc:
                    self.sweep.errors.append(f"{what}: {describe(exc)}")
                    break
        self.instances = []
