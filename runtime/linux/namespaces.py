"""The one table of Linux namespace kinds: CLONE_NEW* flag, /proc name and OCI name.

Three vocabularies name the same eight kinds: the kernel's flag bits (clone, unshare, setns),
the short names of /proc/<pid>/ns and unshare(1) ("net", "mnt"), and the OCI runtime spec's
``linux.namespaces[].type`` ("network", "mount"). Every module converts through this table, in
either direction, instead of keeping its own dict. Pure data (no import at all): it is read on
the container start path and by the inspector, which must not load the runtime's ctypes code.
"""

from __future__ import annotations

# linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# (/proc name, OCI name, flag), in unshare(1)'s option order: the order names are listed in.
KINDS: tuple[tuple[str, str, int], ...] = (
    ("mnt", "mount", CLONE_NEWNS),
    ("uts", "uts", CLONE_NEWUTS),
    ("ipc", "ipc", CLONE_NEWIPC),
    ("net", "network", CLONE_NEWNET),
    ("pid", "pid", CLONE_NEWPID),
    ("user", "user", CLONE_NEWUSER),
    ("cgroup", "cgroup", CLONE_NEWCGROUP),
    ("time", "time", CLONE_NEWTIME),
)

PROC_NAMES: tuple[str, ...] = tuple(proc for proc, _, _ in KINDS)
OCI_NAMES: tuple[str, ...] = tuple(oci for _, oci, _ in KINDS)
FLAG_BY_PROC: dict[str, int] = {proc: flag for proc, _, flag in KINDS}
FLAG_BY_OCI: dict[str, int] = {oci: flag for _, oci, flag in KINDS}
PROC_BY_OCI: dict[str, str] = {oci: proc for proc, oci, _ in KINDS}
OCI_BY_PROC: dict[str, str] = {proc: oci for proc, oci, _ in KINDS}
ALL_FLAGS = 0
for _proc, _oci, _flag in KINDS:
    ALL_FLAGS |= _flag
del _proc, _oci, _flag


def decode(flags: int) -> list[str]:
    """/proc names of the kinds set in clone/unshare/setns flags: 0x40000000 -> ["net"]."""
    return [proc for proc, _, flag in KINDS if flags & flag]


def encode(proc_names) -> int:
    """Flags of /proc names: ["net", "pid"] -> 0x60000000 (KeyError for an unknown name)."""
    value = 0
    for name in proc_names:
        value |= FLAG_BY_PROC[name]
    return value
