"""The one atomic write: write_atomic, AtomicFile (streamed) and create_atomic (no clobber)."""

from __future__ import annotations

import os

import pytest

from isoinspect.runtime.fsutil import AtomicFile, create_atomic, write_atomic


def test_write_atomic_replaces_with_the_mode_whatever_the_umask(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    old_umask = os.umask(0o077)
    try:
        write_atomic(str(path), b"new", mode=0o755, fsync=True)
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o755
    assert os.listdir(tmp_path) == ["f"]


def test_atomic_file_streams_and_renames_only_on_success(tmp_path):
    path = tmp_path / "archive"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with AtomicFile(str(path)) as out:
            out.write(b"half")
            assert path.read_bytes() == b"old"  # readers still see the old file
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["archive"]
    with AtomicFile(str(path), mode=0o600, fsync=True) as out:
        out.write(b"part 1, ")
        out.write(b"part 2")
    assert path.read_bytes() == b"part 1, part 2" and path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["archive"]


def test_a_failing_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_atomic(str(tmp_path / "a"), b"x")
    with pytest.raises(PermissionError):
        with AtomicFile(str(tmp_path / "b")) as out:
            out.write(b"x")
    assert os.listdir(tmp_path) == []


def test_create_atomic_refuses_an_existing_file(tmp_path):
    path = tmp_path / "net.json"
    create_atomic(str(path), b"first")
    with pytest.raises(FileExistsError):
        create_atomic(str(path), b"second")
    assert path.read_bytes() == b"first" and os.listdir(tmp_path) == ["net.json"]
