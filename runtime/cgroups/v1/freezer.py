"""v1 freezer controller: freezer.state THAWED / FREEZING / FROZEN."""

from __future__ import annotations

from .. import fs

NAME = "freezer"
STATE = "freezer.state"


def needed(res) -> bool:
    return False


def apply(directory: str, res) -> list[str]:
    return []


def _set(directory: str, state: str, timeout: float) -> None:
    def reached() -> bool:
        if fs.read_value(directory, STATE) == state:
            return True
        # Still FREEZING (a task was forking or in an uninterruptible sleep): ask again, as runc
        # does; writing the same state is idempotent.
        fs.write_value(directory, STATE, state)
        return False
    fs.write_value(directory, STATE, state)
    fs.wait_for(reached, timeout, f"{directory}/{STATE} to become {state}")


def is_frozen(directory: str) -> bool:
    """FROZEN only: FREEZING is a freeze still in progress (or stuck), not a paused cgroup."""
    return fs.read_value(directory, STATE) == "FROZEN"


def freeze(directory: str, timeout: float = 2.0) -> None:
    _set(directory, "FROZEN", timeout)


def thaw(directory: str, timeout: float = 2.0) -> None:
    _set(directory, "THAWED", timeout)
