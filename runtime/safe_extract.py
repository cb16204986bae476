"""Unpack a tar archive so that no path ever leaves the target directory.

Archives come from outside (``load``, ``pull``, ``ADD x.tar``), so every member is placed by
walking its parent directories from a directory fd, one component at a time, with
``O_NOFOLLOW | O_DIRECTORY``: a symlink (or a file) where a directory is expected is refused,
never followed. Entries are created relative to that fd: files with ``O_CREAT | O_EXCL |
O_NOFOLLOW`` after unlinking whatever had the name (never written through), symlinks as
symlinks, hardlinks only to an entry already inside the target (reached the same way) and
owners, modes and times set on the fd or without following symlinks. A name that leaves the
target (``..``) or any other hostile member refuses the whole archive: the caller removes its
staging directory, so nothing is written, as Docker refuses such archives.

Absolute names are taken relative to the target, as Docker and GNU tar do. With ``whiteouts``
(layers), OCI whiteouts become overlay whiteouts: ``.wh.NAME`` a char device 0:0, and
``DIR/.wh..wh..opq`` the xattr ``trusted.overlay.opaque=y`` on DIR.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class UnsafeArchive(IsoinspectError):
    """A member that would leave the target, go through a symlink, or is not allowed here."""


@dataclass(frozen=True)
class Policy:
    """What an archive may contain and how it is applied."""

    owners: bool     # apply the members' numeric uid/gid (layers keep file owners)
    devices: bool    # device nodes and fifos allowed (layers, as Docker) or refused
    whiteouts: bool  # OCI whiteouts become overlay whiteouts (layers)


LAYER = Policy(owners=True, devices=True, whiteouts=True)
ARCHIVE = Policy(owners=False, devices=False, whiteouts=False)


def member_parts(name: str, member: str) -> list[str]:
    """Path components of an archive name inside the target ([] for the target itself).

    Leading slashes are dropped (Docker and GNU tar do the same); ``..`` that leaves the target
    refuses the archive (Docker: "is outside of").
    """
    if "\0" in name:
        raise UnsafeArchive(f"archive member {member!r} refused: NUL in a name")
    norm = os.path.normpath(name.lstrip("/") or ".")
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchive(f"archive member {member!r} refused: {name!r} escapes the target")
    return [] if norm == "." else norm.split("/")


class _Tree:
    """Directory fds under the target, opened one component at a time, symlinks never followed."""

    def __init__(self, target: str | int) -> None:
        # An fd is a directory the caller already opened safely (e.g. inside a container).
        self.root = os.dup(target) if isinstance(target, int) else os.open(target, _DIR_FLAGS)
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._forget()
        os.close(self.root)

    def _forget(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def dir_fd(self, parts: list[str], member: str, create: bool) -> int:
        """An fd of the directory ``parts`` (owned by the tree: do not close it)."""
        key = tuple(parts)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        fd = self.open_dir(parts, member, create)
        self._forget()
        self._cached = (key, fd)
        return fd

    def open_dir(self, parts: list[str], member: str, create: bool) -> int:
        """A new fd of the directory ``parts``; missing ones are made (0755) when ``create``."""
        fd = os.dup(self.root)
        try:
            for index, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise UnsafeArchive(f"archive member {member!r} refused: "
                                            f"{'/'.join(parts[:index + 1])!r} does not "
                                            "exist in the archive") from None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    raise UnsafeArchive(f"archive member {member!r} refused: its path goes "
                                        f"through {'/'.join(parts[:index + 1])!r}, a symlink "
                                        "or not a directory") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd


def _remove(parent: int, name: str) -> None:
    """Remove the entry ``name`` (any type, directories whole) without following it.

    ``parent`` is always the tree's cached fd, so that fd never points into what is removed.
    """
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    try:
        mtime = int(member.mtime)
    except (TypeError, ValueError, OverflowError):
        mtime = 0
    return mtime, mtime


def _set_attrs_fd(fd: int, member: tarfile.TarInfo, policy: Policy) -> None:
    if policy.owners:
        os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)
    os.utime(fd, _times(member))


def _write_file(archive: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str,
                policy: Policy) -> None:
    fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent)
    try:
        source = archive.extractfile(member)
        if source is not None:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        _set_attrs_fd(fd, member, policy)
    finally:
        os.close(fd)


def _make_link(tree: _Tree, member: tarfile.TarInfo, parent: int, name: str,
               target_parts: list[str]) -> None:
    if not target_parts:
        raise UnsafeArchive(f"archive member {member.name!r} refused: hardlink to the target "
                            "directory itself")
    try:
        source_dir = tree.open_dir(target_parts[:-1], member.name, create=False)
    except UnsafeArchive:
        raise UnsafeArchive(f"archive member {member.name!r} refused: hardlink to "
                            f"{member.linkname!r}, which is not in the archive (or goes "
                            "through a symlink)") from None
    try:
        try:
            st = os.stat(target_parts[-1], dir_fd=source_dir, follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeArchive(f"archive member {member.name!r} refused: hardlink to "
                                f"{member.linkname!r}, which is not in the archive") from None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeArchive(f"archive member {member.name!r} refused: hardlink to a "
                                "directory")
        try:
            mine = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino):
                return  # already the same file
        except FileNotFoundError:
            pass
        _remove(parent, name)
        os.link(target_parts[-1], name, src_dir_fd=source_dir, dst_dir_fd=parent,
                follow_symlinks=False)
    finally:
        os.close(source_dir)


def _make_node(member: tarfile.TarInfo, parent: int, name: str, policy: Policy) -> None:
    if not policy.devices:
        raise UnsafeArchive(f"archive member {member.name!r} refused: device nodes and fifos "
                            "are not allowed in this archive")
    kind = stat.S_IFIFO if member.isfifo() else \
        stat.S_IFCHR if member.ischr() else stat.S_IFBLK
    os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
    if policy.owners:
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
    # A node we just made in a directory only we write to: chmod cannot meet a symlink here.
    os.chmod(name, member.mode & 0o7777, dir_fd=parent)
    os.utime(name, _times(member), dir_fd=parent, follow_symlinks=False)


def _place(archive: tarfile.TarFile, tree: _Tree, member: tarfile.TarInfo, parts: list[str],
           policy: Policy, dirs: list) -> None:
    parent = tree.dir_fd(parts[:-1], member.name, create=True)
    name = parts[-1]
    if member.isdir():
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                _remove(parent, name)
                os.mkdir(name, 0o700, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o700, dir_fd=parent)
        dirs.append((parts, member))
        return
    if member.islnk():
        _make_link(tree, member, parent, name, member_parts(member.linkname, member.name))
        return
    _remove(parent, name)
    if member.isreg():
        _write_file(archive, member, parent, name, policy)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent)
        if policy.owners:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, _times(member), dir_fd=parent, follow_symlinks=False)
    elif member.ischr() or member.isblk() or member.isfifo():
        _make_node(member, parent, name, policy)
    else:
        raise UnsafeArchive(f"archive member {member.name!r} refused: unsupported entry type "
                            f"{member.type!r}")


def _whiteout(tree: _Tree, parts: list[str], member: str) -> None:
    """``DIR/.wh.NAME``: an overlay whiteout (char 0:0) hides NAME of the layers below."""
    hidden = parts[-1][len(WH_PREFIX):]
    if hidden in ("", ".", ".."):
        raise UnsafeArchive(f"archive member {member!r} refused: not a valid whiteout")
    parent = tree.dir_fd(parts[:-1], member, create=True)
    _remove(parent, hidden)
    os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)


def _opaque(tree: _Tree, parts: list[str], member: str) -> None:
    """``DIR/.wh..wh..opq``: DIR hides everything of the layers below."""
    fd = tree.dir_fd(parts[:-1], member, create=True)
    os.setxattr(fd, OPAQUE_XATTR, b"y")


def _finish_dirs(tree: _Tree, dirs: list, policy: Policy) -> None:
    """Directory owners, modes and times last (children would change the times), deepest
    first; a directory a later member replaced is skipped, never followed."""
    for parts, member in reversed(dirs):
        try:
            fd = tree.open_dir(parts, member.name, create=False)
        except UnsafeArchive:
            continue
        try:
            _set_attrs_fd(fd, member, policy)
        finally:
            os.close(fd)


def extract(archive: tarfile.TarFile, target: str | int, policy: Policy) -> None:
    """Unpack every member of ``archive`` under the existing directory ``target`` (a path, or
    an open directory fd, which stays the caller's).

    Raises UnsafeArchive (an IsoinspectError naming the member) on anything hostile and
    IsoinspectError on an unreadable archive; the caller removes ``target`` then. Member names
    are rewritten to their normalized form (callers list what was unpacked from them).
    """
    tree = _Tree(target)
    dirs: list = []
    whiteouts: list[tuple[list[str], str]] = []
    current = "?"
    try:
        for member in archive.getmembers():
            current = member.name
            parts = member_parts(member.name, member.name)
            if not parts:
                continue
            base = parts[-1]
            if policy.whiteouts and base.startswith(WH_PREFIX):
                whiteouts.append((parts, member.name))
                continue
            _place(archive, tree, member, parts, policy, dirs)
            member.name = "/".join(parts)
        for parts, name in whiteouts:
            current = name
            if parts[-1] == WH_OPAQUE:
                _opaque(tree, parts, name)
            else:
                _whiteout(tree, parts, name)
        current = "?"
        _finish_dirs(tree, dirs, policy)
    except (OSError, OverflowError, ValueError) as exc:
        raise IsoinspectError(f"cannot unpack archive member {current!r}: {exc}") from None
    except tarfile.TarError as exc:
        raise IsoinspectError(f"not a valid tar archive: {exc}") from None
    finally:
        tree.close()
