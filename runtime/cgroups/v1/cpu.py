"""v1 cpu controller: CFS bandwidth (cpu.cfs_period_us, cpu.cfs_quota_us), cpu.shares, the
real-time budget (cpu.rt_period_us, cpu.rt_runtime_us), cpu.stat (nr_periods, nr_throttled,
throttled_time in ns)."""

from __future__ import annotations

from .. import fs
from ..resources import CPU_PERIOD_DEFAULT

NAME = "cpu"


def needed(res) -> bool:
    return res.cpu_quota_us is not None or res.cpu_shares is not None \
        or res.cpu_rt_period_us is not None or res.cpu_rt_runtime_us is not None


def apply(directory: str, res) -> list[str]:
    if res.cpu_quota_us is not None:
        # With no quota the period matters only when one is asked for (`update --cpu-period`).
        if res.cpu_quota_us != -1 or res.cpu_period_us != CPU_PERIOD_DEFAULT:
            fs.write_value(directory, "cpu.cfs_period_us", res.cpu_period_us)
        fs.write_value(directory, "cpu.cfs_quota_us", res.cpu_quota_us)
    if res.cpu_shares is not None:
        fs.write_value(directory, "cpu.shares", res.cpu_shares)
    # The period first, as runc: a runtime is checked against the period in place.
    fs.write_fields(directory, (("cpu.rt_period_us", res.cpu_rt_period_us),
                                ("cpu.rt_runtime_us", res.cpu_rt_runtime_us)))
    return []
