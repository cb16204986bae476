"""The QEMU guest harness (benches/vm): the pieces without QEMU, then real boots: output and exit
codes come back, hangs and boot failures end with a clear VMError inside their timeout, the
accelerator is labelled, and the CLI (`isoinspect vm ...`) passes exit codes through."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from doctor_facts import lacks

from isoinspect.benches.vm import initramfs, kernel, qemu
from isoinspect.benches.vm.kernel import VMError

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")


# ---- without QEMU --------------------------------------------------------------------------------

def _parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries, offset = {}, 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i:offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[data_start:data_start + size])
        offset = data_start + size + (-size % 4)


def test_cpio_writer_makes_a_newc_archive():
    cpio = initramfs._Cpio()
    cpio.dir("bin")
    cpio.file("bin/x", b"hello", 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.chardev("dev/console", 5, 1)
    entries = _parse_newc(cpio.finish())
    assert entries["bin/x"] == (0o100755, b"hello")
    assert entries["bin/sh"] == (0o120777, b"busybox")
    assert entries["dev/console"][0] == 0o020600
    assert entries["bin"][0] == 0o040755


def test_busybox_cpio_reads_our_archive(tmp_path):
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("no busybox")
    cpio = initramfs._Cpio()
    cpio.dir("d")
    cpio.file("d/f", b"x" * 1001)
    listing = subprocess.run([busybox, "cpio", "-t"], input=cpio.finish(), capture_output=True)
    assert listing.stdout.decode().split() == ["d", "d/f"]


def _fake_ko(path, depends: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF junk\x00license=GPL\x00depends=" + depends.encode()
                     + b"\x00vermagic=6.1\x00")


def test_modules_resolve_dependencies_first(tmp_path):
    _fake_ko(tmp_path / "fs/9p/9p.ko", "9pnet,netfs")
    _fake_ko(tmp_path / "net/9p/9pnet.ko", "")
    _fake_ko(tmp_path / "fs/netfs/netfs.ko", "fscache")
    _fake_ko(tmp_path / "fs/fscache/fscache.ko", "")
    _fake_ko(tmp_path / "fs/overlayfs/overlay.ko", "")
    order = [name for name, _ in kernel.resolve_modules(str(tmp_path), ("9p", "overlay"),
                                                        builtin={"fscache"})]
    assert order == ["9pnet", "netfs", "9p", "overlay"]
    with pytest.raises(VMError, match="virtio_blk .* neither built in nor in"):
        kernel.resolve_modules(str(tmp_path), ("virtio_blk",))


def test_pvh_kernel_is_extracted_from_vmlinuz_once(tmp_path):
    import lzma

    elf = b"\x7fELF" + b"kernel" * 1000
    (tmp_path / "vmlinuz").write_bytes(b"MZ setup code" + lzma.compress(elf) + b"trailer")
    (tmp_path / "config").write_text("CONFIG_PVH=y\n")
    path = kernel.ensure_vmlinux(str(tmp_path))
    assert path == str(tmp_path / "vmlinux") and (tmp_path / "vmlinux").read_bytes() == elf
    other = tmp_path / "nopvh"
    other.mkdir()
    (other / "vmlinuz").write_bytes(b"MZ" + lzma.compress(elf))
    (other / "config").write_text("# CONFIG_PVH is not set\n")
    assert kernel.ensure_vmlinux(str(other)) is None


def test_init_script_and_command_line_layout():
    fake = kernel.GuestKernel("p", "1", "6.1.0-x", "/vmlinuz", ["/k/modules/virtio.ko",
                                                               "/k/modules/9p.ko"], "/k")
    assert "for m in virtio 9p; do" in initramfs.init_script(fake)
    assert initramfs.cmdline([("usr", "/usr", "ro"), ("project", "/work/p", "ov")],
                             [("bin", "usr/bin"), ("lib", "usr/lib")]) == \
        "isoinspect.shares=usr:/usr:ro,project:/work/p:ov isoinspect.links=bin=usr/bin,lib=usr/lib"
    with pytest.raises(VMError, match="not supported"):
        initramfs.cmdline([("x", "/a b", "ro")], [])
    assert "cgroup2" in initramfs.STAGE2 and "+$c" in initramfs.STAGE2


def test_failure_and_tail_helpers():
    console = "noise\n@@VM-FAIL 9p usr\nmore\n"
    assert qemu._failure(console) == ": 9p usr"
    assert qemu._tail("a\r\nb\n", 1).endswith("\nb")


# ---- real boots ----------------------------------------------------------------------------------

def _why_skip() -> str | None:
    if os.environ.get("ISOINSPECT_VM_SKIP") == "1":
        return "ISOINSPECT_VM_SKIP=1"
    if os.environ.get("ISOINSPECT_VM_GUEST") == "1":
        return "already inside the guest"
    if os.geteuid() != 0:
        return "needs root (9p passthrough shares)"
    return lacks("peers", "qemu")


_SKIP = _why_skip()
needs_qemu = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


@pytest.fixture(scope="module")
def vm():
    return qemu.GuestVM()


@needs_qemu
def test_run_returns_stdout_stderr_and_exit_code(vm):
    result = vm.run("echo out; echo err >&2; uname -r; cat /proc/self/cgroup; "
                    "stat -f -c %T /sys/fs/cgroup; pwd; echo $GREETING; exit 7",
                    env={"GREETING": "hi there"})
    assert result.returncode == 7
    assert result.stdout.split("\n")[:6] == ["out", vm.kernel.release, "0::/", "cgroup2fs",
                                             vm.project, "hi there"]
    assert result.stderr == "err\n"
    assert result.accel in ("kvm", "tcg") and result.accel == vm.accel
    assert 0 < result.boot_seconds < result.total_seconds
    assert result.guest_uptime_ready and result.guest_uptime_ready < result.boot_seconds
    assert "@@VM-READY" in result.console and "@@VM-EXIT rc=7" in result.console


@needs_qemu
def test_argv_commands_are_quoted_and_the_project_is_writable_in_the_guest(vm):
    result = vm.run(["sh", "-c", 'echo "$1" > written && cat written && "$2" -c '
                     '"import isoinspect.runtime.cgroups as c; print(c.read_layout().mode)"',
                     "sh", "a b  'c'", sys.executable])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["a b  'c'", "unified"]
    assert not os.path.exists(os.path.join(vm.project, "written"))   # tmpfs overlay only


@needs_qemu
def test_a_hung_command_ends_with_a_clear_error(vm):
    begin = time.monotonic()
    with pytest.raises(VMError, match=r"did not finish the command within 12 s"):
        vm.run("sleep 600", timeout=12)
    assert time.monotonic() - begin < 25


@needs_qemu
def test_a_slow_boot_ends_with_a_clear_error(vm):
    begin = time.monotonic()
    with pytest.raises(VMError, match=r"did not reach the ready marker within 1 s"):
        vm.run("true", boot_timeout=1)
    assert time.monotonic() - begin < 10


@needs_qemu
def test_qemu_failing_to_start_is_reported(vm, tmp_path):
    broken = qemu.GuestVM(extra_shares=[(str(tmp_path / "missing"), "/mnt/x", "ro")])
    broken.accel = vm.accel
    with pytest.raises(VMError, match=r"ended \(QEMU exit 1\) before the ready marker") as info:
        broken.run("true")
    assert "missing" in str(info.value)   # QEMU's own message is in the console tail


@needs_qemu
def test_cli_run_and_boot_time(tmp_path):
    result = subprocess.run([CLI, "vm", "run", "--disk", "0", "--", "sh", "-c",
                             "echo hello; exit 3"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello\n"
    assert "exit 3" in result.stderr and ("tcg" in result.stderr or "kvm" in result.stderr)
    out = tmp_path / "boot.json"
    timed = subprocess.run([CLI, "vm", "boot-time", "--runs", "1", "--disk", "0", "--json",
                            str(out)], capture_output=True, text=True, timeout=300)
    assert timed.returncode == 0, timed.stderr
    data = json.loads(out.read_text())
    assert data["accel"] in ("kvm", "tcg") and data["target"] == f"qemu-{data['accel']}"
    assert data["accel_reason"] and data["boot_s_median"] > 0
    assert "boot to ready median" in timed.stdout


def test_cached_initramfs_is_gzip_newc():
    cache = kernel.cache_dir()
    directory = os.path.join(cache, "kernels")
    images = [os.path.join(root, f) for root, _d, files in os.walk(directory) for f in files
              if f.startswith("initramfs-") and f.endswith(".gz")] if os.path.isdir(directory) \
        else []
    if not images:
        pytest.skip("no initramfs built yet")
    with gzip.open(images[0]) as handle:
        entries = _parse_newc(handle.read())
    assert {"init", "stage2", "bin/busybox", "dev/console"} <= set(entries)
