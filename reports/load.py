"""RunRecords -> pandas DataFrames, one function per result kind.

The report reads records only through here, so a malformed result (a field of the wrong type)
becomes one clear ``RecordError`` naming the file and the result, not a traceback halfway
through rendering. Every frame has a ``run`` column (the run id); times stay in seconds.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from isoinspect.benches import record as records
from isoinspect.benches import stats
from isoinspect.benches.record import RecordError
from isoinspect.runtime.errors import USAGE_EXIT_CODE


def load_runs(refs: Sequence[str], directory: str | None = None) -> list[dict]:
    """Load and check every record (path, run id, prefix or ``latest``; a bundle file gives
    all of its records); refuse empty runs."""
    if not refs:
        raise RecordError("no run given: name a run id, a record file or 'latest'",
                          exit_code=USAGE_EXIT_CODE)
    loaded = []
    for data, in_folder in ((run, in_folder) for ref, in_folder in _expanded(refs)
                            for run in records.load_all(ref, directory)):
        if not data["results"] and in_folder:
            continue    # a run of the folder interrupted before it measured: nothing to show
        if not data["results"]:
            raise RecordError(f"run {data.get('run_id', '?')} ({data['_path']}) has no results: "
                              "nothing to report (was it interrupted before measuring?)",
                              exit_code=USAGE_EXIT_CODE)
        for number, result in enumerate(data["results"]):
            check_result(result, f"{data['_path']}: result {number}")
        loaded.append(data)
    if not loaded:
        raise RecordError(f"no run with results in {', '.join(refs)}: nothing to report",
                          exit_code=USAGE_EXIT_CODE)
    return loaded


def _expanded(refs: Sequence[str]) -> list[tuple[str, bool]]:
    """Each ref, a folder standing for every record in it (``*.json``, e.g. records copied from
    several hosts): (ref, whether it came from a folder). RecordError for a folder without any."""
    import glob
    import os

    out: list[tuple[str, bool]] = []
    for ref in refs:
        if not os.path.isdir(ref):
            out.append((ref, False))
            continue
        found = sorted(glob.glob(os.path.join(ref, "*.json")))
        if not found:
            raise RecordError(f"{ref} is a folder without run records (*.json)",
                              exit_code=USAGE_EXIT_CODE)
        out += [(path, True) for path in found]
    return out


#: what makes two results "the same measurement", by kind (for merging and comparing runs)
IDENTITY: dict[str, tuple[str, ...]] = {
    "startup": ("target", "metric"), "concurrency": ("target", "level"),
    "namespace_cost": ("namespace", "op", "concurrency"), "verify": ("runtime", "check"),
    "trace_overhead": ("target",), "trace": ("target",), "overhead": ("target", "test"),
    "density": ("target", "level"), "exposure": ("runtime", "workload"),
    "isolation": ("runtime",),
}


def identity(result: dict) -> tuple:
    kind = result.get("kind")
    return (kind, *(result.get(f) for f in IDENTITY.get(kind, ())))


def by_time(runs: Sequence[dict]) -> list[dict]:
    """Oldest first (creation time, then run id): the first is the baseline of comparisons."""
    return sorted(runs, key=lambda r: (r.get("created") or 0, r.get("run_id", "")))


#: result fields naming what was measured: a second machine qualifies them (``runc @ b (6.1)``)
SUBJECT_FIELDS = ("target", "runtime")


#: what tells two machines apart, besides the host name: kernel, CPU model and count, memory
MACHINE_FIELDS = ("kernel", "cpu", "cpus", "memory_bytes")


def _short_kernel(kernel: str) -> str:
    """``6.18.44-fc-v1300`` -> ``6.18``: enough to tell kernels apart in a label, mostly."""
    return ".".join(str(kernel).split("-")[0].split(".")[:2]) or "?"


def _machine_keys(runs: Sequence[dict]) -> dict[str, tuple]:
    """run id -> which machine. The host name (recorded since the reports compare machines)
    splits machines only where records of the same hardware and kernel name several hosts, so
    a record from before it was recorded joins its machine's newer ones."""
    base = {r["run_id"]: tuple(str((r.get("machine") or {}).get(f) or "")
                               for f in MACHINE_FIELDS) for r in runs}
    hosts: dict[tuple, set[str]] = {}
    for r in runs:
        host = (r.get("machine") or {}).get("host")
        if host:
            hosts.setdefault(base[r["run_id"]], set()).add(str(host))
    return {r["run_id"]: base[r["run_id"]] + (
        (str((r.get("machine") or {}).get("host") or ""),)
        if len(hosts.get(base[r["run_id"]], ())) > 1 else ()) for r in runs}


