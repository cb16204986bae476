"""v1 cpu controller: CFS bandwidth (cpu.cfs_period_us, cpu.cfs_quota_us), cpu.shares, cpu.stat
(nr_periods, nr_throttled, throttled_time in ns)."""

from __future__ import annotations

from .. import fs

NAME = "cpu"
SECTION = "cpu"


def needed(res) -> bool:
    return res.cpu_quota_us is not None or res.cpu_shares is not None


def apply(directory: str, res) -> list[str]:
    if res.cpu_quota_us is not None:
        if res.cpu_quota_us != -1:
            fs.write_value(directory, "cpu.cfs_period_us", res.cpu_period_us)
        fs.write_value(directory, "cpu.cfs_quota_us", res.cpu_quota_us)
    if res.cpu_shares is not None:
        fs.write_value(directory, "cpu.shares", res.cpu_shares)
    return []


def stats(directory: str) -> dict | None:
    stat = fs.read_keyed(directory, "cpu.stat")
    if stat is None:
        return None
    return {
        "nr_periods": stat.get("nr_periods", 0),
        "nr_throttled": stat.get("nr_throttled", 0),
        "throttled_usec": stat.get("throttled_time", 0) // 1000,
        "quota_us": fs.read_int(directory, "cpu.cfs_quota_us"),
        "period_us": fs.read_int(directory, "cpu.cfs_period_us"),
        "shares": fs.read_int(directory, "cpu.shares"),
    }
