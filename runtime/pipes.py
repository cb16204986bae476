"""Reading the set-up pipes between a runtime and the process it starts.

Every start (run, OCI create, warm pool, exec) learns the outcome the same way: a
close-on-exec error pipe that reaches EOF with nothing written means the command was exec'd;
text on it is the reason it was not.
"""

from __future__ import annotations

import os


def read_all(fd: int) -> bytes:
    """Everything until EOF; the descriptor is closed."""
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except InterruptedError:
                continue
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_byte(fd: int) -> bytes:
    """One byte (b"" at EOF), retried on EINTR; the descriptor stays open."""
    while True:
        try:
            return os.read(fd, 1)
        except InterruptedError:
            continue


def close_all(*fds: int) -> None:
    """Close every descriptor that is >= 0, ignoring ones already closed."""
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
