"""The detached monitor's copier: a container's stdout and stderr pipes into its log records.

The container writes to two pipes (not to the log file itself) so that the streams stay apart
and every line gets the time it was written; the monitor reads both until both end, which
happens when the container's PID 1 exits (the kernel kills the rest of its PID namespace).
Imported by the monitor only after ``run -d`` has returned, with builtins alone (os, select,
time), so it adds nothing to the start and little to the monitor's memory.
"""

from __future__ import annotations

import os
import select
import time

from isoinspect.runtime.log_format import MAX_LINE, STDERR, STDOUT, encode


def split_lines(stream: int, now: int, buffer: bytes) -> tuple[list[bytes], bytes]:
    """Records for the complete lines of ``buffer`` (long ones cut at MAX_LINE) and the
    incomplete rest, kept until its newline comes."""
    records = []
    lines = buffer.split(b"\n")
    for line in lines[:-1]:
        line += b"\n"
        for start in range(0, len(line), MAX_LINE):
            records.append(encode(stream, now, line[start:start + MAX_LINE]))
    rest = lines[-1]
    while len(rest) >= MAX_LINE:
        records.append(encode(stream, now, rest[:MAX_LINE]))
        rest = rest[MAX_LINE:]
    return records, rest


AFTER_EXIT_SECONDS = 2.0  # how long pipes may stay open once PID 1 has exited


def copy_streams(out_fd: int, err_fd: int, log_fd: int, exit_fd: int = -1) -> None:
    """Append what the two pipes carry to ``log_fd`` as records until both reach EOF; the pipe
    descriptors are closed. A failed write (a full disk) loses those lines but keeps draining,
    so the container never blocks on a full pipe. ``exit_fd`` (a pidfd of PID 1) bounds the
    wait: should anything outside the container hold a pipe open after PID 1 exited, copying
    stops AFTER_EXIT_SECONDS later, so the exit code is still recorded."""
    streams = {out_fd: STDOUT, err_fd: STDERR}
    pending = {out_fd: b"", err_fd: b""}
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    if exit_fd >= 0:
        poller.register(exit_fd, select.POLLIN)
    deadline = None
    while streams:
        timeout = None
        if deadline is not None:
            timeout = (deadline - time.monotonic()) * 1000
            if timeout <= 0:
                break
        for fd, _ in poller.poll(timeout):
            if fd == exit_fd:
                poller.unregister(fd)
                deadline = time.monotonic() + AFTER_EXIT_SECONDS
                continue
            if fd not in streams:
                continue
            data = os.read(fd, 65536)
            now = time.time_ns()
            if data:
                records, pending[fd] = split_lines(streams[fd], now, pending[fd] + data)
            else:
                records = [encode(streams[fd], now, pending[fd])] if pending[fd] else []
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
            if records:
                _append(log_fd, records)
    for fd, stream in streams.items():  # given up on after the exit: keep what came
        if pending[fd]:
            _append(log_fd, [encode(stream, time.time_ns(), pending[fd])])
        os.close(fd)


def _append(log_fd: int, records: list[bytes]) -> None:
    try:
        os.write(log_fd, b"".join(records))
    except OSError:
        pass
