"""The user-facing exception types, and the one way every entry point reports a failure.

Every entry point (``isoinspect`` with its click-free ``run`` fast path and its click commands,
``python -m isoinspect``, ``isoinspect-runc``, the benchmarks' ``python -m`` commands) turns an
IsoinspectError into one line on stderr and an exit code with ``report_error``, and any other
exception into one "internal error" line with ``report_unexpected``. Only os and sys are
imported: the ``run`` fast path and ``isoinspect-runc`` use this module.
"""

from __future__ import annotations

import os
import sys


class IsoinspectError(Exception):
    """A user-facing failure: bad input, missing image, unknown container, not root...

    The CLI prints ``isoinspect: <message>`` and exits with ``exit_code`` (125 like Docker for
    errors of the runtime itself, before the container's command ran).
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(IsoinspectError):
    """Input the user gave is refused: a flag value, an argument, a name. Not ValueError, so a
    bug's ValueError is never shown as the user's mistake.

    Exit code 125 like Docker's refused flags (``docker run --memory=zz``, ``docker stop -t x``);
    bench and verify commands name it explicitly with ``exit_code=USAGE_EXIT_CODE``.
    """


USAGE_EXIT_CODE = 125  # Docker's code for a command line its CLI refuses (a flag or its value)
DAEMON_EXIT_CODE = 1  # Docker's code when a command's work fails (no such container, ...)


def die_of_closed_pipe() -> None:
    """The reader of stdout went away (``isoinspect ps | head -1``): end silently, killed by
    SIGPIPE like Docker (a Go program) and coreutils, so a shell sees status 141.

    stdout is pointed at /dev/null first so nothing buffered fails again on the way out.
    """
    import signal

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(128 + signal.SIGPIPE)  # not reached unless SIGPIPE is blocked


def die_of_interrupt() -> None:
    """Ctrl-C ended a command that follows a stream (``logs -f``, ``stats``, ``events``): flush
    what was printed, then die by SIGINT with nothing on stderr, as docker 20.10's CLI does
    (a shell sees status 130, and a script's loop stops as it should on Ctrl-C)."""
    import signal

    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    os._exit(128 + signal.SIGINT)  # not reached unless SIGINT is blocked


class NotFound(IsoinspectError):
    """An image or container that does not exist."""


class ImageNotFound(NotFound):
    """No local image answers to ``ref``: its own type so that `run` and `create` can pull it
    (Docker's --pull missing) without looking the image up a second time."""

    def __init__(self, message: str, ref: str) -> None:
        super().__init__(message)
        self.ref = ref


class Conflict(IsoinspectError):
    """A name already in use, a running container that must be stopped first, ..."""


def require_root() -> None:
    """Namespaces, mounts and cgroups need root: say so once, before touching anything. Here,
    not in runtime.py, so that fast paths (`isoinspect-runc create`, `ps`) need not import it."""
    if os.geteuid() != 0:
        raise IsoinspectError("isoinspect must run as root (namespaces, mounts and cgroups "
                              "need it): try sudo", exit_code=1)


def out_of_space(exc: BaseException, where: str) -> IsoinspectError | None:
    """A one-line error for ENOSPC/EDQUOT while writing under ``where``; None for others."""
    if isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT
        return IsoinspectError(f"no space left on device: {exc.filename or where}")
    return None


def report_error(error: BaseException | str, prog: str = "isoinspect",
                 exit_code: int | None = None) -> int:
    """Print ``<prog>: <error>`` on stderr (one line, unless the message itself holds a
    command's output tail); return the exit code.

    The code is ``exit_code`` if given, else the error's own (IsoinspectError.exit_code), else 1.
    """
    sys.stderr.write(f"{prog}: {error}\n")
    sys.stderr.flush()
    if exit_code is not None:
        return exit_code
    return getattr(error, "exit_code", 1)


def debug_enabled() -> bool:
    """ISOINSPECT_DEBUG=1/yes/true shows tracebacks; unset, empty, 0, false, no, off do not."""
    value = os.environ.get("ISOINSPECT_DEBUG", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def report_unexpected(exc: Exception, prog: str = "isoinspect") -> int:
    """An exception that is not an IsoinspectError: re-raised with ISOINSPECT_DEBUG on,
    otherwise one line (a full disk named as such, anything else as an internal error)."""
    if debug_enabled():
        raise exc
    full = out_of_space(exc, "the state directory")
    if full is not None:
        return report_error(full, prog)
    return report_error(f"internal error: {type(exc).__name__}: {exc} "
                        "(set ISOINSPECT_DEBUG=1 for details)", prog, exit_code=125)
