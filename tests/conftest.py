"""Shared fixtures: a private isoinspect root per test, the real CLI, leak checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import host_state  # tests/ is on sys.path: pytest puts a rootless conftest's folder there

VENV_BIN = os.path.dirname(sys.executable)
CLI = os.path.join(VENV_BIN, "isoinspect")


# tests/guest/ runs inside the QEMU guest (tests/integration/test_vm_cgroup_v2.py boots it and
# runs them there); on the host they are not collected rather than skipped.
IN_GUEST = os.environ.get("ISOINSPECT_VM_GUEST") == "1"
collect_ignore = [] if IN_GUEST else ["guest"]


CGROUP_BASE = "/sys/fs/cgroup"


def _our_parent_cgroups() -> set[str]:
    """Top-level cgroup folders named isoinspect* in every hierarchy (or the unified root)."""
    found = set()
    for base in [CGROUP_BASE] + [os.path.join(CGROUP_BASE, h) for h in os.listdir(CGROUP_BASE)]:
        if os.path.isdir(base):
            found.update(os.path.join(base, name) for name in os.listdir(base)
                         if name.startswith("isoinspect") and
                         os.path.isdir(os.path.join(base, name)))
    return found


def pytest_sessionstart(session):
    session.config._isoinspect_cgroups_before = _our_parent_cgroups()
    if not IN_GUEST:  # a throwaway VM is not the host the check protects
        host_state.session_start(session)


def pytest_sessionfinish(session, exitstatus):
    """Every test root (and bench/verify work dir) gets its own parent cgroup; fixtures other
    than ``iso`` do not all remove theirs, so the session removes the empty ones it made (a
    parent still holding a container is a real leak: it is left and reported)."""
    before = getattr(session.config, "_isoinspect_cgroups_before", None)
    if before is None:
        return
    held = []
    for parent in sorted(_our_parent_cgroups() - before):
        try:
            os.rmdir(parent)
        except OSError:
            held.append(parent)
    if held:
        sys.stderr.write(f"\nisoinspect: cgroups still holding children after the tests: "
                         f"{held[:5]} ({len(held)} in all)\n")
    # The host as found? links, routes, iptables, mounts, cgroup hierarchies: else the run fails.
    host_state.session_finish(session)


def wait_for(check, what: str, timeout: float = 10, interval: float = 0.01):
    """Poll ``check`` until it returns something true (returned); AssertionError naming
    ``what`` after ``timeout`` seconds. Tests wait this way, never with fixed sleeps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def pytest_report_header(config):
    return f"isoinspect CLI: {CLI}; euid {os.geteuid()}"


class Iso:
    """Runs the real ``isoinspect`` CLI against a private state root."""

    cli = CLI

    def __init__(self, root: str) -> None:
        self.root = root
        self.env = dict(os.environ, ISOINSPECT_ROOT=root)
        from isoinspect.runtime.roots import Roots

        self.roots = Roots(root)

    def __call__(self, *args: str, check: bool = False, timeout: float = 60,
                 input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"isoinspect {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([CLI, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kwargs)

    def _parents(self) -> list[str]:
        """Our parent cgroup in each hierarchy (v1 and hybrid) or in the unified one (v2)."""
        base = "/sys/fs/cgroup"
        if os.path.exists(os.path.join(base, "cgroup.controllers")):
            return [os.path.join(base, self.roots.cgroup_parent)]
        return [os.path.join(base, hierarchy, self.roots.cgroup_parent)
                for hierarchy in os.listdir(base)]

    def cgroup_dirs(self) -> list[str]:
        """Our cgroup directories that still exist in any hierarchy."""
        found = []
        for parent in self._parents():
            if os.path.isdir(parent):
                found += [os.path.join(parent, d) for d in os.listdir(parent)
                          if os.path.isdir(os.path.join(parent, d))]
        return found

    def host_mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as handle:
            return [line for line in handle if self.root in line]

    def remove_parents(self) -> None:
        for parent in self._parents():
            if os.path.isdir(parent):
                try:
                    os.rmdir(parent)
                except OSError:
                    pass


@pytest.fixture(scope="session")
def base_root(tmp_path_factory):
    """A root holding busybox:latest, made once and copied per test (layers are shared)."""
    root = str(tmp_path_factory.mktemp("isoroot-base"))
    subprocess.run([CLI, "--root", root, "images", "--ensure-base"], check=True,
                   capture_output=True)
    return root


@pytest.fixture
def iso(tmp_path, base_root):
    """A private root with the base image; asserts nothing leaked when the test ends."""
    if os.geteuid() != 0:
        pytest.skip("containers need root (this suite runs as root in CI)")
    root = str(tmp_path / "root")
    subprocess.run(["cp", "-a", base_root, root], check=True)
    helper = Iso(root)
    yield helper
    subprocess.run([CLI, "--root", root, "rm", "-f",
                    *[line for line in helper("ps", "-aq").stdout.split()]],
                   capture_output=True, env=helper.env)
    leftovers = helper.cgroup_dirs()
    mounts = helper.host_mounts()
    helper.remove_parents()
    assert not leftovers, f"cgroups left behind: {leftovers}"
    assert not mounts, f"mounts left behind: {mounts}"
