"""tests/guest/ runs only inside the QEMU guest (pure cgroup v2, the guest's own kernel).

tests/integration/test_vm_cgroup_v2.py boots the guest and runs these there; the host's
tests/conftest.py leaves this folder out of collection. Should they be collected anywhere else
(run by hand, or without root in the guest), every test is skipped with the reason.
"""

from __future__ import annotations

import os

import pytest


def why_not_here() -> str | None:
    if os.environ.get("ISOINSPECT_VM_GUEST") != "1":
        return "runs only inside the QEMU guest (see tests/integration/test_vm_cgroup_v2.py)"
    if os.geteuid() != 0:
        return "needs root in the guest"
    return None


def pytest_collection_modifyitems(config, items):
    reason = why_not_here()
    if reason:
        for item in items:
            if "tests/guest/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))
