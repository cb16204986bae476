"""The guest's initramfs: busybox (static) + the kernel's modules + /init, as a gzip'd newc cpio.

/init (busybox sh) loads the modules, builds the guest root on a tmpfs from 9p shares of the
host (``/usr`` and ``/etc`` read-only, the project tree read-only under a tmpfs overlay, the run
directory read-write), mounts cgroup2 at /sys/fs/cgroup with every controller enabled in the
root's cgroup.subtree_control, then switch_roots and runs the job (see qemu.py). Every stage
prints an ``@@VM`` line on the console; a failure prints ``@@VM-FAIL`` and powers off at once.

Built images are cached next to the kernel, keyed by a hash of their inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat

from isoinspect.runtime.fsutil import write_atomic

from .kernel import GuestKernel, VMError

BUSYBOX_CANDIDATES = ("/usr/bin/busybox", "/bin/busybox", "/usr/lib/initramfs-tools/bin/busybox")

# Runs as PID 1 from the initramfs. The layout comes from the kernel command line:
# isoinspect.shares=tag:path:mode,... and isoinspect.links=name=target,... (see cmdline()).
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "@@VM-FAIL $*"; sync; poweroff -f; sleep 5; }
mount -t proc proc /proc
SHARES=; LINKS=
for word in $(cat /proc/cmdline); do
  case $word in
    isoinspect.shares=*) SHARES=$(echo "${word#*=}" | tr , ' ') ;;
    isoinspect.links=*) LINKS=$(echo "${word#*=}" | tr , ' ') ;;
  esac
done
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev || fail "devtmpfs"
echo "@@VM stage=modules uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in @MODULES@; do
  insmod /lib/modules/$m.ko 2>/tmp/insmod.err || { grep -q "File exists" /tmp/insmod.err || fail "insmod $m: $(cat /tmp/insmod.err)"; }
done
N=/newroot
mount -t tmpfs -o mode=0755 root $N || fail "tmpfs root"
cd $N && mkdir -p proc sys dev tmp run var/tmp var/lib var/cache var/log root home mnt .vm-rw && chmod 1777 tmp var/tmp && cd /
for link in $LINKS; do ln -s "${link#*=}" "$N/${link%%=*}"; done
OPTS=trans=virtio,version=9p2000.L,msize=512000
for share in $SHARES; do
  tag=${share%%:*}; rest=${share#*:}; path=${rest%:*}; mode=${rest##*:}
  mkdir -p "$N$path"
  case $mode in
    ro) mount -t 9p -o $OPTS,cache=loose,ro "$tag" "$N$path" || fail "9p $tag" ;;
    rw) mount -t 9p -o $OPTS "$tag" "$N$path" || fail "9p $tag" ;;
    ov) mkdir -p /lower/$tag $N/.vm-rw/$tag/upper $N/.vm-rw/$tag/work
        mount -t 9p -o $OPTS,cache=loose,ro "$tag" /lower/$tag || fail "9p $tag"
        mount -t overlay -o lowerdir=/lower/$tag,upperdir=$N/.vm-rw/$tag/upper,workdir=$N/.vm-rw/$tag/work overlay "$N$path" \
          || { echo "@@VM overlay on $path failed: read-only"; mount --bind /lower/$tag "$N$path"; } ;;
  esac
done
mkdir -p $N/run/vm && cp /bin/busybox /stage2 $N/run/vm/ || fail "stage2 copy"
mount --move /dev $N/dev && mount --move /sys $N/sys && mount --move /proc $N/proc || fail "move"
echo "@@VM stage=switch_root uptime=$(cut -d' ' -f1 $N/proc/uptime)"
exec switch_root $N /run/vm/busybox sh /run/vm/stage2
fail "switch_root"
"""

