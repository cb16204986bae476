"""benches/overhead/program.py: reading the workload's @@W lines, and its cached static build."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from isoinspect.benches.overhead import program
from isoinspect.benches.overhead.program import TESTS, Figure, parse
from isoinspect.runtime.errors import IsoinspectError

OUTPUT = """\
some shell noise
@@W test=cpu status=ok ops=88 ns_per_op=2279376.489 value=2.279 unit=ms
  @@W test=getppid status=ok ops=3145728 ns_per_op=66.794 value=66.794 unit=ns\r
@@W test=tcp_rtt status=unsupported reason=no_loopback
@@W test=file_direct status=error reason=create_EACCES
@@W-END tests=4 ok=2
"""


def test_parse_reads_ok_unsupported_and_error_lines_and_ignores_the_rest():
    figures = parse(OUTPUT)
    assert figures == [
        Figure("cpu", "ok", ops=88, ns_per_op=2279376.489, value=2.279, unit="ms"),
        Figure("getppid", "ok", ops=3145728, ns_per_op=66.794, value=66.794, unit="ns"),
        Figure("tcp_rtt", "unsupported", reason="no_loopback"),
        Figure("file_direct", "error", reason="create_EACCES"),
    ]
    assert [f.ok for f in figures] == [True, True, False, False]
    assert parse("nothing here\n@@W-END tests=0 ok=0\n") == []


def test_parse_reads_all_ops_of_a_paused_run_and_skips_its_begin_lines():
    text = ("@@W-BEGIN test=getppid\n@@W test=getppid status=ok ops=100 ns_per_op=60.0 "
            "value=60.0 unit=ns all_ops=120\n@@W-END tests=1 ok=1\n")
    assert parse(text) == [Figure("getppid", "ok", ops=100, ns_per_op=60.0, value=60.0,
                                  unit="ns", all_ops=120)]


def test_parse_reads_the_file_system_of_a_file_test_whatever_its_status():
    text = ("@@W test=file_fsync status=ok ops=144 ns_per_op=203580.069 value=4912.072 "
            "unit=MiB/s fs=tmpfs fs_magic=0x1021994\n"
            "@@W test=file_direct status=unsupported reason=o_direct_not_supported_by_tmpfs "
            "fs=tmpfs fs_magic=0x1021994\n"
            "@@W test=file_write status=ok ops=5 ns_per_op=4.7e6 value=212.7 unit=MiB/s "
            "fs=ext4 fs_magic=0xEF53\n")
    fsync, direct, write = parse(text)
    assert (fsync.fs, fsync.fs_magic, fsync.in_memory) == ("tmpfs", "0x1021994", True)
    assert (direct.status, direct.fs, direct.in_memory) == ("unsupported", "tmpfs", True)
    assert (write.fs, write.fs_magic, write.in_memory) == ("ext4", "0xef53", False)
    getppid, = parse("@@W test=getppid status=ok ops=1 ns_per_op=60 value=60 unit=ns\n")
    assert (getppid.fs, getppid.fs_magic, getppid.in_memory) == ("", "", False)


@pytest.mark.parametrize("line, why", [
    ("@@W test=stat status=ok ops=1 ns_per_op=1 value=1 unit=ns fs=ext4", "go together"),
    ("@@W test=stat status=ok ops=1 ns_per_op=1 value=1 unit=ns fs_magic=0xef53",
     "go together"),
    ("@@W test=stat status=error reason=x fs=ext4 fs_magic=ext4", "not hexadecimal"),
    ("@@W test=stat status=error reason=x fs=ext4 fs_magic=ef53", "not 0x<hex>"),
    ("@@W test=cpu status=ok ops=88 ns_per_op=2.5 value=2.5", "no unit="),
    ("@@W test=cpu status=ok ops=8.5 ns_per_op=2.5 value=2.5 unit=ms", "not an int"),
    ("@@W test=cpu status=ok ops=88 ns_per_op=fast value=2.5 unit=ms", "not a number"),
    ("@@W test=cpu status=ok ops=0 ns_per_op=2.5 value=2.5 unit=ms", "not a positive"),
    ("@@W test=cpu status=ok ops=88 ns_per_op=nan value=2.5 unit=ms", "not a positive"),
    ("@@W test=cpu status=ok ops=88 value=2.5 unit=ms", "no ns_per_op="),
    ("@@W test=cpu status=error", "no reason="),
    ("@@W test=cpu status=maybe reason=x", "status 'maybe'"),
    ("@@W test=nosuch status=ok ops=1 ns_per_op=1 value=1 unit=ns", "unknown test 'nosuch'"),
    ("@@W status=error reason=x", "unknown test None"),
    ("@@W test=cpu test=cpu status=error reason=x", "given twice"),
    ("@@W test=cpu status=error reason=two words", "'words' is not key=value"),
])
def test_parse_refuses_a_malformed_line_naming_it(line, why):
    with pytest.raises(ValueError) as caught:
        parse(f"before\n{line}\nafter\n")
    assert "malformed workload line" in str(caught.value)
    assert line in str(caught.value)
    assert why in str(caught.value)


def test_tests_are_typed_and_rates_are_higher_is_better():
    assert len({t.name for t in TESTS}) == len(TESTS) == 15
    assert TESTS[0].name == "cpu" and TESTS[-1].name == "file_direct"
    for test in TESTS:
        assert test.description and " " not in test.unit
        assert test.higher_is_better == test.unit.endswith("/s"), test


def test_tests_match_the_real_binarys_list():
    binary = program.ensure_built()
    listed = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True,
                            timeout=30).stdout.split()
    assert listed == [t.name for t in TESTS]


def test_build_is_cached_by_source_hash_and_the_layer_holds_one_file(tmp_path):
    cache = str(tmp_path / "cache")
    binary = program.ensure_built(cache)
    assert binary == os.path.join(cache, program.source_hash(), "isoinspect-workload")
    assert stat.S_IMODE(os.stat(binary).st_mode) == 0o755
    built_at = os.stat(binary).st_mtime_ns
    assert program.ensure_built(cache) == binary
    assert os.stat(binary).st_mtime_ns == built_at            # not rebuilt
    assert not [n for n in os.listdir(os.path.dirname(binary)) if n.endswith(".tmp")]

    layer = program.layer_dir(cache)
    files = [os.path.relpath(os.path.join(root, name), layer)
             for root, _, names in os.walk(layer) for name in names]
    assert files == ["usr/local/bin/isoinspect-workload"]
    assert stat.S_IMODE(os.stat(os.path.join(layer, files[0])).st_mode) == 0o755
    for folder in ("", "usr", "usr/local", "usr/local/bin"):
        assert stat.S_IMODE(os.stat(os.path.join(layer, folder)).st_mode) == 0o755
    assert program.layer_dir(cache) == layer


def test_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("ISOINSPECT_CACHE", raising=False)
    monkeypatch.delenv("ISOINSPECT_CACHE_DIR", raising=False)
    assert program.cache_root() == "/var/cache/isoinspect/workload"
    monkeypatch.setenv("ISOINSPECT_CACHE", str(tmp_path))
    assert program.cache_root() == str(tmp_path / "workload")
    assert program.cache_root("/elsewhere") == "/elsewhere"


def test_missing_gcc_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # no gcc on it
    with pytest.raises(IsoinspectError, match="gcc not found .*libc6-dev"):
        program.ensure_built(str(tmp_path / "cache"))


def test_a_failing_build_shows_gccs_error_and_leaves_no_binary(monkeypatch, tmp_path):
    source = tmp_path / "workload.c"
    source.write_text("int main(void) { return no_such_symbol; }\n")
    monkeypatch.setattr(program, "SOURCE", str(source))
    cache = str(tmp_path / "cache")
    with pytest.raises(IsoinspectError) as caught:
        program.ensure_built(cache)
    assert "gcc -static failed" in str(caught.value)
    assert "no_such_symbol" in str(caught.value)   # gcc's own stderr tail
    folder = os.path.dirname(program.binary_path(cache))
    assert os.listdir(folder) == ["workload.c"]
