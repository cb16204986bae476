"""Parsers of the lifecycle commands: log records, --since/--until, ps output, byte sizes."""

from __future__ import annotations

import os

import pytest

from isoinspect.cli.sizes import bytes_size, human_size
from isoinspect.runtime.container_top import parse_ps
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.log_copier import copy_streams, split_lines
from isoinspect.runtime.log_format import MAX_LINE, STDERR, STDOUT, encode
from isoinspect.runtime.log_reader import LogFile, LogQuery, LogRecord, decode, select
from isoinspect.runtime.timestamps import parse_time, rfc3339_nano


def test_records_round_trip_and_a_torn_record_waits():
    data = encode(STDOUT, 5, b"a\n") + encode(STDERR, 7, b"bb\n")
    records, used = decode(data + encode(STDOUT, 9, b"ccc\n")[:-2])
    assert records == [LogRecord(STDOUT, 5, b"a\n"), LogRecord(STDERR, 7, b"bb\n")]
    assert used == len(data)


def test_split_lines_keeps_the_partial_line_and_cuts_long_ones():
    records, rest = split_lines(STDOUT, 1, b"one\ntwo\nthr")
    assert [r[13:-4] for r in records] == [b"one\n", b"two\n"] and rest == b"thr"
    records, rest = split_lines(STDERR, 1, b"x" * (MAX_LINE + 10) + b"\n")
    assert [len(r) - 17 for r in records] == [MAX_LINE, 11] and rest == b""
    assert all(r[0] == STDERR for r in records)


def test_copy_streams_writes_both_pipes_and_a_last_line_without_newline(tmp_path):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(out_w, b"o1\no2")
    os.write(err_w, b"e1\n")
    os.close(out_w)
    os.close(err_w)
    path = str(tmp_path / "container-frames.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    copy_streams(out_r, err_r, fd)
    os.close(fd)
    with LogFile(path) as log:
        got = sorted((r.stream, r.data) for r in log.read_rest())
    assert got == [(STDOUT, b"o1\n"), (STDOUT, b"o2"), (STDERR, b"e1\n")]


def test_legacy_log_is_stdout_lines(tmp_path):
    path = tmp_path / "container.log"
    path.write_bytes(b"a\nb\nc")
    with LogFile(str(path)) as log:
        assert log.legacy
        assert [r.data for r in log.read_new()] == [b"a\n", b"b\n"]
        assert [r.data for r in log.read_rest()] == [b"c"]


def test_select_window_then_tail():
    records = [LogRecord(STDOUT, t, b"%d\n" % t) for t in range(10)]
    assert [r.time_ns for r in select(records, LogQuery(tail=3))] == [7, 8, 9]
    assert select(records, LogQuery(tail=0)) == []
    assert [r.time_ns for r in select(records, LogQuery(tail=2, since_ns=2, until_ns=5))] == \
        [4, 5]


NOW = 1_765_000_000 * 10**9


@pytest.mark.parametrize("value,expected", [
    ("10m", NOW - 600 * 10**9), ("1h30m", NOW - 5400 * 10**9), ("1.5s", NOW - 1_500_000_000),
    ("1600000000", 1600000000 * 10**9), ("1600000000.25", 1600000000_250_000_000),
    ("2020-09-13T12:26:40Z", 1600000000 * 10**9),
    ("2020-09-13T12:26:40.000000042Z", 1600000000 * 10**9 + 42),
    ("2020-09-13T14:26:40+02:00", 1600000000 * 10**9),
])
def test_parse_time_docker_forms(value, expected):
    assert parse_time(value, "since", NOW) == expected


@pytest.mark.parametrize("value", ["bogus", "10x", "", "2020-13"])
def test_parse_time_refuses_with_dockers_message(value):
    with pytest.raises(IsoinspectError) as caught:
        parse_time(value, "since", NOW)
    assert caught.value.exit_code == 1 and 'invalid value for "since"' in str(caught.value)


def test_rfc3339_nano_has_nine_digits():
    assert rfc3339_nano(1600000000 * 10**9 + 5) == "2020-09-13T12:26:40.000000005Z"


PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 21:00 ?        00:00:01 /sbin/init
root        4235    4234  0 21:07 ?        00:00:00 sleep 300 now
root        4236    4234  0 21:07 ?        00:00:00 sh -c x
"""


def test_parse_ps_keeps_the_containers_rows_and_the_command_whole():
    table = parse_ps(PS, {4235})
    assert table.titles[:2] == ["UID", "PID"]
    assert table.processes == [["root", "4235", "4234", "0", "21:07", "?", "00:00:00",
                                "sleep 300 now"]]


def test_parse_ps_needs_a_pid_column():
    with pytest.raises(IsoinspectError, match="PID"):
        parse_ps("COMMAND\nsleep\n", {1})


@pytest.mark.parametrize("size,decimal,binary", [
    (0, "0B", "0B"), (646, "646B", "646B"), (1234, "1.23kB", "1.205KiB"),
    (316 * 1024, "324kB", "316KiB"), (64 << 20, "67.1MB", "64MiB"),
])
def test_sizes_as_go_units(size, decimal, binary):
    assert (human_size(size), bytes_size(size)) == (decimal, binary)


def test_copy_streams_stops_after_pid1_exit_even_if_a_pipe_stays_open(tmp_path, monkeypatch):
    import subprocess
    import threading

    from isoinspect.runtime import log_copier

    monkeypatch.setattr(log_copier, "AFTER_EXIT_SECONDS", 0.2)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(out_w, b"kept\npartial")
    os.close(err_w)
    child = subprocess.Popen(["sleep", "0.3"])
    exit_fd = os.pidfd_open(child.pid)
    path = str(tmp_path / "container-frames.log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    copier = threading.Thread(target=copy_streams, args=(out_r, err_r, fd, exit_fd))
    try:
        copier.start()
        copier.join(timeout=30)  # out_w is still open: only the exit ends the copy
        assert not copier.is_alive()
    finally:
        child.wait()
        os.close(out_w)
        os.close(exit_fd)
        os.close(fd)
    with LogFile(path) as log:
        assert [r.data for r in log.read_rest()] == [b"kept\n", b"partial"]


def _log(tmp_path, records: list[bytes]) -> str:
    path = tmp_path / "container-frames.log"
    path.write_bytes(b"".join(records))
    return str(path)


def test_read_last_reads_back_from_the_end_then_follows_on(tmp_path):
    lines = [encode(STDOUT if i % 3 else STDERR, i, b"line %d\n" % i * (1 + i % 50))
             for i in range(20000)]
    path = _log(tmp_path, lines)
    with LogFile(path) as log:
        last = log.read_last(3)
        assert [r.time_ns for r in last] == [19997, 19998, 19999]
        assert last[0].stream == STDOUT and last[1].stream == STDERR
        assert log.read_new() == []
        with open(path, "ab") as handle:
            handle.write(encode(STDOUT, 20000, b"later\n"))
        assert [r.data for r in log.read_new()] == [b"later\n"]
    with LogFile(path) as log:  # more than there are: all of them, in order
        every = log.read_last(10**6)
        assert [r.time_ns for r in every] == list(range(20001))
    with LogFile(path) as log:
        assert log.read_last(0) == []


def test_read_last_gives_up_on_a_torn_end(tmp_path):
    path = _log(tmp_path, [encode(STDOUT, 1, b"a\n"), encode(STDOUT, 2, b"bb\n")[:-3]])
    with LogFile(path) as log:
        assert log.read_last(1) is None
        assert [r.data for r in log.read_new()] == [b"a\n"]  # forward: the whole ones
