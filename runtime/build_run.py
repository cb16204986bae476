"""Stream a RUN container's output to the build's output, in the builder's only thread.

A raw clone copies only the calling thread. A reader thread alive at that moment could hold
the interpreter lock, and the child then waited forever for a lock nobody would release while
the parent waited for the child (issue 13, item 7). So nothing here starts a thread: the pipe
and a pidfd of the container's PID 1 are polled together, and the output is read until the
pipe closes (or shortly after PID 1 exits: its namespace dies with it).
"""

from __future__ import annotations

import codecs
import os
import select
import time

TAIL_BYTES = 8192  # kept for the error message of a failed step (its last lines)
DRAIN_SECONDS = 30.0  # after PID 1 exited, how long a writer may keep the pipe open


def stream_until_exit(read_fd: int, pid: int, write) -> bytes:
    """Copy the pipe to ``write(text)`` until it closes; return its last bytes."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # kernels before 5.3: the pipe's end is then the only signal
        pidfd = -1
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = b""
    exited_at = None
    try:
        while True:
            timeout = None
            if exited_at is not None:
                timeout = max(0.0, exited_at + DRAIN_SECONDS - time.monotonic()) * 1000
            events = poller.poll(timeout)
            if not events:
                break  # PID 1 is gone and the pipe stayed open: stop waiting for it
            closed = False
            for fd, _ in events:
                if fd == pidfd:
                    exited_at = time.monotonic()
                    poller.unregister(pidfd)
                    continue
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    closed = True
                    continue
                tail = (tail + chunk)[-TAIL_BYTES:]
                write(decoder.decode(chunk))
            if closed:
                break
        write(decoder.decode(b"", final=True))
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return tail
