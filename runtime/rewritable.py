"""A small file that can still be rewritten when its file system is full.

A container that fills the state file system must not lose its exit code, and `ps`, `rm -f`
and `gc` must keep working there (Docker's `rm -f` does on a full disk). A new file needs new
blocks; an update in place does not. So the file and a *spare* of the same size are written
while there is room, zero-padded so their blocks are really allocated (not sparse). A rewrite
then puts the new bytes into the spare in place and swaps the two names in one step with
renameat2(RENAME_EXCHANGE): readers see the old contents or the new, never a part, and the old
file becomes the next spare. Only a rewrite that outgrows the size needs new blocks (a fresh
pair, made with the one atomic write, fsutil.write_atomic).

Writers hold an exclusive flock on the directory and readers a shared one, so a reader never
reads a spare that a writer is filling. Contents must tolerate trailing zero padding (marshal
stops after its object).
"""

from __future__ import annotations

import errno
import fcntl
import os

from isoinspect.runtime.fsutil import write_atomic

SPARE_SUFFIX = ".spare"
HEADROOM = 8192  # room for what a record gains after its first write (exit code, error text)
_BLOCK = 4096


def write(directory: str, name: str, data: bytes) -> None:
    """Replace ``directory/name`` with ``data``, without new blocks when it fits the spare."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        if _rewrite_in_place(dir_fd, name, data):
            return
        size = -(-(len(data) + HEADROOM) // _BLOCK) * _BLOCK
        padded = data + bytes(size - len(data))
        write_atomic(os.path.join(directory, name + SPARE_SUFFIX), padded)
        write_atomic(os.path.join(directory, name), padded)
    finally:
        os.close(dir_fd)


def read(directory: str, name: str) -> bytes:
    """The whole file (with its padding); FileNotFoundError when it or its directory is gone."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_SH)
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def _rewrite_in_place(dir_fd: int, name: str, data: bytes) -> bool:
    """Fill the spare and swap it in; False when there is no spare big enough (or the file
    system cannot swap names), so the caller writes a fresh pair."""
    try:
        fd = os.open(name + SPARE_SUFFIX, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(fd).st_size < len(data):
            return False
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
    finally:
        os.close(fd)
    from isoinspect.runtime.linux import syscalls as sc  # ctypes: not for readers (ps, rm)

    try:
        sc.rename_exchange(dir_fd, name + SPARE_SUFFIX, name)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOENT):
            return False
        raise
    return True
