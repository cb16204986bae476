"""The init plan: one typed model for run, OCI bundles, the warm pool and exec."""

import pickle

import pytest

from isoinspect.runtime.init_plan import InitPlan, ProcessPlan
from isoinspect.runtime.oci import translate
from isoinspect.runtime.oci.setup import BundleRoot
from isoinspect.runtime.overlay_root import OverlayRoot


def _plan(**changes) -> InitPlan:
    values = dict(process=ProcessPlan(argv=["true"], env=[]),
                  root=OverlayRoot(lower=["/l"], upper="/u", work="/w"), rootfs="/r", err_fd=5)
    values.update(changes)
    return InitPlan(**values)


def test_a_misspelt_field_fails_in_the_parent_not_in_the_child():
    with pytest.raises(TypeError, match="unknown field"):
        _plan(sync_fdd=3)
    with pytest.raises(AttributeError):
        _plan().sync_fd = 3


def test_the_warm_pool_can_send_a_plan_to_its_zygote():
    plan = _plan(ready_fd=7, start_fd=8)
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_one_process_builder_for_an_oci_init_and_exec():
    section = {"args": ["sh"], "env": ["A=1"], "cwd": "/tmp", "user": {"uid": 5, "gid": 6},
               "capabilities": {"bounding": ["CAP_KILL"]},
               "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]}
    init = translate.process_plan(section, b"bpf")
    assert (init.argv, init.env, init.workdir, init.user) == (["sh"], ["A=1"], "/tmp", "5:6")
    assert init.caps.bounding == 1 << 5 and init.caps.effective == 0
    assert init.rlimits == [("nofile", 10, 20)]
    assert init.seccomp == b"bpf" and init.no_new_privileges is False
    # an exec'd process without its own flag gets the container's (runc does the same)
    assert translate.process_plan(section, None, container_nnp=True).no_new_privileges
    assert not translate.process_plan(dict(section, noNewPrivileges=False), None,
                                      container_nnp=True).no_new_privileges


def test_both_roots_offer_the_same_steps():
    for root in (OverlayRoot(lower=[], upper="", work=""),
                 BundleRoot(bundle="/b", mounts=[], propagation=0)):
        assert all(callable(getattr(root, step))
                   for step in ("before_pivot", "pivot", "after_pivot"))
