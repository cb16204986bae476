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


def write_atomic(path: str, data: bytes, mode: int = 0o644, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` so readers see the old file or the whole new one.

    The one atomic write of the project: a temporary name of its own per writer (concurrent
    writers never mix), the mode set whatever the umask, and on any failure (a full disk:
    ENOSPC) the temporary file is removed, so nothing half-written is left behind.
    """
    temp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
