"""Forward the signals a user sends to `isoinspect run` or `exec` to the container's process.

Uses the _signal C module directly: the signal package imports enum, which costs
milliseconds on the start path.
"""

from __future__ import annotations

from isoinspect.runtime.linux.signals import SIGHUP, SIGINT, SIGQUIT, SIGTERM
from isoinspect.runtime.process import send_signal

_FORWARDED_SIGNALS = (SIGHUP, SIGINT, SIGQUIT, SIGTERM)


class SignalForwarder:
    """Forward SIGHUP/SIGINT/SIGQUIT/SIGTERM to the container, like ``docker run`` does.

    Installed before the container is cloned so that no signal is lost in the window between
    the container's exec and the moment its pid is known: signals that arrive then are kept
    and delivered as soon as ``attach(pid)`` is called.
    """

    def __init__(self) -> None:
        import _signal

        self.pid = 0
        self.pending: list[int] = []
        self.previous = {}
        for signum in _FORWARDED_SIGNALS:
            try:
                self.previous[signum] = _signal.signal(signum, self._handle)
            except (OSError, ValueError):
                pass  # not the main thread: leave signals alone

    def _handle(self, signum: int, _frame: object) -> None:
        if self.pid:
            send_signal(self.pid, signum)
        else:
            self.pending.append(signum)

    def attach(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            send_signal(pid, signum)
        self.pending.clear()

    def restore(self) -> None:
        import _signal

        for signum, handler in self.previous.items():
            try:
                _signal.signal(signum, handler)
            except (OSError, ValueError, TypeError):
                pass
