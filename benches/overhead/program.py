"""The workload program (workload.c): its tests, its cached static build, its output.

``bench overhead`` runs the same static binary on the host and inside every target, so the
binary is built once per source version (keyed by the source's sha256) and handed to targets as
a one-file layer (``layer_dir()``). ``parse`` turns its ``@@W`` lines into typed figures.

    python -m isoinspect.benches.overhead.program build     # prints the binary's path
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import remove_tree
from isoinspect.runtime.static_program import StaticProgram, build_main, temp_name

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workload.c")
BINARY_NAME = "isoinspect-workload"
LAYER_PATH = f"usr/local/bin/{BINARY_NAME}"   # where every target's image gets it


@dataclass(frozen=True)
class WorkloadTest:
    """One test of the program, in the program's order. ``unit`` is the displayed value's;
    ``ns_per_op`` is always lower-is-better, the value only where ``higher_is_better`` is False."""
    name: str
    unit: str
    description: str
    higher_is_better: bool


TESTS: tuple[WorkloadTest, ...] = (
    WorkloadTest("cpu", "ms", "integer loop with L1 table reads and writes, ms per 1e6 "
                 "iterations (the control: ~1.0x in containers)", False),
    WorkloadTest("getppid", "ns", "getppid system call round trip", False),
    WorkloadTest("open_read_close", "ns", "open, read 512 bytes, close a small file", False),
    WorkloadTest("stat", "ns", "stat of a small file", False),
    WorkloadTest("fork", "us", "fork, child _exit, waitpid", False),
    WorkloadTest("exec", "us", "fork, execve of the static workload binary, waitpid", False),
    WorkloadTest("pipe", "ns", "1-byte ping-pong between two processes over pipes, per round "
                 "trip", False),
    WorkloadTest("signal", "ns", "kill to self, handler runs, return", False),
    WorkloadTest("page_fault", "faults/s", "mmap anonymous, write every page, munmap", True),
    WorkloadTest("tcp_rtt", "us", "1-byte ping-pong over loopback TCP (TCP_NODELAY), per round "
                 "trip", False),
    WorkloadTest("tcp_stream", "MiB/s", "bulk send over loopback TCP in 128 KiB chunks", True),
    WorkloadTest("file_write", "MiB/s", "sequential 64 KiB writes of an 8 MiB file, page cache",
                 True),
    WorkloadTest("file_read", "MiB/s", "sequential 64 KiB reads of an 8 MiB file, page cache hot",
                 True),
    WorkloadTest("file_fsync", "MiB/s", "1 MiB write + fsync, repeated", True),
    WorkloadTest("file_direct", "MiB/s", "aligned 1 MiB O_DIRECT writes (unsupported on tmpfs)",
                 True),
)
TEST_NAMES: tuple[str, ...] = tuple(test.name for test in TESTS)
STATUSES = ("ok", "unsupported", "error")
#: file systems held in memory (statfs f_type names the program prints): a write there, fsync
#: included, never reaches a device, so a file test's time there is not a device's
MEMORY_FS = ("tmpfs", "ramfs")


@dataclass(frozen=True)
class Figure:
    """One ``@@W`` line. ok: ops, ns_per_op, value and unit set; otherwise reason set.
    ``all_ops``: with ``-p`` only (else 0), every op between the test's pauses, warm-up too.
    ``fs``/``fs_magic``: a file test's directory's file system (statfs f_type), else ""."""
    test: str
    status: str
    ops: int = 0
    ns_per_op: float | None = None
    value: float | None = None
    unit: str = ""
    reason: str = ""
    all_ops: int = 0
    fs: str = ""
    fs_magic: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def in_memory(self) -> bool:
        """The test's file was on a memory file system: no write of it reached a device."""
        return self.fs in MEMORY_FS


# ------------------------------------------------------------------ output

