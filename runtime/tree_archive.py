"""Write a file tree into a tar archive through fds only, never following a symlink in it.

The tree may belong to a hostile container that changes it while we read (``cp``): every
entry is looked at with ``fstatat(AT_SYMLINK_NOFOLLOW)`` relative to its parent's fd,
directories are entered with ``O_NOFOLLOW | O_DIRECTORY`` and regular files are opened as
``O_PATH | O_NOFOLLOW``, checked to be the same regular file, and only then reopened for
reading. So a symlink or device node swapped in never makes us read anything but the tree
itself, and never opens a device.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from typing import Callable

from isoinspect.runtime.errors import IsoinspectError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SETID = stat.S_ISUID | stat.S_ISGID


@dataclass(frozen=True)
class TreeOptions:
    """What goes into the archive."""

    devices: bool = True  # device nodes and fifos as tar entries (else skipped with a warning)
    keep_setid: bool = True  # setuid/setgid bits as found (else cleared)
    skip_devices: frozenset = frozenset()  # st_dev of mounts not to walk (a container's /proc)
    ids: Callable[[int, int], tuple[int, int]] = lambda uid, gid: (uid, gid)  # owners as stored
    warn: Callable[[str], None] = lambda message: None


class ChangedWhileCopied(IsoinspectError):
    """An entry changed type between being looked at and being opened (a racing writer)."""


def _info(arcname: str, st: os.stat_result, options: TreeOptions) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    mode = stat.S_IMODE(st.st_mode)
    info.mode = mode if options.keep_setid else mode & ~_SETID
    info.uid, info.gid = options.ids(st.st_uid, st.st_gid)
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _add_file(tar: tarfile.TarFile, path_fd: int, arcname: str, options: TreeOptions) -> None:
    """A regular file given as an O_PATH fd: reopened for reading through /proc/self/fd (the
    same inode, no path lookup), once fstat has shown it is a regular file."""
    st = os.fstat(path_fd)
    if not stat.S_ISREG(st.st_mode):
        raise ChangedWhileCopied(f"{arcname!r} changed while it was being copied")
    fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        info = _info(arcname, st, options)
        info.size = st.st_size
        try:
            tar.addfile(info, handle)
        except OSError as exc:
            if "unexpected end of data" in str(exc):
                raise ChangedWhileCopied(f"{arcname!r} shrank while it was being copied") \
                    from None
            raise


def _add_entry(tar: tarfile.TarFile, parent: int, name: str, arcname: str,
               options: TreeOptions) -> int | None:
    """Add one entry of directory ``parent``; returns an fd of it if it is a directory to
    walk (the caller closes it)."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None  # removed since the directory was listed: as if it had not been there
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        try:
            fd = os.open(name, _DIR, dir_fd=parent)
        except OSError as exc:
            raise ChangedWhileCopied(f"{arcname!r} changed while it was being copied: "
                                     f"{exc.strerror}") from None
        st = os.fstat(fd)
        info = _info(arcname, st, options)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        if st.st_dev in options.skip_devices:
            os.close(fd)
            return None
        return fd
    if kind == stat.S_IFREG:
        try:
            path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            raise ChangedWhileCopied(f"{arcname!r} vanished while it was being copied") \
                from None
        try:
            _add_file(tar, path_fd, arcname, options)
        finally:
            os.close(path_fd)
        return None
    info = _info(arcname, st, options)
    if kind == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO) and options.devices:
        info.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
                     stat.S_IFIFO: tarfile.FIFOTYPE}[kind]
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        what = "socket" if kind == stat.S_IFSOCK else "device node or fifo"
        options.warn(f"skipped {arcname!r}: a {what}")
        return None
    tar.addfile(info)
    return None


def add_tree(tar: tarfile.TarFile, top: int, arcname: str, options: TreeOptions) -> None:
    """Add ``top`` (an O_PATH fd of any file type) as ``arcname`` and, for a directory,
    everything under it (names sorted, depth first, without recursion limits)."""
    st = os.fstat(top)
    if stat.S_ISREG(st.st_mode):
        _add_file(tar, top, arcname, options)
        return
    if stat.S_ISLNK(st.st_mode):
        info = _info(arcname, st, options)
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=top)
        tar.addfile(info)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise IsoinspectError(f"{arcname!r} is not a file, directory or symlink: not copied")
    fd = os.open(".", _DIR, dir_fd=top)
    if arcname != ".":
        info = _info(arcname, os.fstat(fd), options)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    if st.st_dev in options.skip_devices:
        os.close(fd)
        return
    prefix = "" if arcname == "." else arcname + "/"
    stack = [(fd, prefix, iter(sorted(os.listdir(fd))))]
    try:
        while stack:
            parent, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(parent)
                stack.pop()
                continue
            child = _add_entry(tar, parent, name, prefix + name, options)
            if child is not None:
                stack.append((child, f"{prefix}{name}/", iter(sorted(os.listdir(child)))))
    finally:
        for parent, _, _ in stack:
            os.close(parent)
