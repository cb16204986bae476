"""Compare two RunRecords: per matching (kind, subject, metric), is the difference beyond noise?

For every result with samples in both runs (status ok): the p50 of each, the ratio
p50(new) / p50(baseline) with a percentile-bootstrap interval (``stats.ratio_ci``, unpaired: two
runs share no rounds), and ``beyond_noise`` when the interval excludes 1. Plain dicts, no pandas,
so ``isoinspect results compare`` stays light; the HTML report can build its tables from these.
"""

from __future__ import annotations

from typing import Iterator

from isoinspect.benches import stats

DEFAULT_CONFIDENCE = 0.95


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
        ratio = stats.ratio_ci(samples, before[key], confidence=confidence)
        low, high = ratio["ci"]
        beyond = not low <= 1.0 <= high
        kind, subject, metric = key
        rows.append({"kind": kind, "subject": subject, "metric": metric,
                     "n_baseline": len(before[key]), "n_new": len(samples),
                     "p50_baseline": stats.median(before[key]), "p50_new": stats.median(samples),
                     "ratio": ratio["ratio"], "ci": [low, high], "confidence": confidence,
                     "beyond_noise": beyond,
                     "verdict": ("slower" if ratio["ratio"] > 1 else "faster") if beyond
                     else "within noise"})
    return {"baseline": baseline.get("run_id"), "new": new.get("run_id"), "rows": rows,
            "only_baseline": [list(k) for k in before if k not in after],
            "only_new": [list(k) for k in after if k not in before]}


def format_comparison(comparison: dict) -> str:
    """A fixed-width table (milliseconds; ratio = new / baseline)."""
    headers = ["kind", "subject", "metric", "p50 base ms", "p50 new ms", "ratio [95% CI]",
               "verdict"]
    rows = [[r["kind"], r["subject"], r["metric"], f"{r['p50_baseline'] * 1e3:.3f}",
             f"{r['p50_new'] * 1e3:.3f}",
             f"{r['ratio']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]", r["verdict"]]
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
