"""A suite's base image other than busybox (the tools suite's debian:bookworm-tools), handed to
each kind of target from one cached root file system tar, so every target runs the same files:

* isoinspect: the image in the target's private store (``ensure`` imports the cached tar);
* runc, crun, runsc: the tar unpacked as the bundles' root file system;
* docker: ``docker import`` of the same tar (removed again at clean-up).

The suite's layer (the workload program, for the cpu control) still goes on top the usual way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from isoinspect.benches.bundle import DEFAULT_ENV
from isoinspect.benches.targets.base import TargetError


@dataclass(frozen=True)
class BaseImage:
    """``ref`` in an isoinspect store; ``ensure(store)`` makes it there; ``rootfs_tar()`` is
    its root file system as one uncompressed tar (made and cached on first use)."""

    ref: str
    ensure: Callable[[object], str]
    rootfs_tar: Callable[[], str]


def _log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def debian_tools() -> BaseImage:
    """debian:bookworm-tools (runtime/image_debian.py): minbase + sysbench, fio, iperf3."""
    from isoinspect.runtime import image_debian

    variant = image_debian.WITH_TOOLS
    return BaseImage(ref=variant.ref,
                     ensure=lambda store: image_debian.ensure_debian_image(store, _log,
                                                                           variant)[0],
                     rootfs_tar=lambda: image_debian.rootfs_tar(_log, variant))


def into_rootfs(base: BaseImage, rootfs: str) -> None:
    """Make ``rootfs`` (a bundle's root, busybox until now) exactly the base's file system."""
    tar = base.rootfs_tar()
    shutil.rmtree(rootfs, ignore_errors=True)
    os.makedirs(rootfs)
    result = subprocess.run(["tar", "--numeric-owner", "-xpf", tar, "-C", rootfs],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise TargetError(f"unpacking {tar} failed: {result.stderr.strip()[-300:]}")


def into_docker(base: BaseImage, docker: str, tag: str) -> str:
    """``docker import`` the base's tar as ``tag`` (PATH set as in our bundles); the tag."""
    path = next(e for e in DEFAULT_ENV if e.startswith("PATH="))
    result = subprocess.run([docker, "import", "--change", f"ENV {path}", base.rootfs_tar(),
                             tag], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise TargetError(f"docker import failed: {result.stderr.strip()[-300:]}")
    return tag
