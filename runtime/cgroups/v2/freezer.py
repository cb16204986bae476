"""v2 freezer: cgroup.freeze (1/0) in the core, confirmed by "frozen 1" in cgroup.events."""

from __future__ import annotations

from .. import fs

NAME = "freezer"


def needed(res) -> bool:
    return False


def apply(directory: str, res) -> list[str]:
    return []


def is_frozen(directory: str) -> bool:
    return (fs.read_keyed(directory, "cgroup.events") or {}).get("frozen") == 1


def _set(directory: str, frozen: bool, timeout: float) -> None:
    fs.write_value(directory, "cgroup.freeze", 1 if frozen else 0)
    fs.wait_for(lambda: is_frozen(directory) == frozen, timeout,
                f"{directory}/cgroup.events to show frozen {int(frozen)}")


def freeze(directory: str, timeout: float = 2.0) -> None:
    _set(directory, True, timeout)


def thaw(directory: str, timeout: float = 2.0) -> None:
    _set(directory, False, timeout)