def machine_labels(runs: Sequence[dict]) -> dict[str, str]:
    """run id -> a short label of its machine, ``host (6.18)``; the full kernel, then a number,
    where short labels would collide. One label for all runs when they share one machine."""
    ordered = by_time(runs)
    keys = _machine_keys(ordered)
    machines: dict[tuple, dict] = {}
    for run in ordered:   # the newest record's machine names it (it may know its host)
        machines[keys[run["run_id"]]] = run.get("machine") or {}
    order = list(dict.fromkeys(keys[r["run_id"]] for r in ordered))

    def name(key: tuple, number: int) -> str:
        return machines[key].get("host") or f"machine {number}"

    labels = {key: f"{name(key, n)} ({_short_kernel(machines[key].get('kernel', '?'))})"
              for n, key in enumerate(order, start=1)}
    if len(set(labels.values())) < len(labels):
        labels = {key: f"{name(key, n)} ({machines[key].get('kernel', '?')})"
                  for n, key in enumerate(order, start=1)}
    if len(set(labels.values())) < len(labels):
        labels = {key: f"{label} #{n}" for n, (key, label) in enumerate(labels.items(), 1)}
    return {run_id: labels[key] for run_id, key in keys.items()}


def merged(runs: Sequence[dict]) -> dict:
    """One view of several runs: the newest result of every measurement, tagged with its run.

    Runs of different kinds (a benchmark run and a verification run) combine into one report;
    a measurement made in several runs shows its newest result (the comparison shows the rest).
    Machine, versions and capabilities come from the newest run, completed by older ones.
    Runs from several machines (records copied from several hosts into one folder) make the
    machine a dimension: every result's target/runtime becomes ``name @ machine label``, so the
    same runtime on two kernels stands side by side; ``machines`` lists each machine.
    """
    from isoinspect.reports import palette

    ordered = by_time(runs)
    newest = ordered[-1]
    labels = machine_labels(ordered)
    several = len(set(labels.values())) > 1
    results: dict[tuple, dict] = {}
    for run in ordered:
        machine = labels[run["run_id"]] if several else ""
        for number, result in enumerate(run["results"]):
            result = dict(result, _run=run["run_id"], _machine=machine)
            for name in SUBJECT_FIELDS:
                if machine and isinstance(result.get(name), str):
                    result[name] = palette.machine_label(result[name], machine)
            key = (machine, *identity(result)) if result.get("kind") in IDENTITY \
                else (run["run_id"], number)
            results.pop(key, None)                 # re-insert: keep the record's order, newest
            results[key] = result
    view = {k: v for k, v in newest.items() if k != "results"}
    for field in ("machine", "versions", "capabilities", "config"):
        combined: dict = {}
        for run in ordered:
            combined.update(run.get(field) or {})
        view[field] = combined
    view["results"] = list(results.values())
    view["machines"] = [{"label": label,
                         "machine": next(r.get("machine") or {} for r in reversed(ordered)
                                         if labels[r["run_id"]] == label),
                         "runs": [r["run_id"] for r in ordered if labels[r["run_id"]] == label]}
                        for label in dict.fromkeys(labels[r["run_id"]] for r in ordered)
                        ] if several else []
    view["sources"] = [{"run_id": r["run_id"], "command": r.get("command", ""),
                        "created": r.get("created"), "finished": r.get("finished"),
                        "interrupted": bool(r.get("interrupted")), "results": len(r["results"]),
                        "kernel": (r.get("machine") or {}).get("kernel"),
                        "machine": labels[r["run_id"]] if several else ""} for r in ordered]
    return view


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not
                                           isinstance(v, bool) for v in value)


