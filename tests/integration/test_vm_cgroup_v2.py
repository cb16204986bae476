"""cgroup v2 for real: boot the QEMU guest (Debian kernel, pure cgroup v2, this project shared in)
once and run tests/guest inside it with pytest; each guest test is reported here as its own test.

One boot runs everything (about 5-7 s to the guest's init under TCG, ~40-60 s for the whole guest
run). Skipped when not root or without qemu-system-x86_64; a harness failure (kernel download,
boot, hang) fails with the guest console's tail. $ISOINSPECT_VM_SKIP=1 skips it explicitly.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from doctor_facts import lacks

GUEST_DIR = Path(__file__).resolve().parents[1] / "guest"
GUEST_FILES = sorted(GUEST_DIR.glob("test_*.py"))


def _why_skip() -> str | None:
    if os.environ.get("ISOINSPECT_VM_SKIP") == "1":
        return "ISOINSPECT_VM_SKIP=1"
    if os.environ.get("ISOINSPECT_VM_GUEST") == "1":
        return "already inside the guest"
    if os.geteuid() != 0:
        return "the guest harness shares host paths with passthrough permissions: needs root"
    return lacks("peers", "qemu")


_SKIP = _why_skip()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def _guest_tests() -> list[str]:
    """node ids (tests/guest/<file>::<name>) of the guest tests, read without importing them."""
    ids = []
    for path in GUEST_FILES:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids.append(f"tests/guest/{path.name}::{node.name}")
    return ids


@pytest.fixture(scope="module")
def guest_run():
    from isoinspect.benches.vm import GuestVM

    vm = GuestVM(disk_mb=64)
    result = vm.run(f"{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider -q -rA --tb=short "
                    "-o addopts='' tests/guest 2>&1", env={"PYTHONDONTWRITEBYTECODE": "1"},
                    timeout=600)
    outcomes = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (tests/guest/\S+?)(?: - |$)",
                         line)
        if match:
            outcomes.setdefault(match.group(2), match.group(1))
    print(f"guest run: {result.accel}, kernel {result.kernel}, ready after "
          f"{result.boot_seconds:.2f} s, total {result.total_seconds:.2f} s")
    return result, outcomes


def test_the_guest_run_completed(guest_run):
    result, outcomes = guest_run
    assert result.accel in ("kvm", "tcg")
    assert result.kernel.startswith("6.")
    assert outcomes, f"no test outcomes in the guest's output:\n{result.stdout[-4000:]}"
    assert result.returncode in (0, 1), result.stdout[-4000:]


@pytest.mark.parametrize("node", _guest_tests())
def test_in_guest(guest_run, node):
    result, outcomes = guest_run
    outcome = outcomes.get(node)
    if outcome == "SKIPPED":
        pytest.skip(f"skipped in the guest: {node}")
    if outcome != "PASSED":
        name = node.split("::")[1]
        section = _section(result.stdout, name)
        pytest.fail(f"{node}: {outcome or 'not run'} in the guest ({result.accel})\n{section}")


def _section(output: str, name: str) -> str:
    """The guest's failure report for one test (pytest's '____ name ____' section)."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("_") and f" {name} " in line:
            end = next((j for j in range(index + 1, len(lines))
                        if lines[j].startswith(("____", "====")) and j > index), len(lines))
            return "\n".join(lines[index:end])
    return output[-3000:]
