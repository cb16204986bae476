"""The report's findings: one sentence each, with its number and interval, from the records.

A finding is written only when the data supports it: a start-up ratio only when its 95 % CI
excludes 1, a cost only when it is beyond the noise (otherwise the sentence says it is within
the noise and gives the upper bound). Each function reads the merged view (load.merged: the
newest result of each measurement; with several machines the targets are ``name @ machine``)
and returns sentences; ``findings`` is all of them, in the report's order.
"""

from __future__ import annotations

from typing import Any, Iterable

from isoinspect.reports import palette
from isoinspect.reports.tables import factor, ms, ratio_text

#: start-up targets that are not runtimes (host baselines): never "the fastest runtime"
BASELINES = ("host", "host-exec", "unshare")
#: what the fastest runtime is compared with, when measured: runc, gVisor, Docker and the VM
RIVALS = ("runc", "runsc", "docker", "qemu")
SHOWN_NAME = {"runsc": "gVisor (runsc)", "docker": "Docker", "qemu": "the VM (qemu)"}
#: the overhead test of the headline: one system call's round trip
SYSCALL_TEST = "getppid"
MIB = 2 ** 20


def _of(kind: str, view: dict) -> list[dict]:
    return [r for r in view.get("results") or [] if r.get("kind") == kind]


def _ci(value: Any) -> tuple[float, float] | None:
    """A complete numeric interval, else None (too few samples for one)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return float(value[0]), float(value[1])
    return None


def _name(target: str) -> str:
    runtime, machine = palette.runtime_of(target), palette.machine_of(target)
    return palette.machine_label(SHOWN_NAME.get(runtime, runtime), machine)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _machines(names: Iterable[str]) -> list[str]:
    return sorted({palette.machine_of(n) for n in names})


def startup(view: dict) -> list[str]:
    """Which runtime starts fastest (lowest p50) and by how much against runc, gVisor, Docker
    and the VM: ratios of p50 with bootstrap CIs (paired by round), each only when beyond noise."""
    from isoinspect.benches import stats
    from isoinspect.reports.tables import startup_ratio

    results = [r for r in _of("startup", view) if r.get("status") == "ok" and r.get("samples")]
    metrics = list(dict.fromkeys(r["metric"] for r in results))
    if not metrics:
        return []
    metric = "start_to_ready" if "start_to_ready" in metrics else metrics[0]
    sentences = []
    for machine in _machines(r["target"] for r in results):
        p50 = {r["target"]: stats.median(r["samples"]) for r in results
               if r["metric"] == metric and palette.machine_of(r["target"]) == machine
               and palette.runtime_of(r["target"]) not in BASELINES}
        if len(p50) < 2:
            continue
        fastest = min(p50, key=p50.get)
        rivals = [palette.machine_label(rival, machine) for rival in RIVALS]
        rivals = [t for t in rivals if t in p50 and t != fastest] or \
            [t for t in palette.ordered(p50) if t != fastest]
        beyond, within = [], []
        for rival in rivals:
            ratio = startup_ratio(view, metric, fastest, rival)
            ci = _ci(ratio and ratio.get("ci"))
            if ratio and ci and ci[1] < 1:
                beyond.append(f"{ratio_text(ratio['ratio'], *ci)} {_name(rival)}'s")
            else:
                within.append(_name(rival))
        if not beyond:
            continue    # the CI does not support calling it faster than anything compared
        ties = [t for t in sorted(p50, key=p50.get)[1:] if not _beyond(
            startup_ratio(view, metric, fastest, t))]
        leaders = _join([_name(t) for t in [fastest, *ties]])
        sentence = (f"{leaders} start{'' if ties else 's'} fastest ({metric} p50 "
                    f"{ms(p50[fastest])} ms{', within the noise of each other' if ties else ''}"
                    f"): {_name(fastest)}'s p50 is {_join(beyond)} (95% CI)")
        within = [w for w in within if w not in {_name(t) for t in ties}]
        if within:
            sentence += f"; against {_join(within)} the difference is within the noise"
        sentences.append(sentence + ".")
    return sentences + machines(view, metric, results)


def machines(view: dict, metric: str, results: list[dict]) -> list[str]:
    """The same runtime on several machines: each later machine's p50 against the first's,
    only where the CI excludes 1."""
    from isoinspect.reports.tables import startup_ratio

    by_runtime: dict[str, list[str]] = {}
    for r in results:
        if r["metric"] == metric and palette.machine_of(r["target"]):
            by_runtime.setdefault(palette.runtime_of(r["target"]), []).append(r["target"])
    parts = []
    for runtime in palette.ordered(by_runtime):
        first, *others = palette.ordered(by_runtime[runtime])
        for other in others:
            ratio = startup_ratio(view, metric, other, first)
            ci = _ci(ratio and ratio.get("ci"))
            if ratio and ci and (ci[0] > 1 or ci[1] < 1):
                parts.append(f"{_name(runtime)} {ratio_text(ratio['ratio'], *ci)} on "
                             f"{palette.machine_of(other)} against "
                             f"{palette.machine_of(first)}")
    if not parts:
        return []
    return [f"The same runtime on different machines ({metric} p50 ratio, 95% CI): "
            f"{_join(parts)}."]


def _beyond(ratio: dict | None) -> bool:
    """A ratio whose CI lies wholly below 1."""
    ci = _ci(ratio and ratio.get("ci"))
    return bool(ci and ci[1] < 1)


def verification(view: dict) -> list[str]:
    """Which runtimes enforced every limit they were tested on, which did not and why; whether
    the control (no limits) failed as it must."""
    from isoinspect.reports.load import is_control

    by_runtime: dict[str, list[dict]] = {}
    for r in _of("verify", view):
        by_runtime.setdefault(r["runtime"], []).append(r)
    enforced, sentences = [], []
    for runtime in palette.ordered(by_runtime):
        checks = by_runtime[runtime]
        if any(is_control(r) for r in checks):
            passed = [r["check"] for r in checks if r["status"] == "PASS"]
            failed = sum(r["status"] == "FAIL" for r in checks)
            others = "".join(f"; {r['check']} {r['status']}" for r in checks
                             if r["status"] not in ("PASS", "FAIL"))
            sentences.append(
                f"The control ({_name(runtime)}, every limit left out) failed {failed} of "
                f"{len(checks)} checks, as expected{others}" + (
                    f"; it passed {_join(passed)}: those checks cannot tell a missing limit "
                    "from an enforced one." if passed else ": the checks see a missing limit."))
            continue
        bad = [r for r in checks if r["status"] != "PASS"]
        if not bad:
            plural = "s" if len(checks) > 1 else ""
            enforced.append(f"{_name(runtime)} ({len(checks)} check{plural})")
            continue
        reasons = "; ".join(f"{r['check']} {r['status']}" + (f" ({r['why']})" if r.get("why")
                                                              else "") for r in bad)
        sentences.append(f"{_name(runtime)} enforced {len(checks) - len(bad)} of {len(checks)} "
                         f"limits; not: {reasons}.")
    if enforced:
        sentences.insert(0, f"{_join(enforced)} enforced every limit checked.")
    return sentences


def tracer(view: dict) -> list[str]:
    """The tracer's cost on start-up, per target: traced / untraced p50 with its paired CI."""
    costly, free = [], []
    for r in sorted(_of("trace_overhead", view), key=lambda r: palette.key(r.get("target") or "")):
        ci = _ci(r.get("ci"))
        ratio = r.get("ratio")
        if r.get("status") != "ok" or not isinstance(ratio, (int, float)) or ci is None:
            continue
        name = _name(r.get("target") or "start-up")
        if ci[0] > 1:
            costly.append(f"{name} {_percent(ratio)} [{_percent(ci[0])}, {_percent(ci[1])}]")
        elif ci[1] > 1:
            free.append(f"{name} (at most {_percent(ci[1])})")
        else:   # traced runs faster beyond noise: no cost to report, only the measurement
            free.append(f"{name} (traced {ratio_text(ratio, *ci)} untraced)")
    sentences = []
    if costly:
        sentences.append(f"Tracing a start-up costs {_join(costly)} (traced against untraced "
                         "p50, 95% CI, paired runs).")
    if free:
        sentences.append(f"The tracer's cost is within the noise for {_join(free)}.")
    return sentences


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def overhead(view: dict) -> list[str]:
    """A system call's round trip in each target against the host's (bench overhead)."""
    parts, level = [], []
    for r in sorted(_of("overhead", view), key=lambda r: palette.key(r["target"])):
        ratio = r.get("ratio") if isinstance(r.get("ratio"), dict) else {}
        ci = _ci(ratio.get("ci"))
        if r["test"] != SYSCALL_TEST or r.get("status") != "ok" or ci is None \
                or not isinstance(ratio.get("ratio"), (int, float)):
            continue
        text = f"{_name(r['target'])}'s ×{factor(ratio['ratio'])} [{factor(ci[0])}, " \
               f"{factor(ci[1])}]"
        (parts if ci[0] > 1 or ci[1] < 1 else level).append(text)
    sentences = []
    if parts:
        sentences.append(f"A system call's round trip ({SYSCALL_TEST}) against the host's: "
                         f"{_join(parts)} (p50 ratio, 95% CI).")
    if level:
        sentences.append(f"Within the noise of the host's system call round trip: "
                         f"{_join(level)}.")
    return sentences


