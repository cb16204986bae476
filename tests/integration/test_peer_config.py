"""bench and verify run each peer under the same configuration: what they hand the peer differs
only by the command and the limits verify asks for (benches/bundle.py, benches/targets/*).

The configurations are captured where they leave us (the config.json written for runc, the
ContainerSpec handed to Runtime.create, the docker command line) while the peers really run.
"""

from __future__ import annotations

import copy
import json
import os

import pytest

from isoinspect.benches import bundle
from isoinspect.benches.bundle import Limits

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (CI runs as root)")

LIMITS = Limits(memory=64 << 20, cpus=0.5, pids_limit=64)


def _without_run_specifics(config: dict) -> dict:
    """The config minus the command, the container's own cgroup name and the limits."""
    config = copy.deepcopy(config)
    del config["process"]["args"]
    linux = config["linux"]
    linux["cgroupsPath"] = os.path.dirname(linux["cgroupsPath"])
    linux["resources"] = {"devices": linux["resources"]["devices"]}
    return config


def test_runc_bench_and_verify_write_the_same_config_but_the_limits(tmp_path, monkeypatch):
    from isoinspect.benches.targets.runc import RuncTarget

    written: list[dict] = []
    real_write = bundle.write

    def capture(directory, rootfs, workload, cgroupns=None):
        path = real_write(directory, rootfs, workload, cgroupns)
        with open(os.path.join(path, "config.json")) as handle:
            written.append(json.load(handle))
        return path

    monkeypatch.setattr(bundle, "write", capture)
    target = RuncTarget()
    assert target.available() == (True, "")
    target.prepare(str(tmp_path))
    try:
        assert target.measure("lifecycle").wall > 0           # bench: runc run true
        box = target.start(["sleep", "30"], LIMITS)            # verify: runc run --detach
        try:
            assert box.view.figures().to_dict()  # the limited cgroup exists and is readable
        finally:
            box.stop()
        assert box.left_behind() == []
    finally:
        target.cleanup()
    bench, verify = written
    assert bench["process"]["args"] == ["/bin/true"]
    assert verify["process"]["args"] == ["sleep", "30"]
    assert set(bench["linux"]["resources"]) == {"devices"}
    assert verify["linux"]["resources"]["memory"] == {"limit": 64 << 20}
    assert verify["linux"]["resources"]["pids"] == {"limit": 64}
    assert verify["linux"]["resources"]["cpu"] == {"quota": 50000, "period": 100000}
    assert _without_run_specifics(bench) == _without_run_specifics(verify)


def test_isoinspect_bench_and_verify_create_the_same_spec_but_the_limits(tmp_path):
    from isoinspect.benches.targets.isoinspect import IsoinspectLibrary

    target = IsoinspectLibrary(name="isoinspect")
    target.prepare(str(tmp_path))
    specs: list[dict] = []
    create = target.runtime.create

    def capture(spec):
        specs.append(spec.to_dict())
        return create(spec)

    target.runtime.create = capture
    try:
        assert target.measure("lifecycle").wall > 0
        box = target.start(["sleep", "30"], LIMITS)
        box.stop()
    finally:
        target.cleanup()
    bench, verify = specs
    assert (bench["memory"], verify["memory"]) == (None, 64 << 20)
    assert (bench["pids_limit"], verify["pids_limit"]) == (None, 64)
    assert (bench["remove"], verify["remove"]) == (True, False)  # verify removes it itself
    differ = {"command", "name", "memory", "cpu_quota_us", "pids_limit", "remove"}
    assert {k: v for k, v in bench.items() if k not in differ} == \
        {k: v for k, v in verify.items() if k not in differ}


def test_docker_bench_and_verify_command_lines_differ_by_the_limits_only():
    from isoinspect.benches.targets.docker import DockerTarget

    target = DockerTarget()
    target.image = "isoinspect-busybox:latest"
    bench = target.argv("true")
    verify = target.run_argv(["true"], "c1", LIMITS, detach=True)
    assert bench == [target.docker, "run", "--rm", "--network", "none", target.image, "true"]
    assert verify == [target.docker, "run", "-d", "--name", "c1", "--network", "none",
                      "--memory", str(64 << 20), "--cpus", "0.5", "--pids-limit", "64",
                      target.image, "true"]
