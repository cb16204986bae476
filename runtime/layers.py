"""Content-addressed layer storage: a layer tar is digested, kept, and unpacked once."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.roots import Roots


def digest_file(path: str) -> str:
    """sha256 of a file's bytes, hex."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def import_tar(roots: Roots, tar_path: str) -> str:
    """Store ``tar_path`` as a layer; return its diff_id. Idempotent and crash safe.

    The layer is unpacked into a temporary directory next to its final place and renamed into
    place only when complete, so a crash never leaves a half layer under its digest.
    """
    digest = digest_file(tar_path)
    final = roots.data("layers", digest)
    if os.path.isdir(os.path.join(final, "diff")):
        return f"sha256:{digest}"
    staging = roots.data("layers", f".staging-{digest}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "diff"))
    try:
        shutil.copyfile(tar_path, os.path.join(staging, "layer.tar"))
        with tarfile.open(tar_path) as archive:
            _extract(archive, os.path.join(staging, "diff"))
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


def _extract(archive: tarfile.TarFile, target: str) -> None:
    for member in archive.getmembers():
        name = os.path.normpath(member.name)
        if name.startswith("..") or os.path.isabs(name):
            raise IsoinspectError(f"layer entry {member.name!r} escapes the layer")
    archive.extractall(target, numeric_owner=True)
