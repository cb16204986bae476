"""Content-addressed layer storage: a layer tar is digested, kept, and unpacked once.

Layer tars carry OCI whiteouts (``.wh.NAME`` deletes NAME from the layers below,
``DIR/.wh..wh..opq`` hides everything below in DIR). Unpacked layers are overlayfs lower dirs,
so whiteouts become overlay whiteouts there (a char device 0:0; the xattr
``trusted.overlay.opaque=y`` on the dir). ``tar_from_dir`` does the reverse for a container's
upper dir when a build step is committed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile

from isoinspect.runtime import digests, safe_extract
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.roots import Roots
from isoinspect.runtime.safe_extract import OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX
_CHUNK = 1 << 20


def digest_file(path: str) -> str:
    """sha256 of a file's bytes, hex."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def is_gzip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def decompress_to(src: str, dst: str) -> str:
    """Gunzip ``src`` into ``dst``; return the sha256 (hex) of the uncompressed bytes."""
    sha = hashlib.sha256()
    with gzip.open(src, "rb") as inp, open(dst, "wb") as out:
        for chunk in iter(lambda: inp.read(_CHUNK), b""):
            sha.update(chunk)
            out.write(chunk)
    return sha.hexdigest()


def import_tar(roots: Roots, tar_path: str, move: bool = False,
               expect: str | None = None) -> str:
    """Store ``tar_path`` (uncompressed or gzip) as a layer; return its diff_id.

    Idempotent and crash safe: the layer is unpacked into a staging directory next to its
    final place and renamed into place only when complete. ``expect`` (a diff_id) is checked
    before anything is kept: a mismatch raises and stores nothing. ``move`` lets the store take
    the file instead of copying it.
    """
    expect_hex = digests.hex_of(expect, "diffID") if expect is not None else None
    os.makedirs(roots.data("layers"), exist_ok=True)
    staging = roots.data("layers", f".staging-{os.getpid()}-{os.urandom(4).hex()}")
    os.makedirs(os.path.join(staging, "diff"))
    try:
        staged_tar = os.path.join(staging, "layer.tar")
        if is_gzip(tar_path):
            digest = decompress_to(tar_path, staged_tar)
        else:
            digest = digest_file(tar_path)
        if expect_hex is not None and expect_hex != digest:
            raise IsoinspectError(f"layer digest mismatch: expected {expect}, "
                                  f"got sha256:{digest}")
        if not os.path.exists(staged_tar) and \
                not os.path.isdir(roots.data("layers", digest, "diff")):
            if move:
                shutil.move(tar_path, staged_tar)
            else:
                shutil.copyfile(tar_path, staged_tar)
        if move and os.path.exists(tar_path):
            os.unlink(tar_path)
        final = roots.data("layers", digest)
        if os.path.isdir(os.path.join(final, "diff")):
            shutil.rmtree(staging, ignore_errors=True)
            return f"sha256:{digest}"
        try:
            with tarfile.open(staged_tar) as archive:
                extract_layer(archive, os.path.join(staging, "diff"))
        except tarfile.TarError as exc:
            raise IsoinspectError(f"layer sha256:{digest} is not a valid tar: {exc}") from None
        except IsoinspectError as exc:
            raise IsoinspectError(f"layer sha256:{digest[:12]}: {exc}") from None
        try:
            os.rename(staging, final)
        except OSError:
            if not os.path.isdir(os.path.join(final, "diff")):
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return f"sha256:{digest}"


def extract_layer(archive: tarfile.TarFile, target: str) -> None:
    """Unpack a layer tar under ``target`` (see safe_extract: nothing leaves it, whiteouts
    become overlay whiteouts); member names are left normalized for the caller."""
    safe_extract.extract(archive, target, safe_extract.LAYER)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


# Mount points the runtime creates in every container's root, and the identity files it writes
# into the upper dir (hostname, hosts, resolv.conf: Docker bind-mounts those): not part of a
# build step.
_SKIP_TOP = {"proc", "sys", "dev"}
_SKIP_FILES = {"etc/hostname", "etc/hosts", "etc/resolv.conf"}


def tar_from_dir(source: str, out_path: str, skip_mountpoints: bool = False) -> int:
    """Write the tree under ``source`` as a layer tar with OCI whiteouts; return entry count."""
    count = 0
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as archive:
        def walk(directory: str, rel: str) -> None:
            nonlocal count
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                arc = f"{rel}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                if skip_mountpoints:
                    if arc in _SKIP_FILES:
                        continue
                    if not rel and stat.S_ISDIR(st.st_mode) and not _is_opaque(entry.path) \
                            and (entry.name in _SKIP_TOP or entry.name == "etc") and \
                            all(f"{arc}/{n}" in _SKIP_FILES for n in os.listdir(entry.path)):
                        continue
                if _is_whiteout(st):
                    info = tarfile.TarInfo(f"{rel}{WH_PREFIX}{entry.name}")
                    info.mtime = int(st.st_mtime)
                    archive.addfile(info)
                    count += 1
                    continue
                info = archive.gettarinfo(entry.path, arcname=arc)
                info.uname = info.gname = ""
                if info.isreg():
                    with open(entry.path, "rb") as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info)
                count += 1
                if stat.S_ISDIR(st.st_mode):
                    if _is_opaque(entry.path):
                        marker = tarfile.TarInfo(f"{arc}/{WH_OPAQUE}")
                        marker.mtime = int(st.st_mtime)
                        archive.addfile(marker)
                        count += 1
                    walk(entry.path, f"{arc}/")

        walk(source, "")
    return count
