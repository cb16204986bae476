"""The one table of namespace kinds: flags, /proc names and OCI names in every direction."""

from __future__ import annotations

import os

import pytest

from isoinspect.runtime.linux import namespaces
from isoinspect.runtime.linux import syscalls as sc


def test_flags_match_the_kernel_headers():
    assert namespaces.FLAG_BY_PROC == {
        "mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000,
        "pid": 0x20000000, "user": 0x10000000, "cgroup": 0x02000000, "time": 0x00000080}
    assert namespaces.ALL_FLAGS == 0x7E020080
    assert sc.CLONE_NEWNET is namespaces.CLONE_NEWNET  # one definition, re-exported


def test_oci_and_proc_names_convert_both_ways():
    assert namespaces.PROC_BY_OCI["network"] == "net" and namespaces.PROC_BY_OCI["mount"] == "mnt"
    assert namespaces.OCI_BY_PROC["net"] == "network" and namespaces.OCI_BY_PROC["pid"] == "pid"
    for oci, proc in namespaces.PROC_BY_OCI.items():
        assert namespaces.OCI_BY_PROC[proc] == oci
        assert namespaces.FLAG_BY_OCI[oci] == namespaces.FLAG_BY_PROC[proc]


def test_decode_encode_round_trip():
    assert namespaces.decode(namespaces.encode(["pid", "net"])) == ["net", "pid"]
    assert namespaces.decode(namespaces.ALL_FLAGS) == list(namespaces.PROC_NAMES)
    assert namespaces.decode(0x11) == []
    with pytest.raises(KeyError):
        namespaces.encode(["network"])  # an OCI name is not a /proc name


def test_proc_names_are_the_kernels():
    present = set(os.listdir("/proc/self/ns"))
    # pid_for_children, time_for_children are not kinds of their own
    assert set(namespaces.PROC_NAMES) <= present
