"""v2 memory controller: memory.max, memory.swap.max (swap alone: memory_swap - memory),
memory.low (reservation). figures.py reads memory.current, memory.peak (Linux 5.19+),
memory.events (max, oom, oom_kill ...), memory.swap.current and memory.pressure."""

from __future__ import annotations

from .. import fs

NAME = "memory"
SWAP_UNSUPPORTED = "memory_swap not enforced: no memory.swap.max (kernel without swap accounting)"


def needed(res) -> bool:
    return res.memory is not None or res.memory_swap is not None \
        or res.memory_reservation is not None


def _limit(value: int) -> str | int:
    return "max" if value == -1 else value


def apply(directory: str, res) -> list[str]:
    warnings = []
    if res.memory is not None:
        fs.write_value(directory, "memory.max", _limit(res.memory))
    if res.memory_swap is not None:
        swap = -1 if res.memory_swap == -1 else res.memory_swap - res.memory
        if not fs.write_if_present(directory, "memory.swap.max", _limit(swap)):
            warnings.append(SWAP_UNSUPPORTED)
    if res.memory_reservation is not None:
        fs.write_value(directory, "memory.low", _limit(res.memory_reservation))
    return warnings