#: fields the report reads, by kind: field -> (test, what it must be)
_SHAPES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "startup": {"samples": (_numbers, "a list of numbers"),
                "phases": (lambda v: isinstance(v, dict) and all(map(_numbers, v.values())),
                           "an object of number lists")},
    "concurrency": {"samples": (_numbers, "a list of numbers"),
                    "level": (lambda v: _numbers([v]), "a number")},
    "namespace_cost": {"samples": (_numbers, "a list of numbers")},
    "trace_overhead": {"samples_with": (_numbers, "a list of numbers"),
                       "samples_without": (_numbers, "a list of numbers")},
    "verify": {"evidence": (lambda v: isinstance(v, dict), "an object")},
    "isolation": {"properties": (lambda v: isinstance(v, dict), "an object"),
                  "evidence": (lambda v: isinstance(v, dict), "an object")},
    "trace": {"phases": (lambda v: isinstance(v, list) and all(
        isinstance(p, dict) and _numbers([_stamp(p)]) for p in v),
        "a list of {phase, t_ns}")},
    "overhead": {"samples": (_numbers, "a list of numbers"),
                 "ratio": (lambda v: _interval(v), "an object {ratio, ci}"),
                 "control_ratio": (lambda v: _interval(v), "an object {ratio, ci}")},
    "density": {"samples": (_numbers, "a list of numbers"),
                "per_instance_bytes": (lambda v: isinstance(v, dict) and _numbers(
                    [v.get("estimate")]), "an object {estimate, ci}")},
    "exposure": {"top": (lambda v: isinstance(v, list) and all(
        isinstance(t, dict) for t in v), "a list of {name, calls}"),
        "allowed": (lambda v: isinstance(v, dict), "an object")},
}


def _interval(value: Any) -> bool:
    """{ratio: number, ci: [lo, hi]} (either bound may be null)."""
    return (isinstance(value, dict) and _numbers([value.get("ratio")])
            and isinstance(value.get("ci"), list) and len(value["ci"]) == 2
            and _numbers([c for c in value["ci"] if c is not None]))


def _stamp(phase: dict) -> Any:
    """A traced phase's kernel time: ``t_ns`` (the contract) or ``ts_ns`` (inspector.timeline)."""
    return phase.get("t_ns", phase.get("ts_ns"))


def check_result(result: dict, where: str) -> None:
    """RecordError unless the fields this report reads have the contract's types."""
    kind = result.get("kind")
    if kind not in records.RESULT_KINDS:
        return  # a kind this report does not know (from a newer producer): ignored
    missing = [f for f in records.RESULT_KINDS[kind] if f not in result]
    if missing:
        raise RecordError(f"{where} ({kind}) is malformed: it lacks {', '.join(missing)}",
                          exit_code=USAGE_EXIT_CODE)
    for field, (test, what) in _SHAPES.get(kind, {}).items():
        if result.get(field) is not None and not test(result[field]):
            raise RecordError(f"{where} ({kind}) is malformed: {field} must be {what}",
                              exit_code=USAGE_EXIT_CODE)


def _results(runs: Sequence[dict], kind: str):
    for run in runs:
        for result in run["results"]:
            if result.get("kind") == kind:
                yield run["run_id"], result


def _frame(rows: list[dict], columns: Sequence[str]):
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


def _p50(samples: Sequence[float]) -> float | None:
    return stats.median(samples) if samples else None


def startup_summary(runs: Sequence[dict]):
    """One row per (run, target, metric): status, n, p50/p90/p99 and the p50 CI (s)."""
    rows = []
    for run_id, r in _results(runs, "startup"):
        samples = r.get("samples") or []
        summary = stats.summarize(samples) if samples else {"n": 0}
        ci = summary.get("p50_ci") or [None, None]
        label = ", ".join(f"{k} {v}" for k, v in (r.get("labels") or {}).items())
        rows.append({"run": run_id, "target": r["target"], "metric": r["metric"],
                     "status": r["status"], "reason": r.get("reason") or "",
                     "notes": str(r.get("notes") or ""),
                     "version": str(r.get("version") or ""), "label": label,
                     "n": summary["n"],
                     "p50": summary.get("p50"), "p50_lo": ci[0], "p50_hi": ci[1],
                     "p90": summary.get("p90"), "p99": summary.get("p99")})
    return _frame(rows, ["run", "target", "metric", "status", "reason", "notes", "version",
                         "label", "n", "p50", "p50_lo", "p50_hi", "p90", "p99"])


def startup_samples(runs: Sequence[dict]):
    """Long form: one row per sample (run, target, metric, round, seconds)."""
    rows = []
    for run_id, r in _results(runs, "startup"):
        samples = r.get("samples") or []
        rounds = r.get("rounds") or list(range(len(samples)))
        for index, value in enumerate(samples):
            rows.append({"run": run_id, "target": r["target"], "metric": r["metric"],
                         "round": rounds[index] if index < len(rounds) else index,
                         "seconds": value})
    return _frame(rows, ["run", "target", "metric", "round", "seconds"])


