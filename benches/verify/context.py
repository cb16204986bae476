"""What every check gets: the measuring windows (short with --quick), the work directory, the
inspector's tracer (if on) and, made on first use and always torn down, the loop device of the
I/O checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Context:
    workdir: str
    quick: bool = False
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    trace: object = None      # a trace.EnforcementTrace, or None (not asked for, or unavailable)
    _loop: object = None

    @property
    def window(self) -> float:
        """Seconds over which a rate (CPU share, bytes/s) is measured."""
        return 1.5 if self.quick else 3.0

    @property
    def warmup(self) -> float:
        return 0.3 if self.quick else 0.5

    def loop(self):
        """The test's loop device with an ext4 on it (a :class:`loopdev.LoopScratch`)."""
        if self._loop is None:
            from isoinspect.benches.verify.loopdev import LoopScratch

            self._loop = LoopScratch(self.workdir).open()
        return self._loop

    def traced(self, box, names: tuple[str, ...]) -> list[dict] | None:
        """The inspector's eBPF events ``names`` from ``box``; None when not tracing."""
        return None if self.trace is None else self.trace.events_for(box, names)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self.trace is not None:
            self.trace.close()
            self.trace = None