def density(view: dict) -> list[str]:
    """Memory per idle instance, per target, at the highest level measured (bench density)."""
    best: dict[str, dict] = {}
    for r in _of("density", view):
        estimate = r.get("per_instance_bytes")
        if r.get("status") != "ok" or not isinstance(estimate, dict) \
                or not isinstance(estimate.get("estimate"), (int, float)):
            continue
        if r["target"] not in best or (r.get("level") or 0) > (best[r["target"]].get("level")
                                                                  or 0):
            best[r["target"]] = r
    parts = []
    for target in palette.ordered(best):
        r = best[target]
        estimate = r["per_instance_bytes"]
        ci = _ci(estimate.get("ci"))
        figures = [estimate["estimate"], *(ci or ())]
        digits = _digits([v / MIB for v in figures])
        shown = [f"{v / MIB:,.{digits}f}" for v in figures]
        text = f"{_name(target)} {shown[0]} MiB" + (f" [{shown[1]}, {shown[2]}]" if ci else "")
        parts.append(text + f" (n={r.get('level')})")
    if not parts:
        return []
    return [f"An idle instance costs, per instance: {_join(parts)} (mean of the instances' "
            "memory, 95% bootstrap CI, at the highest level measured)."]


def _digits(values: list[float]) -> int:
    """Decimals enough for three significant digits of the smallest value and for an interval's
    bounds to differ from each other and the estimate (11.50 [11.46, 11.55], not
    11.5 [11.5, 11.6]), at most four."""
    import math

    smallest = min((abs(v) for v in values if v), default=1.0)
    digits = max(0, min(4, 2 - math.floor(math.log10(smallest))))
    while digits < 4 and len({f"{v:.{digits}f}" for v in values}) < len(set(values)):
        digits += 1
    return digits


def findings(view: dict) -> list[str]:
    """Every finding the records support, in the report's order."""
    return [*startup(view), *verification(view), *tracer(view), *overhead(view),
            *density(view)]
