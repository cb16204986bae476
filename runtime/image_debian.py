"""A realistic base image: Debian bookworm minbase made with debootstrap, as ``debian:bookworm``.

The mirror is the one this machine's apt uses (/etc/apt/sources.list and sources.list.d), never
a hardcoded host. The root file system tar is cached (``$ISOINSPECT_CACHE_DIR``, default
/var/cache/isoinspect), so only the first creation pays for debootstrap (~30 s here).

A second variant, ``debian:bookworm-tools``, is the same minbase plus the real benchmark tools
(sysbench, fio, iperf3) for ``bench overhead --suite tools``; it has its own debootstrap run and
cached tar, so the plain image stays exactly what it was.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import AtomicFile
from isoinspect.runtime.images import DEFAULT_PATH_ENV, ImageStore

DEBIAN_REF = "debian:bookworm"
SUITE = "bookworm"
INCLUDE = "python3-minimal"  # so real programs (python3) run in it
TOOLS_REF = "debian:bookworm-tools"
TOOLS = ("sysbench", "fio", "iperf3")  # the overhead bench's real tools (benches/overhead/tools.py)


@dataclass(frozen=True)
class DebianVariant:
    """One debootstrap'd image: its tag, its cached tar's name and the packages it includes."""

    ref: str
    tar_name: str
    include: tuple[str, ...]


PLAIN = DebianVariant(DEBIAN_REF, f"debian-{SUITE}-minbase.tar", (INCLUDE,))
WITH_TOOLS = DebianVariant(TOOLS_REF, f"debian-{SUITE}-minbase-tools.tar", (INCLUDE,) + TOOLS)


def cache_dir() -> str:
    return os.environ.get("ISOINSPECT_CACHE_DIR") or "/var/cache/isoinspect"


def apt_mirror(etc: str = "/etc/apt") -> str:
    """The Debian mirror apt uses for the main archive (not -security, not -updates)."""
    candidates: list[str] = []
    for path in sorted(glob.glob(f"{etc}/sources.list.d/*.sources")):
        with open(path) as handle:
            for stanza in handle.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
                suites = fields.get("suites", [])
                if "deb" in fields.get("types", []) and SUITE in suites:
                    candidates += fields.get("uris", [])
    for path in [f"{etc}/sources.list"] + sorted(glob.glob(f"{etc}/sources.list.d/*.list")):
        try:
            with open(path) as handle:
                for line in handle:
                    words = [w for w in line.split() if not w.startswith("[")]
                    if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                        candidates.append(words[1])
        except FileNotFoundError:
            continue
    for uri in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    raise IsoinspectError("no Debian bookworm mirror found in /etc/apt sources")


def rootfs_tar(log=print, variant: DebianVariant = PLAIN) -> str:
    """Path of the variant's cached root file system tar, made with debootstrap if missing."""
    cache = cache_dir()
    target = os.path.join(cache, variant.tar_name)
    if os.path.isfile(target):
        return target
    if not shutil.which("debootstrap"):
        raise IsoinspectError("debootstrap is not installed (apt-get install debootstrap)")
    os.makedirs(cache, exist_ok=True)
    staging = os.path.join(cache, f".debootstrap-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    mirror = apt_mirror()
    include = ",".join(variant.include)
    log(f"debootstrap --variant=minbase --include={include} {SUITE} from {mirror} "
        f"(cached in {target})")
    try:
        result = subprocess.run(["debootstrap", "--variant=minbase", f"--include={include}",
                                 SUITE, staging, mirror],
                                capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-10:])
            raise IsoinspectError(f"debootstrap failed ({result.returncode}):\n{tail}")
        # What the runtime provides itself, and caches we need not ship.
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in glob.glob(os.path.join(staging, rel, "*")):
                if os.path.isfile(path):
                    os.unlink(path)
        for rel in ("dev", "proc", "sys"):
            path = os.path.join(staging, rel)
            shutil.rmtree(path, ignore_errors=True)
            os.mkdir(path, 0o755)
        with AtomicFile(target) as out:
            subprocess.run(["tar", "--numeric-owner", "--sort=name", "-C", staging, "-cf", "-",
                            "."], stdout=out, check=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_debian_image(store: ImageStore, log=print,
                        variant: DebianVariant = PLAIN) -> tuple[str, bool]:
    """Create the variant's image (debian:bookworm by default) if it is missing.

    Returns (image id, created now?).
    """
    try:
        return store.resolve(variant.ref), False
    except IsoinspectError:
        pass
    diff_id = store.add_layer_from_tar(rootfs_tar(log, variant))
    made_by = f"isoinspect: debootstrap --variant=minbase {SUITE}"
    if variant != PLAIN:  # the plain image's config (so its id) stays what it always was
        made_by += f" --include={','.join(variant.include)}"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [DEFAULT_PATH_ENV, "LANG=C.UTF-8"], "Cmd": ["bash"],
                   "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": made_by}],
    }
    return store.add_image(config, [variant.ref]), True
