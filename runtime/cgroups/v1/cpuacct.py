"""v1 cpuacct controller: accounting only (cpuacct.usage and, on newer kernels,
cpuacct.usage_user / cpuacct.usage_sys, all in ns; figures.py reads them, in µs). The driver
creates and joins its hierarchy; there is nothing to apply."""

from __future__ import annotations

NAME = "cpuacct"


def needed(res) -> bool:
    return False


def apply(directory: str, res) -> list[str]:
    return []

