"""v2 cpu controller: cpu.max ("$QUOTA $PERIOD" or "max $PERIOD"), cpu.weight (1..10000, from v1
shares with runc's formula), cpu.stat (usage/user/system/throttled in µs)."""

from __future__ import annotations

from .. import fs
from ..resources import shares_to_weight

NAME = "cpu"
SECTION = "cpu"


def needed(res) -> bool:
    return res.cpu_quota_us is not None or res.cpu_shares is not None


def apply(directory: str, res) -> list[str]:
    quota = res.cpu_quota_us
    if quota is not None:
        fs.write_value(directory, "cpu.max",
                       f"{'max' if quota == -1 else quota} {res.cpu_period_us}")
    if res.cpu_shares is not None:
        fs.write_value(directory, "cpu.weight", shares_to_weight(res.cpu_shares))
    return []


def stats(directory: str) -> dict | None:
    stat = fs.read_keyed(directory, "cpu.stat")
    if stat is None:
        return None
    out = {key: stat.get(key) for key in ("usage_usec", "user_usec", "system_usec",
                                          "nr_periods", "nr_throttled", "throttled_usec")}
    # cpu.stat exists without the cpu controller (usage only); cpu.max only with it.
    limit = fs.read_value(directory, "cpu.max")
    if limit is not None:
        quota, _, period = limit.partition(" ")
        out["quota_us"] = fs.parse_int(quota)
        out["period_us"] = int(period) if period else None
        out["weight"] = fs.read_int(directory, "cpu.weight")
    out["pressure"] = fs.read_nested(directory, "cpu.pressure")
    return out
