"""What changed between two runs, for the report.

The statistics are benches.compare's (per matching (kind, subject, metric): p50 of each run (the
mean MiB per instance for density), the ratio new / baseline with a bootstrap 95 % CI, ``beyond_noise`` when it excludes 1); here they
become a DataFrame for the table and the chart. Verification verdicts that changed are listed
separately.
"""

from __future__ import annotations

from isoinspect.benches import compare as bench_compare

COLUMNS = ["kind", "subject", "metric", "label", "statistic", "unit", "p50_baseline", "p50_new",
           "ratio", "ci_lo", "ci_hi", "beyond_noise"]


def compare(baseline: dict, new: dict):
    """A DataFrame: one row per (kind, subject, metric) measured in both runs."""
    import pandas as pd

    rows = [{**{k: row[k] for k in COLUMNS if k in row},
             "label": f"{row['kind']}: {row['subject']} ({row['metric']})",
             "ci_lo": row["ci"][0] if row["ci"] else None,
             "ci_hi": row["ci"][1] if row["ci"] else None}
            for row in bench_compare.compare(baseline, new)["rows"]]
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict_changes(baseline: dict, new: dict) -> list[dict]:
    """Verification checks run in both runs whose status differs."""
    def verdicts(run: dict) -> dict[tuple[str, str], str]:
        return {(r["runtime"], r["check"]): r["status"] for r in run["results"]
                if r.get("kind") == "verify"}

    old, now = verdicts(baseline), verdicts(new)
    return [{"runtime": runtime, "check": check, "before": old[runtime, check],
             "after": now[runtime, check]}
            for runtime, check in now if (runtime, check) in old
            and old[runtime, check] != now[runtime, check]]
