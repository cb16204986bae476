"""runtime/monitor.c: its cached build, and its log records byte-for-byte those of the Python
copier (runtime/log_copier.py), so ``logs`` reads either monitor's file unchanged."""

from __future__ import annotations

import os
import subprocess

import pytest

from isoinspect.runtime import log_copier
from isoinspect.runtime.log_format import MAX_LINE
from isoinspect.runtime.monitor_program import BINARY_NAME, MONITOR, monitor_binary

FIXED_NS = 1_733_000_000_123_456_789


def _inputs() -> tuple[bytes, bytes]:
    """Both streams: short and empty lines, lines around MAX_LINE, one of several MAX_LINEs,
    bytes that are not UTF-8, more than one read's worth, and no final newline."""
    out = b"".join(b"line %d\n" % i for i in range(5000)) + b"\n\n"
    out += b"a" * (MAX_LINE - 1) + b"\n" + b"b" * MAX_LINE + b"\n" + b"c" * (MAX_LINE + 1)
    out += b"\n" + b"d" * (3 * MAX_LINE + 5) + b"\n\xff\xfe\x00 binary\n" + b"e" * MAX_LINE
    out += b"tail without newline"
    err = b"".join(b"warning %d: \x1b[31mred\x1b[0m\n" % i for i in range(3000))
    err += b"f" * (2 * MAX_LINE) + b"last"
    return out, err


def _python_log(out_path: str, err_path: str, log_path: str,
                monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(log_copier.time, "time_ns", lambda: FIXED_NS)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        log_copier.copy_streams(os.open(out_path, os.O_RDONLY), os.open(err_path, os.O_RDONLY),
                                log_fd)
    finally:
        os.close(log_fd)
        monkeypatch.undo()
    with open(log_path, "rb") as handle:
        return handle.read()


def _c_log(binary: str, out_path: str, err_path: str, log_path: str) -> bytes:
    fds = [os.open(out_path, os.O_RDONLY), os.open(err_path, os.O_RDONLY),
           os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)]
    try:
        result = subprocess.run([binary, "--out", str(fds[0]), "--err", str(fds[1]),
                                 "--log", str(fds[2]), "--time", str(FIXED_NS)],
                                pass_fds=fds, capture_output=True, timeout=60)
    finally:
        for fd in fds:
            os.close(fd)
    assert result.returncode == 0, result.stderr
    with open(log_path, "rb") as handle:
        return handle.read()


def test_c_and_python_monitors_write_the_same_log(tmp_path, monkeypatch):
    binary = monitor_binary()
    assert binary is not None and os.path.basename(binary) == BINARY_NAME
    out, err = _inputs()
    (tmp_path / "out").write_bytes(out)
    (tmp_path / "err").write_bytes(err)
    paths = str(tmp_path / "out"), str(tmp_path / "err")
    python = _python_log(*paths, str(tmp_path / "python.log"), monkeypatch)
    c = _c_log(binary, *paths, str(tmp_path / "c.log"))
    assert len(python) > len(out) + len(err)   # the records really hold both streams
    assert c == python


def test_an_empty_input_writes_nothing(tmp_path):
    binary = monitor_binary()
    (tmp_path / "empty").write_bytes(b"")
    path = str(tmp_path / "empty")
    assert _c_log(binary, path, path, str(tmp_path / "c.log")) == b""


def test_bad_arguments_are_a_usage_error():
    binary = monitor_binary()
    result = subprocess.run([binary, "--out", "x"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 125 and result.stderr.startswith("usage: isoinspect-monitor")


def test_build_is_cached_by_source_hash(tmp_path):
    cache = str(tmp_path / "cache")
    binary = MONITOR.ensure_built(cache)
    assert binary == os.path.join(cache, MONITOR.source_hash(), BINARY_NAME)
    built_at = os.stat(binary).st_mtime_ns
    assert MONITOR.ensure_built(cache) == binary and os.stat(binary).st_mtime_ns == built_at
    assert sorted(os.listdir(os.path.dirname(binary))) == [BINARY_NAME, "monitor.c"]


def test_without_gcc_there_is_no_monitor_binary(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # no gcc on it
    assert monitor_binary(str(tmp_path / "cache")) is None
