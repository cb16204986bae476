"""The inspector on a kernel that has kprobes and fentry (the guest's Debian 6.1), unlike the CI
host: its capability probe must find them and choose the full mode, not tracepoints only."""

from __future__ import annotations

import os

import pytest

from isoinspect.inspector import capabilities


def test_inspector_uses_kprobes_and_fentry_where_the_kernel_has_them():
    headers = capabilities.check_kernel_headers()
    if not headers.ok:
        pytest.skip(f"BCC cannot compile for the guest kernel: {headers.detail} "
                    f"(install linux-headers-{os.uname().release} on the host)")
    checks, mode = capabilities.check_all(timeout=300)
    by_name = {check.name: check for check in checks}
    assert by_name["tracefs"].ok and by_name["BTF"].ok, by_name
    assert by_name["required tracepoints"].ok, by_name["required tracepoints"]
    for label in ("attach: tracepoint", "attach: kprobe", "attach: fentry/kfunc"):
        assert by_name[label].ok, by_name[label]
    assert mode == capabilities.MODE_FULL
