"""Start-up benchmarks for pytest-benchmark: ``pytest benches/ --benchmark-only``.

One benchmark per target (same targets as ``isoinspect bench startup``, which is the better
tool for comparisons: it interleaves targets and metrics and reports ratios with confidence
intervals). Here pytest-benchmark times each target's ``bench_operation`` with its own timer;
for ``isoinspect-lib`` that is the wall time of ``Runtime.start()`` alone (create, wait and
remove run untimed in setup/teardown), for every other target its ``lifecycle`` (create + run
``true`` + delete; for the warm pool: hand-off + wait + removal, the refill untimed). Targets
this host cannot run (crun on hybrid cgroups) are skipped with their reason.
"""

from __future__ import annotations

import pytest

from isoinspect.benches.targets import default_targets

TARGET_NAMES = [t.name for t in default_targets()]


@pytest.mark.parametrize("prepared_target", TARGET_NAMES, indirect=True)
def test_startup(benchmark, prepared_target, startup_rounds):
    target = prepared_target
    rounds, warmup = startup_rounds
    benchmark.group = "startup"
    benchmark.name = target.name
    benchmark.extra_info.update(target.describe())

    # setup/teardown run untimed around every round; the teardown also needs what the timed
    # operation returned (the started container, for isoinspect-lib).
    results = {}

    def setup():
        return (target.bench_setup(),), {}

    def operation(state):
        results[id(state)] = target.bench_operation(state)
        return results[id(state)]

    def teardown(state):
        target.bench_teardown(state, results.pop(id(state), None))

    benchmark.pedantic(operation, setup=setup, teardown=teardown, rounds=rounds,
                       warmup_rounds=warmup, iterations=1)
