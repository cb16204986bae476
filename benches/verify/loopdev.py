"""A file-backed loop device with an ext4 on it, made for the I/O checks and always undone.

Everything is named ``isoinspect-verify-io-<pid>``; ``close`` unmounts, detaches and deletes
in that order and tolerates a half-made set-up, so a failed check leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess

SIZE = 256 << 20


class LoopUnavailable(RuntimeError):
    """This kernel cannot make a loop device (no loop driver): the I/O checks are UNSUPPORTED."""


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout.strip()


class LoopScratch:
    def __init__(self, workdir: str, size: int = SIZE) -> None:
        stem = os.path.join(workdir, f"isoinspect-verify-io-{os.getpid()}")
        self.image, self.mountpoint, self.size = stem + ".img", stem + ".mnt", size
        self.device = ""
        self.mounted = False

    def open(self) -> "LoopScratch":
        try:
            with open(self.image, "wb") as handle:
                handle.truncate(self.size)
            try:
                self.device = _run(["losetup", "--find", "--show", self.image])
            except RuntimeError as exc:
                if os.path.exists("/dev/loop-control"):
                    raise
                raise LoopUnavailable(f"no loop device driver in this kernel "
                                      f"(/dev/loop-control missing): {exc}") from None
            _run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                  self.device])
            os.makedirs(self.mountpoint, exist_ok=True)
            _run(["mount", "-t", "ext4", self.device, self.mountpoint])
            self.mounted = True
        except BaseException:
            self.close()
            raise
        return self

    def directory(self, name: str) -> str:
        """A fresh directory on the loop file system (mode 0777: any container user writes)."""
        path = os.path.join(self.mountpoint, name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o777)
        return path

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", self.mountpoint], capture_output=True, timeout=60)
            self.mounted = False
        if self.device:
            subprocess.run(["losetup", "-d", self.device], capture_output=True, timeout=60)
            self.device = ""
        if os.path.isdir(self.mountpoint) and not os.path.ismount(self.mountpoint):
            shutil.rmtree(self.mountpoint, ignore_errors=True)
        if os.path.exists(self.image):
            os.unlink(self.image)
