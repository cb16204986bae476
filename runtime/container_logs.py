"""``isoinspect logs``: a container's stdout and stderr replayed to the caller's own two.

Like ``docker logs``: the streams go back to the descriptors they came from, ``-t`` prefixes
each line with its time, ``--since``/``--until``/``--tail`` select, and ``--follow`` keeps
printing until the container exits (the monitor writes every line before it records the exit,
so a stopped status means the log is complete).
"""

from __future__ import annotations

import time
from typing import BinaryIO, Iterable

from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import IsoinspectError, NotFound
from isoinspect.runtime.log_format import STDERR
from isoinspect.runtime.log_reader import LogFile, LogQuery, LogRecord, in_window, select
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.timestamps import rfc3339_nano

_FOLLOW_INTERVAL = 0.1  # seconds between looks at a quiet log


class Output:
    """Where records go: stdout's to ``out``, stderr's to ``err``, with times if asked."""

    def __init__(self, out: BinaryIO, err: BinaryIO, timestamps: bool = False) -> None:
        self.out, self.err, self.timestamps = out, err, timestamps

    def write(self, records: Iterable[LogRecord]) -> None:
        touched = set()
        for record in records:
            stream = self.err if record.stream == STDERR else self.out
            # one write per record: a Ctrl-C between two would leave a time without its line
            stream.write(rfc3339_nano(record.time_ns).encode() + b" " + record.data
                         if self.timestamps else record.data)
            touched.add(stream)
        for stream in touched:
            stream.flush()


def log_path(record: ContainerState) -> str:
    """The container's log, or a one-line error (exit 1) for one that never logged."""
    if not record.log:
        raise IsoinspectError(f"container {record.name} has no log: it ran in the foreground "
                              "(`start` runs it again with its output logged)", exit_code=1)
    return record.log


def running(runtime: Runtime, cid: str) -> bool:
    """Does the container still run? (A removed one, e.g. after --rm, does not.)"""
    try:
        return runtime.get(cid).status == Status.RUNNING
    except NotFound:
        return False


def follow(runtime: Runtime, cid: str, log: LogFile, query: LogQuery, output: Output) -> None:
    """Print what the container writes from ``log``'s offset on until it exits (or until
    --until has passed)."""
    while True:
        new = log.read_new()
        if new:
            output.write(r for r in new if in_window(r, query))
        elif not running(runtime, cid):
            output.write(r for r in log.read_rest() if in_window(r, query))
            return
        else:
            time.sleep(_FOLLOW_INTERVAL)
        if query.until_ns is not None and time.time_ns() > query.until_ns:
            return


def show_logs(runtime: Runtime, ref: str, query: LogQuery, output: Output,
              follow_output: bool = False) -> None:
    """``logs``: the selected records, then with ``follow_output`` what comes next."""
    record = runtime.get(ref)
    if record.status == Status.CREATED and not record.log:
        return  # never started (`create`): nothing written yet, as docker logs says
    path = log_path(record)
    try:
        log = LogFile(path)
    except FileNotFoundError:
        return  # its monitor died before writing anything
    with log:
        if log.legacy and (output.timestamps or query.since_ns is not None
                           or query.until_ns is not None):
            raise IsoinspectError(f"the log of {record.name} was written by an older isoinspect, "
                                  "without times: -t, --since and --until cannot apply",
                                  exit_code=1)
        last = None
        if query.tail is not None and query.since_ns is None and query.until_ns is None:
            last = log.read_last(query.tail)
        if last is not None:
            output.write(last)
        elif not follow_output:
            output.write(select(log.read_rest(), query))
        else:
            output.write(select(log.read_new(), query))
        if not follow_output:
            return
        follow(runtime, record.id, log, LogQuery(since_ns=query.since_ns,
                                                 until_ns=query.until_ns), output)
