"""The log file of a detached container: its stdout and stderr as timestamped records.

Like Docker's json-file driver, every line a container writes becomes one record saying which
stream it came from and when the monitor read it, so ``logs`` can replay the two streams to the
right descriptors, in order, with ``-t``, ``--since``, ``--until`` and ``--tail``. Binary framing
instead of JSON lines: the monitor writes it without importing json (memory it would keep for
the container's whole life) and output needs no escaping.

  record = stream (1 byte: 1 stdout, 2 stderr)
         + time (8 bytes, big-endian: ns since the epoch when the monitor read the line)
         + length (4 bytes, big-endian) + that many bytes of output (the line with its "\\n")
         + length again (4 bytes), so ``--tail N`` reads N records back from the end
           instead of the whole file (Docker's json-file reads backwards too)

A line longer than MAX_LINE is cut into several records, and a last line without a newline is
written when its stream ends (Docker does both, with 16 KiB). Logs written before this format
(containers/<id>/container.log, stdout and stderr merged) are still read, as stdout without
times. Nothing but the record store (whose LOG_FILE names the file): the monitor of ``run -d``
imports it.
"""

from __future__ import annotations

from isoinspect.runtime.records import LOG_FILE

STDOUT, STDERR = 1, 2
HEADER_SIZE = 13
TRAILER_SIZE = 4
MAX_LINE = 16384


def encode(stream: int, time_ns: int, data: bytes) -> bytes:
    """One record."""
    length = len(data).to_bytes(4, "big")
    return bytes((stream,)) + time_ns.to_bytes(8, "big") + length + data + length


def is_legacy(path: str) -> bool:
    """True for a log of an older isoinspect (raw output, streams merged)."""
    return not path.endswith(LOG_FILE)