def phases(runs: Sequence[dict]):
    """p50 of each start-up phase per (run, target, metric), in the record's phase order."""
    rows = []
    for run_id, r in _results(runs, "startup"):
        for order, (phase, values) in enumerate((r.get("phases") or {}).items()):
            if values:
                rows.append({"run": run_id, "target": r["target"], "metric": r["metric"],
                             "phase": phase, "order": order, "p50": stats.median(values)})
    return _frame(rows, ["run", "target", "metric", "phase", "order", "p50"])


def concurrency(runs: Sequence[dict]):
    rows = [{"run": run_id, "target": r["target"], "level": r["level"], "status": r["status"],
             "containers_per_second": r.get("containers_per_second"),
             "wall_s": r.get("wall_s"), "p50": _p50(r.get("samples") or [])}
            for run_id, r in _results(runs, "concurrency")]
    return _frame(rows, ["run", "target", "level", "status", "containers_per_second", "wall_s",
                         "p50"])


def namespace_cost(runs: Sequence[dict]):
    """One row per (run, namespace type, op, concurrency level); a type measured on several
    machines is ``type @ machine``."""
    from isoinspect.reports import palette

    rows = []
    for run_id, r in _results(runs, "namespace_cost"):
        samples = r.get("samples") or []
        lo, hi = stats.quantile_ci(samples, 0.5) if samples else (None, None)
        namespace = palette.machine_label(r["namespace"], r.get("_machine") or "")
        rows.append({"run": run_id, "namespace": namespace, "op": r["op"],
                     "machine": r.get("_machine") or "",
                     "concurrency": r.get("concurrency", 1), "status": r["status"],
                     "n": len(samples), "p50": _p50(samples), "p50_lo": lo, "p50_hi": hi,
                     "rate_per_s": r.get("rate_per_s")})
    return _frame(rows, ["run", "namespace", "op", "machine", "concurrency", "status", "n", "p50",
                         "p50_lo", "p50_hi", "rate_per_s"])


def verify(runs: Sequence[dict]):
    rows = [{"run": run_id, "runtime": r["runtime"], "check": r["check"],
             "limit": r.get("limit") or r["check"].split("-")[0], "status": r["status"],
             "measured": r.get("measured"), "expected": r.get("expected"),
             "tolerance": r.get("tolerance"), "unit": r.get("unit") or "",
             "why": r.get("why") or "", "evidence": r.get("evidence") or {},
             "control": is_control(r)}
            for run_id, r in _results(runs, "verify")]
    return _frame(rows, ["run", "runtime", "check", "limit", "status", "measured", "expected",
                         "tolerance", "unit", "why", "evidence", "control"])


def is_control(result: dict) -> bool:
    """A control runtime's result (limits left out on purpose: each check is expected to FAIL):
    ``expected_status`` in the record, or the runtime named ``control`` (older records)."""
    from isoinspect.reports import palette

    return (result.get("expected_status") == "FAIL"
            or palette.runtime_of(result.get("runtime") or "") == "control")


#: how records written before the tracer process measured the overhead (no ``setup`` field)
LEGACY_OVERHEAD_SETUP = "tracer in the benchmarking process, untraced block then traced block"


def trace_overhead(runs: Sequence[dict]):
    """One row per (run, target): ratio traced / untraced with its CI, how it was measured
    (``setup``; older records: LEGACY_OVERHEAD_SETUP), the probes' BPF time per traced run."""
    rows = []
    for run_id, r in _results(runs, "trace_overhead"):
        ci = r.get("ci") or [None, None]
        with_ = r.get("samples_with") or []
        bpf = r.get("bpf_run_time_ns")
        rows.append({"run": run_id, "target": r.get("target") or "", "status": r["status"],
                     "setup": r.get("setup") or LEGACY_OVERHEAD_SETUP,
                     "pairs": r.get("pairs"),
                     "ratio": r.get("ratio"), "ci_lo": ci[0], "ci_hi": ci[1],
                     "p50_with": _p50(with_),
                     "p50_without": _p50(r.get("samples_without") or []),
                     "samples_with": with_,
                     "samples_without": r.get("samples_without") or [],
                     "bpf_run_time_ns": bpf,
                     "bpf_us_per_run": bpf / len(with_) / 1e3 if bpf and with_ else None,
                     "bpf_untraced_us_per_run": _per(r.get("bpf_untraced_run_time_ns_per_run"),
                                                     1e3),
                     "events": r.get("events"), "lost": r.get("lost"),
                     "reason": r.get("reason") or ""})
    return _frame(rows, ["run", "target", "status", "setup", "pairs", "ratio", "ci_lo", "ci_hi",
                         "p50_with", "p50_without", "samples_with", "samples_without",
                         "bpf_run_time_ns", "bpf_us_per_run", "bpf_untraced_us_per_run",
                         "events", "lost", "reason"])