def _fields(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in line.split()[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"field {word!r} is not key=value")
        if key in fields:
            raise ValueError(f"field {key!r} given twice")
        fields[key] = value
    return fields


def _number(fields: dict[str, str], key: str, kind: type) -> int | float:
    if key not in fields:
        raise ValueError(f"no {key}=")
    try:
        number = kind(fields[key])
    except ValueError:
        raise ValueError(f"{key}={fields[key]!r} is not a{'n int' if kind is int else ' number'}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{key}={fields[key]} is not a positive number")
    return number


def _fs(fields: dict[str, str]) -> dict[str, str]:
    """``fs`` and ``fs_magic`` (both or neither; the magic in hex), as Figure keywords."""
    if "fs" not in fields and "fs_magic" not in fields:
        return {}
    if "fs" not in fields or "fs_magic" not in fields:
        raise ValueError("fs= and fs_magic= go together")
    magic = fields["fs_magic"]
    try:
        int(magic, 16)
    except ValueError:
        raise ValueError(f"fs_magic={magic!r} is not hexadecimal") from None
    if not magic.lower().startswith("0x"):
        raise ValueError(f"fs_magic={magic!r} is not 0x<hex>")
    return {"fs": fields["fs"], "fs_magic": magic.lower()}


def _figure(line: str) -> Figure:
    fields = _fields(line)
    test, status = fields.get("test"), fields.get("status")
    if test not in TEST_NAMES:
        raise ValueError(f"unknown test {test!r}")
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    fs = _fs(fields)
    if status != "ok":
        if "reason" not in fields:
            raise ValueError("no reason=")
        return Figure(test, status, reason=fields["reason"], **fs)
    if "unit" not in fields:
        raise ValueError("no unit=")
    return Figure(test, status, ops=int(_number(fields, "ops", int)),
                  ns_per_op=float(_number(fields, "ns_per_op", float)),
                  value=float(_number(fields, "value", float)), unit=fields["unit"],
                  all_ops=int(_number(fields, "all_ops", int)) if "all_ops" in fields else 0,
                  **fs)


def parse(text: str) -> list[Figure]:
    """The figures of the program's output, in order; other lines (a shell's, a VM console's,
    ``@@W-END``) are ignored. A malformed ``@@W`` line raises ValueError naming it."""
    figures = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("@@W "):
            continue
        try:
            figures.append(_figure(line))
        except ValueError as exc:
            raise ValueError(f"malformed workload line {line!r}: {exc}") from None
    return figures


# ------------------------------------------------------------------ build and cache

def _check_tests(binary: str) -> None:
    """The binary lists exactly TESTS, in order: the two sides of the contract agree."""
    listed = subprocess.run([binary, "--list"], capture_output=True, text=True,
                            timeout=30).stdout.split()
    if tuple(listed) != TEST_NAMES:
        raise IsoinspectError(f"workload program lists {listed}, program.py expects "
                              f"{list(TEST_NAMES)}")


def _program() -> StaticProgram:
    """The workload as a static program (SOURCE read at each call: tests point it elsewhere)."""
    return StaticProgram("workload", SOURCE, BINARY_NAME, _check_tests)


def source_hash(source: bytes | None = None) -> str:
    """The build's cache key (and the workload's version, for records)."""
    return _program().source_hash(source)


def cache_root(cache_dir: str | None = None) -> str:
    """Where builds live: ``cache_dir``, else $ISOINSPECT_CACHE/workload (or the project's
    $ISOINSPECT_CACHE_DIR/workload), else /var/cache/isoinspect/workload."""
    return _program().cache_root(cache_dir)


def binary_path(cache_dir: str | None = None, source: bytes | None = None) -> str:
    """Where the build of this source is (or will be): <cache>/<source hash>/isoinspect-workload."""
    return _program().binary_path(cache_dir, source)


def ensure_built(cache_dir: str | None = None) -> str:
    """Path of the static workload binary for this source, compiled once per source hash."""
    return _program().ensure_built(cache_dir)


def layer_dir(cache_dir: str | None = None) -> str:
    """A directory holding exactly ``usr/local/bin/isoinspect-workload`` (mode 0755): the
    layer every target's image gets. Made once per source hash, next to the binary."""
    binary = ensure_built(cache_dir)
    layer = os.path.join(os.path.dirname(binary), "layer")
    if os.path.isfile(os.path.join(layer, LAYER_PATH)):
        return layer
    temp = temp_name(layer)
    try:
        folder = temp
        for part in ["", *LAYER_PATH.split("/")[:-1]]:   # temp, usr, usr/local, usr/local/bin
            folder = os.path.join(folder, part) if part else folder
            os.mkdir(folder)
            os.chmod(folder, 0o755)   # whatever the umask
        target = os.path.join(temp, LAYER_PATH)
        shutil.copyfile(binary, target)
        os.chmod(target, 0o755)
        try:
            os.rename(temp, layer)
        except OSError:
            if not os.path.isfile(os.path.join(layer, LAYER_PATH)):  # not a concurrent winner
                raise
    finally:
        remove_tree(temp)
    return layer


def main(argv: list[str] | None = None) -> int:
    return build_main(_program(), "isoinspect.benches.overhead.program", "bench overhead", argv)


if __name__ == "__main__":
    sys.exit(main())
