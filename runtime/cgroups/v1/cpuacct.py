"""v1 cpuacct controller: accounting only (cpuacct.usage and, on newer kernels,
cpuacct.usage_user / cpuacct.usage_sys, all in ns), reported in the "cpu" section in µs."""

from __future__ import annotations

from .. import fs

NAME = "cpuacct"
SECTION = "cpu"


def needed(res) -> bool:
    return False


def apply(directory: str, res) -> list[str]:
    return []


def _usec(directory: str, name: str) -> int | None:
    value = fs.read_int(directory, name)
    return None if value is None else value // 1000


def stats(directory: str) -> dict | None:
    usage = _usec(directory, "cpuacct.usage")
    if usage is None:
        return None
    return {
        "usage_usec": usage,
        "user_usec": _usec(directory, "cpuacct.usage_user"),
        "system_usec": _usec(directory, "cpuacct.usage_sys"),
    }
