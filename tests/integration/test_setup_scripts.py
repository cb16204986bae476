"""scripts/setup.sh, scripts/start-dockerd.sh, scripts/docker-busybox.sh and .ci/run, for real.

`make test` has already run setup.sh and start-dockerd.sh once before pytest starts, so every
run here is a *second* run: it must be fast and change nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(REPO, ".venv")
STAMP = os.path.join(VENV, ".isoinspect-pyproject.sha256")
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="set-up scripts need root")


def run(argv, timeout=300, env=None, **kw):
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, **kw)


def pyproject_hash() -> str:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_setup_second_run_is_fast_and_does_nothing():
    run(["scripts/setup.sh"])  # whatever the state, after this one the next run is a no-op
    started = time.monotonic()
    result = run(["scripts/setup.sh"])
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("setup: ok in"), summary
    assert "packages present" in summary and "venv: up to date" in summary
    assert "apt-get" not in result.stderr and "pip install" not in result.stderr
    assert elapsed < 5, f"second setup run took {elapsed:.1f}s"


def test_setup_left_the_host_ready():
    release = os.uname().release
    assert os.path.isdir(f"/lib/modules/{release}/build/include")
    assert os.path.realpath(f"/lib/modules/{release}/build").startswith("/usr/src/linux-headers-")
    assert subprocess.run(["mountpoint", "-q", "/sys/kernel/tracing"]).returncode == 0
    with open(os.path.join(VENV, "pyvenv.cfg")) as handle:
        assert "include-system-site-packages = true" in handle.read()
    with open(STAMP) as handle:
        assert handle.read().strip() == pyproject_hash()
    cli = os.path.join(VENV, "bin", "isoinspect")
    assert os.access(cli, os.X_OK)
    result = subprocess.run([cli, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from isoinspect.benches.overhead.program import binary_path
    assert os.access(binary_path(), os.X_OK)   # bench overhead's static workload program


def test_setup_reinstalls_when_pyproject_changed():
    with open(STAMP, "w") as handle:
        handle.write("stale\n")
    try:
        result = run(["scripts/setup.sh"], env={"ISOINSPECT_SKIP_APT": "1"})
        assert result.returncode == 0, result.stderr
        assert "venv: installed" in result.stdout
    finally:
        if open(STAMP).read().strip() != pyproject_hash():  # leave a working stamp
            run(["scripts/setup.sh"])
    with open(STAMP) as handle:
        assert handle.read().strip() == pyproject_hash()


def test_start_dockerd_is_idempotent_and_docker_runs_busybox():
    first = run(["scripts/start-dockerd.sh"], timeout=120)
    assert first.returncode == 0, first.stderr
    second = run(["scripts/start-dockerd.sh"], timeout=30)
    assert second.returncode == 0 and "already answers" in second.stdout
    image = run(["scripts/docker-busybox.sh"], timeout=120)
    assert image.returncode == 0, image.stderr
    again = run(["scripts/docker-busybox.sh"], timeout=60)
    assert "up to date" in again.stdout
    result = run([DOCKER, "run", "--rm", "--network", "none", "isoinspect-busybox:latest",
                  "/bin/echo", "hello from docker"], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from docker"


def test_ci_run_fails_when_no_tests_are_collected(tmp_path):
    """pytest exits 5 on an empty collection; .ci/run must fail, not pass silently."""
    result = run([os.path.join(REPO, ".ci", "run")], timeout=300,
                 env={"CI": "true", "ISOINSPECT_TESTS": str(tmp_path)})
    assert result.returncode != 0, result.stdout[-2000:]
    assert "no tests ran" in result.stdout or "Error 5" in result.stderr, \
        result.stdout[-1000:] + result.stderr[-1000:]
