"""The guest kernel: a Debian ``linux-image-*-amd64`` package fetched with apt, cached by version.

``ensure_kernel()`` returns a :class:`GuestKernel` (vmlinuz path + the modules the guest needs,
uncompressed, in load order). Everything lives under the cache directory
(``$ISOINSPECT_VM_CACHE`` or /var/cache/isoinspect/vm), keyed by package name and version, so a
second run does no download and no extraction: only a local ``apt-cache`` query.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

from isoinspect.runtime.fsutil import write_atomic

DEFAULT_CACHE = "/var/cache/isoinspect/vm"
META_PACKAGE = "linux-image-amd64"

# What the guest loads from its initramfs (their dependencies are added): virtio PCI transport,
# 9p shares, a virtio disk for io.max, overlayfs (writable project tree, container rootfs) and
# veth (container networking). Names as in modinfo (underscores).
WANTED_MODULES = ("virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "overlay", "veth")


class VMError(RuntimeError):
    """The guest could not be prepared, booted or run (message says what and why)."""


@dataclass
class GuestKernel:
    package: str
    version: str
    release: str                      # uname -r in the guest, e.g. 6.1.0-56-amd64
    vmlinuz: str
    modules: list[str] = field(default_factory=list)   # .ko paths in load order
    directory: str = ""
    # The uncompressed ELF, booted through its PVH entry: skips the BIOS real-mode set-up and
    # the in-guest decompression (seconds under TCG). None if the kernel has no CONFIG_PVH.
    vmlinux: str | None = None

    @property
    def boot_image(self) -> str:
        return self.vmlinux or self.vmlinuz

    @property
    def key(self) -> str:
        return f"{self.package}_{self.version}"


def cache_dir(path: str | None = None) -> str:
    return path or os.environ.get("ISOINSPECT_VM_CACHE") or DEFAULT_CACHE


def _run(argv: list[str], cwd: str | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise VMError(f"{argv[0]} not found: the VM harness needs Debian's apt/dpkg") from None
    if done.returncode != 0:
        raise VMError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def resolve_package(package: str | None = None) -> tuple[str, str]:
    """(package, candidate version) of the kernel image to use, from the local apt cache.

    ``package`` (or $ISOINSPECT_VM_KERNEL_PACKAGE) names one, e.g. linux-image-6.1.0-56-amd64;
    the default follows the ``linux-image-amd64`` meta package's dependency.
    """
    package = package or os.environ.get("ISOINSPECT_VM_KERNEL_PACKAGE")
    if not package:
        out = _run(["apt-cache", "depends", META_PACKAGE])
        found = re.findall(r"Depends:\s*(linux-image-\S+)", out)
        if not found:
            raise VMError(f"apt-cache depends {META_PACKAGE} names no kernel image "
                          f"(is the Debian archive in sources.list and `apt-get update` done?)")
        package = found[0]
    out = _run(["apt-cache", "policy", package])
    match = re.search(r"Candidate:\s*(\S+)", out)
    if not match or match.group(1) == "(none)":
        raise VMError(f"apt has no candidate for {package} (run apt-get update?)")
    return package, match.group(1)


def _modinfo(path: str) -> dict[str, str]:
    with open(path, "rb") as handle:
        data = handle.read()
    info = {}
    for key in (b"depends", b"name", b"vermagic"):
        found = re.search(rb"(?:^|\x00)" + key + rb"=([^\x00]*)\x00", data)
        if found:
            info[key.decode()] = found.group(1).decode()
    return info


def _index_modules(tree: str) -> dict[str, str]:
    """module name (underscores) -> path of its .ko[.xz|.zst] file under ``tree``."""
    index = {}
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            base = re.sub(r"\.ko(\.xz|\.zst|\.gz)?$", "", name)
            if base != name:
                index[base.replace("-", "_")] = os.path.join(dirpath, name)
    return index


def _decompress(src: str, dst: str) -> None:
    if src.endswith(".xz"):
        with lzma.open(src) as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    elif src.endswith(".zst"):
        _run(["zstd", "-q", "-d", "-f", src, "-o", dst])
    elif src.endswith(".gz"):
        import gzip

        with gzip.open(src) as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    else:
        shutil.copyfile(src, dst)


def resolve_modules(tree: str, wanted=WANTED_MODULES,
                    builtin: set[str] | None = None) -> list[tuple[str, str]]:
    """[(name, path)] of ``wanted`` modules and their dependencies, dependencies first.
    Built-in ones are skipped; a missing one raises VMError."""
    index = _index_modules(tree)
    builtin = builtin or set()
    order: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple) -> None:
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        if name not in index:
            raise VMError(f"kernel module {name} (needed by {' <- '.join(chain) or 'the guest'}) "
                          f"is neither built in nor in {tree}")
        seen.add(name)
        path = index[name]
        tmp = None
        if not path.endswith(".ko"):
            tmp = tempfile.NamedTemporaryFile(suffix=".ko", delete=False).name
            _decompress(path, tmp)
        try:
            deps = _modinfo(tmp or path).get("depends", "")
        finally:
            if tmp:
                os.unlink(tmp)
        for dep in filter(None, deps.split(",")):
            visit(dep, chain + (name,))
        order.append((name, path))

    for module in wanted:
        visit(module, ())
    return order


def _builtin_names(release_dir: str) -> set[str]:
    names = set()
    try:
        with open(os.path.join(release_dir, "modules.builtin")) as handle:
            for line in handle:
                base = os.path.basename(line.strip())
                names.add(re.sub(r"\.ko.*$", "", base).replace("-", "_"))
    except OSError:
        pass
    return names


def ensure_kernel(cache: str | None = None, package: str | None = None,
                  log=None) -> GuestKernel:
    """Download (apt-get download), extract and cache the kernel; return it (cached: no I/O
    beyond an ``apt-cache policy``)."""
    cache = cache_dir(cache)
    # A pinned kernel directory (offline use): $ISOINSPECT_VM_KERNEL_DIR with kernel.json.
    pinned = os.environ.get("ISOINSPECT_VM_KERNEL_DIR")
    if pinned:
        return _load(pinned)
    package, version = resolve_package(package)
    key = f"{package}_{version}".replace(":", "%3a")
    directory = os.path.join(cache, "kernels", key)
    meta = os.path.join(directory, "kernel.json")
    if os.path.exists(meta):
        return _load(directory)
    os.makedirs(os.path.join(cache, "debs"), exist_ok=True)
    import fcntl

    with open(os.path.join(cache, ".lock"), "w") as lock:   # one download/extraction at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(meta):
            return _load(directory)
        return _fetch(cache, package, version, directory, log)


def _fetch(cache: str, package: str, version: str, directory: str, log) -> GuestKernel:
    debs = os.path.join(cache, "debs")
    deb = _find_deb(debs, package, version)
    if not deb:
        if log:
            log(f"downloading {package} {version} with apt-get download")
        _run(["apt-get", "download", f"{package}={version}"], cwd=debs)
        deb = _find_deb(debs, package, version)
        if not deb:
            raise VMError(f"apt-get download {package}={version} left no .deb in {debs}")
    if log:
        log(f"extracting {os.path.basename(deb)}")
    work = tempfile.mkdtemp(prefix="extract-", dir=cache)
    try:
        _run(["dpkg-deb", "-x", deb, work])
        vmlinuz = sorted(f for f in os.listdir(os.path.join(work, "boot"))
                         if f.startswith("vmlinuz-"))
        if not vmlinuz:
            raise VMError(f"{deb} holds no boot/vmlinuz-*")
        release = vmlinuz[0].removeprefix("vmlinuz-")
        release_dir = os.path.join(work, "lib", "modules", release)
        order = resolve_modules(release_dir, builtin=_builtin_names(release_dir))
        staging = directory + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(os.path.join(staging, "modules"))
        shutil.copyfile(os.path.join(work, "boot", vmlinuz[0]), os.path.join(staging, "vmlinuz"))
        config = os.path.join(work, "boot", f"config-{release}")
        if os.path.exists(config):
            shutil.copyfile(config, os.path.join(staging, "config"))
        names = []
        for name, path in order:
            _decompress(path, os.path.join(staging, "modules", name + ".ko"))
            names.append(name)
        with open(os.path.join(staging, "kernel.json"), "w") as handle:
            json.dump({"package": package, "version": version, "release": release,
                       "modules": names}, handle, indent=1)
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(staging, directory)
        os.unlink(deb)   # what the guest needs is extracted: keep the cache at ~75 MB
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _load(directory)


def _find_deb(debs: str, package: str, version: str) -> str | None:
    quoted = version.replace(":", "%3a")
    for name in os.listdir(debs):
        if name.startswith(f"{package}_") and name.endswith(".deb") and (
                f"_{quoted}_" in name or f"_{version.split(':')[-1]}_" in name):
            return os.path.join(debs, name)
    return None


def _load(directory: str) -> GuestKernel:
    try:
        with open(os.path.join(directory, "kernel.json")) as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as exc:
        raise VMError(f"no usable kernel.json in {directory}: {exc}") from None
    return GuestKernel(meta["package"], meta["version"], meta["release"],
                       os.path.join(directory, "vmlinuz"),
                       [os.path.join(directory, "modules", m + ".ko") for m in meta["modules"]],
                       directory, ensure_vmlinux(directory))


_MAGICS = ((b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b\x08", "gzip"))


def ensure_vmlinux(directory: str) -> str | None:
    """Path of the uncompressed kernel (extracted from vmlinuz once and cached) when the kernel
    can be booted through PVH (CONFIG_PVH=y and an ELF image); else None (boot vmlinuz)."""
    target = os.path.join(directory, "vmlinux")
    if os.path.exists(target):
        return target
    if os.environ.get("ISOINSPECT_VM_NO_PVH") == "1":
        return None
    try:
        with open(os.path.join(directory, "config")) as handle:
            if "CONFIG_PVH=y" not in handle.read().split():
                return None
        with open(os.path.join(directory, "vmlinuz"), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    for magic, kind in _MAGICS:
        at = data.find(magic)
        while at >= 0:
            try:
                if kind == "xz":
                    out = lzma.LZMADecompressor().decompress(data[at:])
                elif kind == "gzip":
                    import zlib

                    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[at:])
                else:
                    out = subprocess.run(["zstd", "-q", "-d", "-c"], input=data[at:],
                                         capture_output=True, timeout=120).stdout
            except (lzma.LZMAError, OSError, subprocess.SubprocessError, Exception):
                out = b""
            if out[:4] == b"\x7fELF":
                write_atomic(target, out)
                return target
            at = data.find(magic, at + 1)
    return None
