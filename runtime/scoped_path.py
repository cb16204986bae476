"""Paths from hostile input resolved inside a root, never outside it (runc's securejoin idea).

A build context, an image's layers and a build step's staging tree are each a root of their
own. A symlink found in one is followed as if that root were ``/``: an absolute target restarts
at the root, ``..`` stops at it. So ``link -> /etc`` in a context means ``<context>/etc``, never
the host's /etc, and a path is only ever opened after every component of it has been looked at.
"""

from __future__ import annotations

import os
import stat
from typing import Callable

from isoinspect.runtime.errors import IsoinspectError

MAX_LINKS = 40  # as the kernel's MAXSYMLINKS

# Given a root-relative path whose parent is already resolved: the symlink target if the path
# is a symlink, None otherwise (missing, or anything else).
ReadLink = Callable[[str], "str | None"]


class TooManyLinks(IsoinspectError):
    """A cycle of symlinks (ELOOP)."""


def resolve(path: str, readlink: ReadLink) -> str:
    """``path`` resolved inside a root: a relative, normalised path with no symlink component
    ("" is the root itself). ``readlink`` is asked about each component in turn."""
    pending = [part for part in reversed(path.split("/"))]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join(resolved + [part])
        target = readlink(candidate)
        if target is None:
            resolved.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise TooManyLinks(f"too many levels of symbolic links in {path!r}")
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed(target.split("/")))
    return "/".join(resolved)


def host_readlink(root: str) -> ReadLink:
    """``readlink`` for a directory tree on this host (lstat only: nothing is followed)."""
    def readlink(rel: str) -> str | None:
        full = os.path.join(root, rel)
        try:
            if stat.S_ISLNK(os.lstat(full).st_mode):
                return os.readlink(full)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return None
    return readlink


def resolve_in_dir(root: str, path: str) -> str:
    """The host path of ``path`` resolved inside directory ``root``."""
    rel = resolve(path, host_readlink(root))
    return os.path.join(root, rel) if rel else root


def make_dirs(root: str, rel: str, mode: int = 0o755) -> str:
    """mkdir -p of ``rel`` under ``root`` (a tree only we write, e.g. a staging dir) where
    nothing is followed: a symlink or file in the way is replaced by a directory, as Docker
    does when it unpacks a directory over a non-directory. Returns the host path."""
    path = root
    for part in [p for p in rel.split("/") if p not in ("", ".")]:
        if part == "..":
            raise IsoinspectError(f"path {rel!r} leaves its root")
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, mode)
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            os.mkdir(path, mode)
    return path


def clear_for_write(path: str) -> None:
    """Remove whatever non-directory is at ``path`` so a new file can take its place (a
    symlink left there must never be written through)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)


class LayeredView:
    """An image's filesystem as overlayfs shows it, read from its layer directories (top
    first) without mounting and without following any symlink on the host."""

    def __init__(self, layer_dirs: list[str]) -> None:
        self.layers = layer_dirs

    def _lookup(self, rel: str) -> tuple[str, os.stat_result] | None:
        """(host path, lstat) of ``rel`` in the merged view; None if absent or whited out.
        Each component is checked to be a real directory in the layer that provides it."""
        from isoinspect.runtime.layers import OPAQUE_XATTR

        parts = [p for p in rel.split("/") if p]
        if not parts:
            return (self.layers[0], os.lstat(self.layers[0])) if self.layers else None
        for layer in self.layers:
            path, hidden_below = layer, False
            for index, part in enumerate(parts):
                path = os.path.join(path, part)
                try:
                    st = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    break
                if index == len(parts) - 1:
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        return None  # a whiteout
                    return path, st
                if not stat.S_ISDIR(st.st_mode):
                    hidden_below = True  # a non-directory here hides the layers below
                    break
                try:
                    if os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y":
                        hidden_below = True
                except OSError:
                    pass
            if hidden_below:
                return None
        return None

    def readlink(self, rel: str) -> str | None:
        found = self._lookup(rel)
        if found is None or not stat.S_ISLNK(found[1].st_mode):
            return None
        return os.readlink(found[0])

    def resolve(self, path: str) -> str:
        """``path`` with every symlink of the image followed inside the image's root."""
        return "/" + resolve(path, self.readlink)

    def kind(self, path: str) -> str | None:
        """'dir', 'other' or None (absent) for an already resolved path."""
        found = self._lookup(path.strip("/"))
        if found is None:
            return None
        return "dir" if stat.S_ISDIR(found[1].st_mode) else "other"
