"""The built-in base image ``busybox:latest``, made from the host's busybox-static.

There is no Docker Hub here, so the base image is assembled locally: one layer holding the
static busybox binary, a symlink per applet, and the few files a shell expects (/etc/passwd,
/etc/group, /tmp). The tar is built deterministically (sorted entries, fixed mtimes and owners)
so the same busybox always yields the same layer digest and image id.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.images import DEFAULT_PATH_ENV, ImageStore

BASE_REF = "busybox:latest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_EPOCH = 0

_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"
                  b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": b"root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n",
    "etc/hostname": b"busybox\n",
    "etc/hosts": b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/resolv.conf": b"",
}
_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "proc": 0o555, "sys": 0o555, "root": 0o700,
         "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "sbin": 0o755,
         "var": 0o755, "var/tmp": 0o1777, "home": 0o755, "run": 0o755}


def find_busybox() -> str:
    """Path of a statically linked busybox on the host."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            return path
    raise IsoinspectError("busybox not found: install busybox-static (make setup does)")


def _applets(busybox: str) -> list[str]:
    output = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                            text=True).stdout
    return sorted(line.strip() for line in output.splitlines() if line.strip())


def build_layer_tar(out_path: str, busybox: str | None = None) -> None:
    """Write the busybox root file system as a deterministic uncompressed tar."""
    busybox = busybox or find_busybox()
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as archive:
        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime, info.uid, info.gid, info.uname, info.gname = _EPOCH, 0, 0, "", ""
            archive.addfile(info, io.BytesIO(data) if data is not None else None)

        for name in sorted(_DIRS):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, _DIRS[name]
            add(info)
        with open(busybox, "rb") as handle:
            binary = handle.read()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(binary), 0o755
        add(info, binary)
        for applet in _applets(busybox):
            if applet in ("bin/busybox",) or "/" not in applet:
                continue
            info = tarfile.TarInfo(applet)
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
            add(info)
        for name in sorted(_FILES):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(_FILES[name]), 0o644
            add(info, _FILES[name])


def ensure_base_image(store: ImageStore) -> tuple[str, bool]:
    """Create busybox:latest if it is missing; return (image id, created now?)."""
    try:
        return store.resolve(BASE_REF), False
    except IsoinspectError:
        pass
    with tempfile.TemporaryDirectory(prefix="isoinspect-base-") as tmp:
        tar_path = os.path.join(tmp, "layer.tar")
        build_layer_tar(tar_path)
        diff_id = store.add_layer_from_tar(tar_path)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [DEFAULT_PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": "isoinspect: busybox-static from the host"}],
    }
    return store.add_image(config, [BASE_REF]), True
