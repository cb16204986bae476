"""Fixtures for ``pytest benches/ --benchmark-only`` (pytest-benchmark).

The normal test run never sees this directory (pyproject's testpaths is ``tests``).
``--startup-rounds N`` / ``--startup-warmup N`` (or ISOINSPECT_BENCH_ROUNDS / _WARMUP) set the
rounds of each start-up benchmark.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("isoinspect start-up benchmarks")
    group.addoption("--startup-rounds", type=int,
                    default=int(os.environ.get("ISOINSPECT_BENCH_ROUNDS", "30")),
                    help="measured starts per target (default 30)")
    group.addoption("--startup-warmup", type=int,
                    default=int(os.environ.get("ISOINSPECT_BENCH_WARMUP", "3")),
                    help="warm-up starts per target (default 3)")


@pytest.fixture(scope="session")
def bench_workdir():
    """One work directory for every target's image (the base image is made once)."""
    path = tempfile.mkdtemp(prefix="isoinspect-pytest-bench-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def startup_rounds(request) -> tuple[int, int]:
    return request.config.getoption("--startup-rounds"), request.config.getoption(
        "--startup-warmup")


@pytest.fixture
def prepared_target(request, bench_workdir):
    """The target named by the test's parameter, prepared; cleaned up afterwards."""
    from isoinspect.benches.targets import select

    (target,) = select([request.param])
    ok, reason = target.available()
    if not ok:
        pytest.skip(f"{target.name}: {reason}")
    try:
        target.prepare(bench_workdir)
        yield target
    finally:
        target.cleanup()