def traces(runs: Sequence[dict]):
    """One row per traced phase: offset from the trace's first phase, in seconds."""
    rows = []
    for run_id, r in _results(runs, "trace"):
        marks = r.get("phases") or []
        origin = min((_stamp(p) for p in marks), default=0)
        for p in sorted(marks, key=_stamp):
            rows.append({"run": run_id, "target": r["target"], "status": r["status"],
                         "phase": p.get("phase", "?"), "offset": (_stamp(p) - origin) / 1e9})
    return _frame(rows, ["run", "target", "status", "phase", "offset"])


def _bounds(interval: Any) -> tuple[Any, Any, Any]:
    """(ratio, lo, hi) of a {ratio, ci} object; Nones when absent."""
    if not isinstance(interval, dict):
        return None, None, None
    lo, hi = (list(interval.get("ci") or []) + [None, None])[:2]
    return interval.get("ratio"), lo, hi


def overhead(runs: Sequence[dict]):
    """bench overhead: one row per (run, target, test): status and reason, p50 value as shown
    (``value`` + ``value_unit``), p50 seconds per op, the ratio to the host and the ratio over
    the target's own cpu control (each with its CI), the harness-suspect flag, the accelerator
    of a VM target (empty otherwise), the file system a file test wrote in and whether a device
    test's writes stayed in memory (``no_device``)."""
    rows = []
    for run_id, r in _results(runs, "overhead"):
        ratio, lo, hi = _bounds(r.get("ratio"))
        control, control_lo, control_hi = _bounds(r.get("control_ratio"))
        samples = r.get("samples") or []
        rows.append({"run": run_id, "target": r["target"], "test": r["test"],
                     "status": r["status"], "reason": r.get("reason") or "",
                     "value": r.get("value"), "value_unit": r.get("value_unit") or "",
                     "n": len(samples), "p50": _p50(samples),
                     "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi,
                     "control": control, "control_lo": control_lo, "control_hi": control_hi,
                     "harness_suspect": bool(r.get("harness_suspect")),
                     "accelerator": str((r.get("labels") or {}).get("accelerator") or ""),
                     "errors": int(r.get("error_count") or 0),
                     "fs": str(r.get("fs") or ""), "no_device": bool(r.get("no_device"))})
    return _frame(rows, ["run", "target", "test", "status", "reason", "value", "value_unit",
                         "n", "p50", "ratio", "ratio_lo", "ratio_hi", "control", "control_lo",
                         "control_hi", "harness_suspect", "accelerator", "errors", "fs",
                         "no_device"])


def _per(total: Any, n: Any) -> float | None:
    return total / n if _numbers([total]) and _numbers([n]) and n else None


def density(runs: Sequence[dict]):
    """bench density: one row per (run, target, level), bytes per instance: the estimate with
    its CI, the runtime's PSS and the cgroup charge per instance, daemons' growth and the host's
    MemAvailable drop per instance; the Nth start (s); failure as text. ``level`` is None for a
    target that could not run at all (status unsupported | failed, reason)."""
    rows = []
    for run_id, r in _results(runs, "density"):
        estimate = r.get("per_instance_bytes") or {}
        lo, hi = (list(estimate.get("ci") or []) + [None, None])[:2]
        n = r.get("instances")
        failure = r.get("failure")
        if isinstance(failure, dict):
            failure = (f"instance {failure.get('instance', '?')}: "
                       f"{failure.get('error', 'failed')}")
        rows.append({"run": run_id, "target": r["target"], "level": r["level"],
                     "status": r["status"], "reason": r.get("reason") or "",
                     "instances": n, "per_instance": estimate.get("estimate"),
                     "per_lo": lo, "per_hi": hi,
                     "runtime_pss": _per(r.get("runtime_pss_bytes"), n),
                     "cgroup": _per(r.get("cgroup_bytes"), n),
                     "daemons": r.get("daemon_growth_per_instance_bytes"),
                     "host_used": r.get("host_used_per_instance_bytes"),
                     "nth_start": r.get("nth_start_seconds"),
                     "p50_start": _p50(r.get("samples") or []),
                     "failure": str(failure or ""), "notes": str(r.get("notes") or ""),
                     "accelerator": str((r.get("labels") or {}).get("accelerator") or "")})
    return _frame(rows, ["run", "target", "level", "status", "reason", "instances",
                         "per_instance", "per_lo", "per_hi", "runtime_pss", "cgroup", "daemons",
                         "host_used", "nth_start", "p50_start", "failure", "notes",
                         "accelerator"])


