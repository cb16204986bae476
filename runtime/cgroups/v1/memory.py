"""v1 memory controller: memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory + swap, only
with swap accounting), memory.soft_limit_in_bytes. figures.py reads usage, max_usage, failcnt and
memory.oom_control (whose oom_kill counter exists since Linux 4.13)."""

from __future__ import annotations

from .. import fs

NAME = "memory"
LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"
SWAP_UNSUPPORTED = ("memory_swap not enforced: no memory.memsw.limit_in_bytes "
                    "(the kernel needs swap accounting, swapaccount=1)")


def needed(res) -> bool:
    return res.memory is not None or res.memory_swap is not None \
        or res.memory_reservation is not None


def apply(directory: str, res) -> list[str]:
    warnings = []
    memory, swap = res.memory, res.memory_swap
    if swap is not None and not fs.has_file(directory, MEMSW):
        warnings.append(SWAP_UNSUPPORTED)
        swap = None
    if memory == -1 and swap is None and fs.has_file(directory, MEMSW):
        swap = -1  # an unlimited memory limit above a finite memsw limit would be refused
    if swap is not None:
        # The kernel keeps limit <= memsw limit after every write: raise memsw first when the new
        # memory limit would not fit under the current memsw limit.
        current = fs.read_int(directory, MEMSW)
        if memory is None or swap == -1 or (current != -1 and memory > current):
            fs.write_value(directory, MEMSW, swap)
            swap = None
    if memory is not None:
        fs.write_value(directory, LIMIT, memory)
    if swap is not None:
        fs.write_value(directory, MEMSW, swap)
    if res.memory_reservation is not None:
        fs.write_value(directory, "memory.soft_limit_in_bytes", res.memory_reservation)
    return warnings
