"""runtime/warm_pool.py without root: the command encoding and what the pool refuses.

The pool itself (zygotes in real namespaces, hand-off, refill, clean-up) is tested for real in
tests/integration/test_bench_warm_pool.py.
"""

from __future__ import annotations

import pytest

from isoinspect.runtime import warm_pool
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.spec import ContainerSpec


def test_command_round_trip_and_limits():
    argv = ["echo", "a b", "", "ü"]
    assert warm_pool.decode_command(warm_pool.encode_command(argv)) == argv
    for bad in ([], ["a\0b"], ["x" * (warm_pool.MAX_COMMAND_BYTES + 1)]):
        with pytest.raises(ValueError):
            warm_pool.encode_command(bad)


@pytest.mark.parametrize("spec, message", [
    (ContainerSpec("busybox", ["true"], network="bridge"), "--network none or host"),
    (ContainerSpec("busybox", ["true"], network="none", userns=True), "user namespaces"),
])
def test_the_pool_refuses_what_it_cannot_prepare(spec, message):
    with pytest.raises(IsoinspectError, match=message):
        warm_pool.WarmPool(object(), spec)


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        warm_pool.WarmPool(object(), ContainerSpec("busybox", ["true"], network="none"), size=0)
