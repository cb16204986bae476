"""v2 cpu controller: cpu.max ("$QUOTA $PERIOD" or "max $PERIOD"), cpu.weight (1..10000, from v1
shares with runc's formula); figures.py reads cpu.stat (usage/user/system/throttled in µs)."""

from __future__ import annotations

from .. import fs
from ..resources import shares_to_weight

NAME = "cpu"


def needed(res) -> bool:
    return res.cpu_quota_us is not None or res.cpu_shares is not None \
        or res.cpu_rt_period_us is not None or res.cpu_rt_runtime_us is not None


def apply(directory: str, res) -> list[str]:
    if res.cpu_rt_period_us is not None or res.cpu_rt_runtime_us is not None:
        raise ValueError("resources: real-time CPU limits (cpu_rt_period_us, "
                         "cpu_rt_runtime_us) do not exist on cgroup v2")
    quota = res.cpu_quota_us
    if quota is not None:
        fs.write_value(directory, "cpu.max",
                       f"{'max' if quota == -1 else quota} {res.cpu_period_us}")
    if res.cpu_shares is not None:
        fs.write_value(directory, "cpu.weight", shares_to_weight(res.cpu_shares))
    return []
