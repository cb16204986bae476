"""``isoinspect cp``: files and directories between a container and the host, Docker's rules.

``CONTAINER:SRC DEST``, ``SRC CONTAINER:DEST``, and ``-`` for a tar stream on stdin/stdout.
Every copy is one tar archive: the source tree is written by runtime/tree_archive.py (fds
only, no symlink followed) into a spool file and unpacked by runtime/safe_extract.py into a
directory fd (no symlink followed, nothing out of it). Inside a container, paths are opened
only through ContainerRoot.open (openat2 RESOLVE_IN_ROOT): the container's symlinks mean what
they mean in the container, and ``..`` stops at its root, as Docker's FollowSymlinkInScope.

Differences from Docker, all on the safe side: a symlink DEST in the container is replaced,
not written through; copying out of a container skips device nodes and fifos (a container with
CAP_MKNOD could hand the host a node of its disk) and, without ``-a``, clears setuid/setgid bits.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from isoinspect.runtime.container_fs import ContainerRoot, open_root
from isoinspect.runtime.errors import Conflict, IsoinspectError, NotFound, UsageError
from isoinspect.runtime.safe_extract import Policy, extract
from isoinspect.runtime.tree_archive import TreeOptions, add_tree


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: ``container`` is None for the host; path ``-`` is a tar stream."""

    container: str | None
    path: str


@dataclass(frozen=True)
class CopyOptions:
    archive: bool = False  # -a: keep uid/gid (and setuid bits out of a container)
    follow: bool = False  # -L: follow a symlink SRC itself


def parse_endpoint(text: str) -> Endpoint:
    """Docker's rule: a path starting with / or . is local, else ``NAME:PATH`` names one."""
    if text.startswith(("/", ".")) or ":" not in text:
        return Endpoint(None, text)
    name, _, path = text.partition(":")
    return Endpoint(name, path)


def _warn(message: str) -> None:
    sys.stderr.write(f"isoinspect cp: {message}\n")


def _arcname(path: str) -> str:
    """The name SRC gets in the copy: its last component; "." for ``dir/.`` (its contents)."""
    if path.endswith("/.") or path in (".", "/"):
        return "."
    return os.path.basename(path.rstrip("/")) or "."


class _Target:
    """Where the archive is unpacked: a directory fd and the name SRC gets in it."""

    def __init__(self, fd: int, arcname: str) -> None:
        self.fd, self.arcname = fd, arcname


def _choose_target(dest: str, src_is_dir: bool, src_arcname: str, open_dir) -> _Target:
    """Docker's DEST rules: an existing directory receives SRC (or its contents for
    ``SRC/.``); otherwise SRC is saved as DEST, whose parent must exist. ``open_dir(path)``
    opens a directory (following symlinks the way that side allows) or raises OSError."""
    try:
        return _Target(open_dir(dest), src_arcname)
    except FileNotFoundError:
        if dest.endswith("/"):
            raise NotFound(f"destination directory {dest!r} must exist") from None
    except NotADirectoryError:
        if src_is_dir:
            raise Conflict(f"cannot copy a directory to the file {dest!r}") from None
        if dest.endswith("/"):
            raise IsoinspectError(f"{dest!r} is not a directory", exit_code=1) from None
    parent = os.path.dirname(dest.rstrip("/")) or ("/" if dest.startswith("/") else ".")
    try:
        fd = open_dir(parent)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no such directory: {parent!r}") from None
    return _Target(fd, os.path.basename(dest.rstrip("/")))


OVERFLOW_ID = 65534  # what a user namespace shows for a host id it does not map


def _from_host(userns: dict | None):
    """Host owners -> the container's (``cp -a`` out of a ``--userns remap`` container)."""
    if not userns:
        return lambda uid, gid: (uid, gid)

    def shift(value: int, kind: str) -> int:
        first, count = userns[kind]
        return value - first if 0 <= value - first < count else OVERFLOW_ID

    return lambda uid, gid: (shift(uid, "uid"), shift(gid, "gid"))


def _to_host(archive: tarfile.TarFile, userns: dict | None, keep: bool) -> None:
    """Owners of the members as the host must store them for a remapped container seen from
    the host (a stopped one): its root's unless ``keep`` (-a), shifted into its range, as
    Docker does with remapped roots. A running one is written from inside its namespace."""
    if not userns:
        return
    for member in archive.getmembers():
        for kind in ("uid", "gid"):
            first, count = userns[kind]
            value = getattr(member, kind) if keep else 0
            if not 0 <= value < count:
                raise IsoinspectError(f"{member.name!r}: {kind} {value} is not mapped in the "
                                      "container's user namespace", exit_code=1)
            setattr(member, kind, first + value)


def _spool(runtime) -> BinaryIO:
    return tempfile.TemporaryFile(prefix="isoinspect-cp-", dir=runtime.roots.data_dir)


