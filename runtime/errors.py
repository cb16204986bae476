"""The one exception type the CLI turns into a one-line message and an exit code."""

from __future__ import annotations


class IsoinspectError(Exception):
    """A user-facing failure: bad input, missing image, unknown container, not root...

    The CLI prints ``isoinspect: <message>`` and exits with ``exit_code`` (125 like Docker for
    errors of the runtime itself, before the container's command ran).
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotFound(IsoinspectError):
    """An image or container that does not exist."""


class Conflict(IsoinspectError):
    """A name already in use, a running container that must be stopped first, ..."""


def out_of_space(exc: BaseException, where: str) -> IsoinspectError | None:
    """A one-line error for ENOSPC/EDQUOT while writing under ``where``; None for others."""
    if isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT
        return IsoinspectError(f"no space left on device: {exc.filename or where}")
    return None
