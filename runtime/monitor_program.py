"""The static C monitor of ``run -d`` (runtime/monitor.c): its cached build.

Built like bench overhead's workload (runtime/static_program.py): at set-up by scripts/setup.sh,
else on first use by the first detached monitor, after the CLI has returned. Without gcc the
monitor stays the Python one (runtime/log_copier.py), silently.

    python -m isoinspect.runtime.monitor_program build     # prints the binary's path
"""

from __future__ import annotations

import os
import sys

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.static_program import StaticProgram, build_main

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor.c")
BINARY_NAME = "isoinspect-monitor"


def _check(binary: str) -> None:
    """The fresh binary runs and is the monitor."""
    import subprocess

    said = subprocess.run([binary, "--check"], capture_output=True, text=True,
                          timeout=30).stdout.strip()
    if said != BINARY_NAME:
        raise IsoinspectError(f"the monitor program built as {binary} does not run "
                              f"(said {said!r})")


MONITOR = StaticProgram("monitor", SOURCE, BINARY_NAME, _check)


def monitor_binary(cache_dir: str | None = None) -> str | None:
    """The built monitor (compiled now if needed), or None when it cannot be built."""
    try:
        return MONITOR.ensure_built(cache_dir)
    except Exception:  # noqa: BLE001 - any failure to build (gcc, a timeout): Python monitors
        return None


def main(argv: list[str] | None = None) -> int:
    return build_main(MONITOR, "isoinspect.runtime.monitor_program", "run -d", argv)


if __name__ == "__main__":
    sys.exit(main())