def _unpack(spool: BinaryIO, target_fd: int, policy: Policy, userns: dict | None = None,
            keep: bool = False) -> None:
    """Unpack the spooled archive into ``target_fd``; into a remapped container (``userns``)
    owners are always set, shifted into its range."""
    spool.seek(0)
    try:
        archive = tarfile.open(fileobj=spool, mode="r:")
        _to_host(archive, userns, keep)
    except tarfile.TarError as exc:
        raise IsoinspectError(f"not a valid tar archive: {exc}", exit_code=1) from None
    with archive:
        extract(archive, target_fd, policy)


def _open_source_in(root: ContainerRoot, container: str, path: str, follow: bool) -> int:
    flags = os.O_PATH | (0 if follow else os.O_NOFOLLOW)
    try:
        return root.open(path or "/", flags)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {container}") from None
    except NotADirectoryError:
        raise NotFound(f"{path} is not a directory in container {container}") from None


def _open_host_source(path: str, follow: bool) -> int:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
    except FileNotFoundError:
        raise NotFound(f"no such file or directory: {path}") from None
    except NotADirectoryError:
        raise NotFound(f"not a directory: {path}") from None


def _is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def copy_from_container(runtime, src: Endpoint, dest: str, options: CopyOptions,
                        stdout: BinaryIO | None = None) -> None:
    """``cp CONTAINER:SRC DEST`` (DEST ``-``: a tar stream of SRC on ``stdout``)."""
    assert src.container is not None
    with open_root(runtime, src.container) as root:
        top = _open_source_in(root, src.container, src.path, options.follow)
        try:
            if src.path.endswith("/") and not _is_dir(top):
                raise NotFound(f"{src.path} is not a directory in container {src.container}")
            tree = TreeOptions(devices=dest == "-", keep_setid=options.archive or dest == "-",
                               skip_devices=root.skip_devices, ids=_from_host(root.userns),
                               warn=_warn)
            arcname = _arcname(src.path)
            if dest == "-":
                out = stdout or sys.stdout.buffer
                with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    add_tree(tar, top, arcname, tree)
                out.flush()
                return
            src_is_dir = _is_dir(top)

            def open_host_dir(path: str) -> int:
                return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

            target = _choose_target(dest, src_is_dir, arcname, open_host_dir)
            try:
                with _spool(runtime) as spool:
                    with tarfile.open(fileobj=spool, mode="w:", format=tarfile.PAX_FORMAT) as tar:
                        add_tree(tar, top, target.arcname, tree)
                    _unpack(spool, target.fd,
                            Policy(owners=options.archive, devices=False, whiteouts=False))
            finally:
                os.close(target.fd)
        finally:
            os.close(top)


def copy_into_container(runtime, src: str, dest: Endpoint, options: CopyOptions,
                        stdin: BinaryIO | None = None) -> None:
    """``cp SRC CONTAINER:DEST`` (SRC ``-``: a tar stream on ``stdin``, unpacked into the
    directory DEST, as Docker requires)."""
    assert dest.container is not None
    with open_root(runtime, dest.container) as root:
        if root.read_only:
            raise Conflict("container rootfs is marked read-only")
        policy = Policy(owners=options.archive or root.ids_shifted, devices=True,
                        whiteouts=False)

        def open_container_dir(path: str) -> int:
            return root.open(path or "/", os.O_RDONLY | os.O_DIRECTORY)

        with _spool(runtime) as spool:
            if src == "-":
                _copy_stream(stdin or sys.stdin.buffer, spool)
                try:
                    target_fd = open_container_dir(dest.path)
                except (FileNotFoundError, NotADirectoryError):
                    raise NotFound(f"destination {dest.container}:{dest.path} must be a "
                                   "directory") from None
            else:
                top = _open_host_source(src, options.follow)
                try:
                    if src.endswith("/") and not _is_dir(top):
                        raise NotFound(f"not a directory: {src}")
                    target = _choose_target(dest.path, _is_dir(top), _arcname(src),
                                            open_container_dir)
                    target_fd = target.fd
                    try:
                        with tarfile.open(fileobj=spool, mode="w:",
                                          format=tarfile.PAX_FORMAT) as tar:
                            add_tree(tar, top, target.arcname, TreeOptions(warn=_warn))
                    except BaseException:
                        os.close(target_fd)
                        raise
                finally:
                    os.close(top)
            shift = root.userns if root.ids_shifted else None
            try:
                root.write_as_its_root(
                    lambda: _unpack(spool, target_fd, policy, shift, options.archive))
            finally:
                os.close(target_fd)


def _copy_stream(source: BinaryIO, spool: BinaryIO) -> None:
    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            break
        spool.write(chunk)


def copy(runtime, src_text: str, dest_text: str, options: CopyOptions) -> None:
    """Parse both sides and copy in the one direction Docker allows."""
    src, dest = parse_endpoint(src_text), parse_endpoint(dest_text)
    if src.container is not None and dest.container is not None:
        raise UsageError("copying between containers is not supported")
    if src.container is None and dest.container is None:
        raise UsageError("must specify at least one container source")
    if src.container is not None:
        copy_from_container(runtime, src, dest.path, options)
    else:
        copy_into_container(runtime, src.path, dest, options)
