"""Concurrency sweep: N lifecycles in flight at once, containers per second per level.

For each level L, ``max(starts, 2 L)`` lifecycles are queued on L worker threads (each thread
spawns the target's CLI and waits for it, the GIL is released while it waits), so L starts are
in flight until the queue drains. ``containers_per_second`` = lifecycles / wall time of the
level; ``samples`` = each lifecycle's own wall time. In-process targets that clone from the
calling thread (the library, the warm pool, the VM) are reported as unsupported.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor


def sweep(target, levels: list[int], starts: int = 16, record=None) -> list[dict]:
    """One ``concurrency`` result per level (added to ``record`` as it comes)."""
    results = []
    for level in levels:
        if not target.concurrent:
            result = {"kind": "concurrency", "target": target.name, "level": level,
                      "status": "unsupported", "containers_per_second": None, "wall_s": None,
                      "samples": [], "reason": "in-process target: starts are serial"}
        else:
            result = one_level(target, level, max(starts, 2 * level))
        results.append(result)
        if record is not None:
            record.add(result)
    return results


def one_level(target, level: int, count: int) -> dict:
    samples: list[float] = []
    errors: list[str] = []

    def one() -> None:
        try:
            samples.append(target.measure("lifecycle").wall)
        except Exception as exc:  # noqa: BLE001 - counted, reported
            errors.append(str(exc)[:300])

    begin = time.perf_counter()
    with ThreadPoolExecutor(max_workers=level) as pool:
        for _ in range(count):
            pool.submit(one)
    wall = time.perf_counter() - begin
    status = "ok" if samples and not errors else "failed" if not samples else "ok"
    result = {"kind": "concurrency", "target": target.name, "level": level, "status": status,
              "containers_per_second": len(samples) / wall if wall > 0 else None,
              "wall_s": wall, "samples": samples, "unit": "s", "started": count}
    if errors:
        result.update(errors=errors[:5], error_count=len(errors))
    return result