def exposure(runs: Sequence[dict]):
    """exposure: one row per (run, runtime, workload): host syscalls (total, distinct, per
    second, failed share), the top syscalls [(name, calls)], and what the unit was allowed:
    seccomp mode and allowed count, capabilities, namespaces shared with the host, whether it
    shares the host kernel (True, False or a text such as "via the Sentry")."""
    rows = []
    for run_id, r in _results(runs, "exposure"):
        allowed = r.get("allowed") or {}
        top = [(str(t.get("name", "?")), t.get("calls")) for t in r.get("top") or []]
        capabilities = allowed.get("capabilities")
        rows.append({"run": run_id, "runtime": r["runtime"], "workload": r["workload"],
                     "status": r["status"], "reason": r.get("reason") or "",
                     "total": r.get("total"), "distinct": r.get("distinct"),
                     "per_second": r.get("per_second"), "failed_share": r.get("failed_share"),
                     "seconds": r.get("seconds"), "top": top,
                     "seccomp": str(allowed.get("seccomp") or ""),
                     "seccomp_allowed": allowed.get("seccomp_allowed_syscalls"),
                     "seccomp_profile": str(allowed.get("seccomp_profile") or ""),
                     "capabilities": allowed.get("capabilities_effective"),
                     "capability_names": list(capabilities) if isinstance(capabilities, list)
                     else [],
                     "namespaces_shared": list(allowed.get("namespaces_shared_with_host")
                                               or []),
                     "shares_host_kernel": allowed.get("shares_host_kernel")})
    return _frame(rows, ["run", "runtime", "workload", "status", "reason", "total", "distinct",
                         "per_second", "failed_share", "seconds", "top", "seccomp",
                         "seccomp_allowed", "seccomp_profile", "capabilities",
                         "capability_names", "namespaces_shared", "shares_host_kernel"])


def exposure_per_op(runs: Sequence[dict]):
    """exposure of the workload program (``--workload overhead`` or one of its tests): one row
    per (run, runtime, workload, test): the program's status and figure, its operations, the
    host syscalls of its window, per operation, the distinct ones, the top [(name, per op)]."""
    rows = []
    for run_id, r in _results(runs, "exposure"):
        for t in r.get("tests") or []:
            if not isinstance(t, dict) or "test" not in t:
                continue
            top = [(str(x.get("name", "?")), x.get("per_op")) for x in t.get("top") or []
                   if isinstance(x, dict)]
            rows.append({"run": run_id, "runtime": r["runtime"], "workload": r["workload"],
                         "test": str(t["test"]), "status": str(t.get("status") or ""),
                         "reason": str(t.get("reason") or ""), "ops": t.get("ops"),
                         "value": t.get("value"), "unit": str(t.get("unit") or ""),
                         "calls": t.get("calls"), "per_op": t.get("calls_per_op"),
                         "distinct": t.get("distinct"), "top": top})
    return _frame(rows, ["run", "runtime", "workload", "test", "status", "reason", "ops",
                         "value", "unit", "calls", "per_op", "distinct", "top"])


def isolation(runs: Sequence[dict]):
    """One row per (run, runtime): status, reason, the properties and evidence objects."""
    rows = [{"run": run_id, "runtime": r["runtime"], "status": r["status"],
             "reason": r.get("reason") or "", "properties": r.get("properties") or {},
             "evidence": r.get("evidence") or {}}
            for run_id, r in _results(runs, "isolation")]
    return _frame(rows, ["run", "runtime", "status", "reason", "properties", "evidence"])
