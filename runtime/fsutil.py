"""Small file-system helpers for the start/stop path, where importing shutil (and with it re,
fnmatch, bz2 and lzma: ~6 ms) would cost more than the work itself."""

from __future__ import annotations

import os


def remove_tree(path: str) -> None:
    """rm -rf without following symlinks; missing paths are fine."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _create_temp(path: str, mode: int) -> tuple[str, int]:
    """A new temporary file next to ``path``, named ``<path>.<pid>.<random>.tmp`` (the name
    images.py's garbage collection recognises), so concurrent writers never share one."""
    temp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)


def _write_temp(path: str, data: bytes, mode: int, fsync: bool) -> str:
    """The complete file under a temporary name next to ``path`` (removed on failure)."""
    temp, fd = _create_temp(path, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            _seal(fd, mode, fsync)
        finally:
            os.close(fd)
    except BaseException:
        _discard(temp)
        raise
    return temp


def _seal(fd: int, mode: int, fsync: bool) -> None:
    os.fchmod(fd, mode)  # whatever the umask
    if fsync:
        os.fsync(fd)


def _discard(temp: str) -> None:
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass


def write_atomic(path: str, data: bytes, mode: int = 0o644, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` so readers see the old file or the whole new one.

    The one atomic write of the project (``AtomicFile`` is the same for data written piece by
    piece, ``create_atomic`` for a file that must not exist yet). Guarantees: a temporary name of its own per writer in the same directory (concurrent
    writers never mix; the rename stays on one file system), the mode set whatever the umask,
    the data on disk before the rename with ``fsync=True`` (a crash then leaves the old or the
    new file, never an empty one), and on any failure (a full disk: ENOSPC) the temporary file
    removed, so nothing half-written is left behind.
    """
    temp = _write_temp(path, data, mode, fsync)
    try:
        os.replace(temp, path)
    except BaseException:
        _discard(temp)
        raise


def create_atomic(path: str, data: bytes, mode: int = 0o644, fsync: bool = False) -> None:
    """write_atomic for a file that must not exist yet: FileExistsError if ``path`` does.

    The complete file is linked to ``path`` (link(2) fails on an existing name, where rename
    would replace it), so of two concurrent creators exactly one wins and readers never see
    a partial file. Same temporary name, mode and cleanup guarantees as write_atomic.
    """
    temp = _write_temp(path, data, mode, fsync)
    try:
        os.link(temp, path)
    finally:
        _discard(temp)


class AtomicFile:
    """``with AtomicFile(path) as out: out.write(...)``: write_atomic for streamed data.

    Yields a binary file object on the temporary file; when the block ends normally it is
    flushed, given ``mode`` (and fsync'ed with ``fsync=True``) and renamed over ``path``; when
    the block raises, the temporary file is removed and ``path`` is left as it was.
    """

    def __init__(self, path: str, mode: int = 0o644, fsync: bool = False) -> None:
        self.path, self.mode, self.fsync = path, mode, fsync
        self.temp = ""
        self.handle = None

    def __enter__(self):
        self.temp, fd = _create_temp(self.path, self.mode)
        try:
            self.handle = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            _discard(self.temp)
            raise
        return self.handle

    def __exit__(self, kind, value, traceback) -> bool:
        handle = self.handle
        try:
            try:
                if kind is None:
                    handle.flush()
                    _seal(handle.fileno(), self.mode, self.fsync)
            finally:
                handle.close()
            if kind is None:
                os.replace(self.temp, self.path)
                return False
        except BaseException:
            _discard(self.temp)
            raise
        _discard(self.temp)
        return False