# PID 1 after switch_root. The job is /run/isoinspect-vm/job.sh in the run share.
STAGE2 = r"""B=/run/vm/busybox
fail() { echo "@@VM-FAIL $*"; $B sync; $B poweroff -f; $B sleep 5; }
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8 ISOINSPECT_VM_GUEST=1
$B mkdir -p /dev/pts /dev/shm /dev/mqueue
$B mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
$B mount -t tmpfs -o mode=1777 shm /dev/shm
$B mount -t mqueue mqueue /dev/mqueue 2>/dev/null
$B mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
$B mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$B mount -t bpf bpf /sys/fs/bpf 2>/dev/null
$B mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "cgroup2 mount"
for c in $($B cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable $c"
done
$B ip link set lo up 2>/dev/null
$B hostname isoinspect-vm
# Open-files limits as systemd gives its services (soft 1024, hard 524288), not the kernel's 4096.
ulimit -Hn 524288; ulimit -Sn 1024
R=/run/isoinspect-vm
[ -f $R/job.sh ] || fail "no job in $R"
echo "@@VM-READY uptime=$($B cut -d' ' -f1 /proc/uptime) controllers=$($B cat /sys/fs/cgroup/cgroup.subtree_control | $B tr ' ' ,)"
cd /
/bin/sh $R/job.sh </dev/null >$R/stdout 2>$R/stderr; rc=$?
echo $rc > $R/rc
echo "@@VM-EXIT rc=$rc uptime=$($B cut -d' ' -f1 /proc/uptime)"
$B sync
$B poweroff -f
$B sleep 5
"""


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            with open(path, "rb") as handle:
                head = handle.read(1 << 16)
            if b"/lib64/ld-linux" not in head and b"/lib/ld-linux" not in head:
                return path
    raise VMError("no static busybox found (apt-get install busybox-static)")


class _Cpio:
    """A newc archive writer (what the kernel unpacks as an initramfs)."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self.out.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def root_links(host_root: str = "/") -> list[tuple[str, str]]:
    """Top-level symlinks of a merged-/usr host (bin -> usr/bin ...), recreated in the guest."""
    links = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = os.path.join(host_root, name)
        if os.path.islink(path):
            links.append((name, os.readlink(path)))
    return links


def init_script(kernel: GuestKernel) -> str:
    modules = " ".join(os.path.basename(m)[:-3] for m in kernel.modules)
    return INIT.replace("@MODULES@", modules)


def cmdline(shares: list[tuple[str, str, str]], links: list[tuple[str, str]]) -> str:
    """The kernel command line words that tell /init what to mount: shares as (tag, guest path,
    mode) and top-level symlinks as (name, target). Paths may not hold spaces, commas or colons."""
    for _tag, path, _mode in shares:
        if any(c in path for c in " \t\n,:="):
            raise VMError(f"guest path {path!r}: spaces, commas, colons and '=' are not supported")
    words = [f"isoinspect.shares={','.join(f'{t}:{p}:{m}' for t, p, m in shares)}"]
    if links:
        words.append(f"isoinspect.links={','.join(f'{n}={t}' for n, t in links)}")
    return " ".join(words)


def ensure_initramfs(kernel: GuestKernel) -> str:
    """Path of the (cached) initramfs for this kernel (the share layout is on the command line)."""
    busybox = find_busybox()
    init = init_script(kernel)
    digest = hashlib.sha256()
    for part in (init, STAGE2, busybox, str(os.stat(busybox).st_mtime_ns),
                 *[str(os.stat(m).st_mtime_ns) + m for m in kernel.modules]):
        digest.update(part.encode())
    path = os.path.join(kernel.directory, f"initramfs-{digest.hexdigest()[:16]}.gz")
    if os.path.exists(path):
        return path
    cpio = _Cpio()
    for name in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "newroot", "lower"):
        cpio.dir(name)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    with open(busybox, "rb") as handle:
        cpio.file("bin/busybox", handle.read(), 0o755)
    cpio.file("init", init.encode(), 0o755)
    cpio.file("stage2", STAGE2.encode(), 0o755)
    for module in kernel.modules:
        with open(module, "rb") as handle:
            cpio.file("lib/modules/" + os.path.basename(module), handle.read())
    write_atomic(path, gzip.compress(cpio.finish(), compresslevel=1))
    for old in os.listdir(kernel.directory):   # keep the cache small: drop older images
        full = os.path.join(kernel.directory, old)
        if old.startswith("initramfs-") and old.endswith(".gz") and full != path:
            try:
                os.unlink(full)
            except OSError:
                pass
    return path


__all__ = ["cmdline", "ensure_initramfs", "find_busybox", "init_script", "root_links"]
