"""Compare two RunRecords: per matching (kind, subject, metric), is the difference beyond noise?

For every result with samples in both runs (status ok): the p50 of each, the ratio
p50(new) / p50(baseline) with a percentile-bootstrap interval (``stats.ratio_ci``, unpaired: two
runs share no rounds), and ``beyond_noise`` when the interval excludes 1. Density results give
two rows per (target, level): the memory per instance (the mean over instances, as the record's
estimate is, in bytes) and the p50 start time. A side with one sample has no interval (a
density level of 1 instance): its ratio is shown, never called beyond noise. Plain dicts, no
pandas, so ``isoinspect results compare`` stays light; the HTML report can build its tables
from these (``p50_baseline``/``p50_new`` hold the row's ``statistic``, in its ``unit``).
"""

from __future__ import annotations

from typing import Callable, Iterator

from isoinspect.benches import stats

DEFAULT_CONFIDENCE = 0.95
MEMORY_METRIC = "MiB per instance"
#: metric -> (statistic, its name, the samples' unit); every other metric: p50 of seconds
FORMS: dict[str, tuple[Callable, str, str]] = {MEMORY_METRIC: (stats.mean, "mean", "bytes")}
SECONDS_FORM: tuple[Callable, str, str] = (stats.median, "p50", "s")


def _density(result: dict) -> Iterator[tuple[tuple[str, str, str], object]]:
    """bench density: the per-instance bytes (the estimate's values) and the start times."""
    subject = f"{result.get('target')} x{result.get('level')}"
    estimate = result.get("per_instance_bytes")
    if isinstance(estimate, dict):
        yield ("density", subject, MEMORY_METRIC), estimate.get("values")
    yield ("density", subject, "s per start"), result.get("samples")


def keyed_samples(run: dict) -> Iterator[tuple[tuple[str, str, str], list[float]]]:
    """((kind, subject, metric), samples) for every successful result of ``run`` with samples."""
    for result in run.get("results") or []:
        if str(result.get("status", "")).lower() != "ok":
            continue
        kind = result.get("kind")
        if kind == "startup":
            key = (kind, str(result.get("target")), str(result.get("metric")))
            samples = result.get("samples")
        elif kind == "concurrency":
            key = (kind, f"{result.get('target')} x{result.get('level')}", "s per start")
            samples = result.get("samples")
        elif kind == "namespace_cost":
            key = (kind, f"{result.get('namespace')} {result.get('op')}",
                   f"concurrency {result.get('concurrency', 1)}")
            samples = result.get("samples")
        elif kind == "overhead":
            key = (kind, str(result.get("target")), f"{result.get('test')} s/op")
            samples = result.get("samples")
        elif kind == "trace_overhead":
            key = (kind, str(result.get("target") or "start-up"), "with tracer")
            samples = result.get("samples_with")
        elif kind == "density":
            for key, samples in _density(result):
                if isinstance(samples, list) and samples:
                    yield key, [float(x) for x in samples]
            continue
        else:
            continue
        if isinstance(samples, list) and samples:
            yield key, [float(x) for x in samples]


def compare(baseline: dict, new: dict, confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """{"baseline", "new", "rows": [...], "only_baseline": [...], "only_new": [...]}."""
    before = dict(keyed_samples(baseline))
    after = dict(keyed_samples(new))
    rows = []
    for key, samples in after.items():
        if key not in before:
            continue
        kind, subject, metric = key
        statistic, name, unit = FORMS.get(metric, SECONDS_FORM)
        ratio = stats.ratio_ci(samples, before[key], statistic, confidence=confidence)
        interval = ratio["ci"] if min(len(samples), len(before[key])) >= 2 else None
        beyond = interval is not None and not interval[0] <= 1.0 <= interval[1]
        if beyond:
            verdict = ("more" if ratio["ratio"] > 1 else "less") if unit == "bytes" else \
                ("slower" if ratio["ratio"] > 1 else "faster")
        else:
            verdict = "within noise" if interval else "no interval (1 sample)"
        rows.append({"kind": kind, "subject": subject, "metric": metric,
                     "statistic": name, "unit": unit,
                     "n_baseline": len(before[key]), "n_new": len(samples),
                     "p50_baseline": statistic(before[key]), "p50_new": statistic(samples),
                     "ratio": ratio["ratio"], "ci": interval, "confidence": confidence,
                     "beyond_noise": beyond, "verdict": verdict})
    return {"baseline": baseline.get("run_id"), "new": new.get("run_id"), "rows": rows,
            "only_baseline": [list(k) for k in before if k not in after],
            "only_new": [list(k) for k in after if k not in before]}


def _value(row: dict, value: float) -> str:
    """The row's statistic as read: ms for seconds, MiB for bytes."""
    if row.get("unit") == "bytes":
        return f"{row.get('statistic', 'mean')} {value / 2 ** 20:.3f} MiB"
    return f"{row.get('statistic', 'p50')} {value * 1e3:.3f} ms"


def _ratio(row: dict) -> str:
    interval = row["ci"]
    return f"{row['ratio']:.3f} " + (f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval
                                     else "[no CI]")


def format_comparison(comparison: dict) -> str:
    """A fixed-width table (times in ms, memory in MiB; ratio = new / baseline)."""
    headers = ["kind", "subject", "metric", "baseline", "new", "ratio [95% CI]", "verdict"]
    rows = [[r["kind"], r["subject"], r["metric"], _value(r, r["p50_baseline"]),
             _value(r, r["p50_new"]), _ratio(r), r["verdict"]]
            for r in comparison["rows"]]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    lines = [f"{comparison['new']} vs baseline {comparison['baseline']}",
             "  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if 3 <= i <= 4 else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    if not rows:
        lines.append("(no result with samples in both runs)")
    beyond = sum(r["beyond_noise"] for r in comparison["rows"])
    lines.append(f"{beyond} of {len(rows)} differences beyond noise")
    for label, keys in (("only in baseline", comparison["only_baseline"]),
                        ("only in new", comparison["only_new"])):
        if keys:
            lines.append(f"{label}: " + ", ".join("/".join(k) for k in keys))
    return "\n".join(lines)
