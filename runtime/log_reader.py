"""Reading a container's log (runtime/log_format.py) for ``logs`` and ``start -a``.

``LogFile.read_new()`` returns the records appended since the last call (a record the monitor
is still writing waits for the next call), so the same object serves a one-off read and
``--follow``. ``select`` applies ``--since``, ``--until`` and ``--tail`` as Docker does: the
time window first, then the last N records of what is left.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Iterable

from isoinspect.runtime.log_format import HEADER_SIZE, STDERR, STDOUT, TRAILER_SIZE, is_legacy

_FRAME = HEADER_SIZE + TRAILER_SIZE
_BLOCK = 1 << 16  # bytes read at a time going backwards


@dataclass(frozen=True)
class LogRecord:
    """One line (or piece of a long line) of one stream; time 0 in a legacy log."""

    stream: int
    time_ns: int
    data: bytes


@dataclass(frozen=True)
class LogQuery:
    """What ``logs`` asks for: None is "no bound" (tail None: every record)."""

    tail: int | None = None
    since_ns: int | None = None
    until_ns: int | None = None


def _record(buffer: bytes, start: int, length: int) -> LogRecord:
    return LogRecord(buffer[start], int.from_bytes(buffer[start + 1:start + 9], "big"),
                     buffer[start + HEADER_SIZE:start + HEADER_SIZE + length])


def decode(buffer: bytes) -> tuple[list[LogRecord], int]:
    """The complete records at the start of ``buffer`` and how many bytes they took."""
    records, offset = [], 0
    while offset + HEADER_SIZE <= len(buffer):
        length = int.from_bytes(buffer[offset + 9:offset + 13], "big")
        end = offset + _FRAME + length
        if end > len(buffer):
            break
        records.append(_record(buffer, offset, length))
        offset = end
    return records, offset


class LogFile:
    """A container's log, read incrementally from where the last read stopped."""

    def __init__(self, path: str, offset: int = 0) -> None:
        self.path = path
        self.legacy = is_legacy(path)
        self.offset = offset
        self._partial = b""
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read_new(self) -> list[LogRecord]:
        """Records appended since the last call (of a legacy log: its new complete lines)."""
        chunks = [self._partial]
        while True:
            chunk = os.pread(self._fd, 1 << 20, self.offset)
            if not chunk:
                break
            chunks.append(chunk)
            self.offset += len(chunk)
        buffer = b"".join(chunks)
        if self.legacy:
            lines = buffer.split(b"\n")
            self._partial = lines.pop()
            return [LogRecord(STDOUT, 0, line + b"\n") for line in lines]
        records, used = decode(buffer)
        self._partial = buffer[used:]
        return records

    def read_last(self, count: int) -> list[LogRecord] | None:
        """The last ``count`` records, read backwards from the end (what ``--tail`` costs
        is then what it prints); later reads go on from the end. None when the end is not a
        whole record (the monitor is writing one) or the log is legacy: read forward then."""
        if self.legacy or self.offset or self._partial:
            return None
        end = cursor = self.size()
        buffer, buffer_start = b"", end  # the file's bytes [buffer_start, end) read so far
        found: list[LogRecord] = []

        def have(start: int) -> bool:
            nonlocal buffer, buffer_start
            if start < 0:
                return False
            if start < buffer_start:
                # at least double what is held: a long tail costs O(n), not O(n^2)
                begin = max(0, min(start, buffer_start - max(_BLOCK, len(buffer))))
                buffer = os.pread(self._fd, buffer_start - begin, begin) + buffer
                buffer_start = begin
            return True

        while len(found) < count and cursor > 0:
            if not have(cursor - TRAILER_SIZE):
                return None
            at = cursor - buffer_start
            length = int.from_bytes(buffer[at - TRAILER_SIZE:at], "big")
            start = cursor - _FRAME - length
            if not have(start):
                return None
            at = start - buffer_start
            if buffer[at] not in (STDOUT, STDERR) or \
                    int.from_bytes(buffer[at + 9:at + 13], "big") != length:
                return None
            found.append(_record(buffer, at, length))
            cursor = start
        self.offset = end
        found.reverse()
        return found

    def read_rest(self) -> list[LogRecord]:
        """Everything left, a legacy log's last line without a newline included (the
        container has exited, so nothing more will complete it)."""
        records = self.read_new()
        if self.legacy and self._partial:
            records.append(LogRecord(STDOUT, 0, self._partial))
            self._partial = b""
        return records

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "LogFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_window(record: LogRecord, query: LogQuery) -> bool:
    """Inside --since/--until (a legacy record, time 0, only without them)."""
    if query.since_ns is not None and record.time_ns < query.since_ns:
        return False
    return query.until_ns is None or record.time_ns <= query.until_ns


def select(records: Iterable[LogRecord], query: LogQuery) -> list[LogRecord]:
    """The records of the window, then the last ``tail`` of them."""
    kept = (r for r in records if in_window(r, query))
    if query.tail is None:
        return list(kept)
    return list(deque(kept, maxlen=query.tail)) if query.tail else []
