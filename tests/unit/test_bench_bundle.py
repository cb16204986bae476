"""benches/bundle.py: the peers' OCI config is Docker's defaults, taken from the runtime's tables."""

from __future__ import annotations

import json

from isoinspect.benches import bundle
from isoinspect.runtime.linux import capabilities, paths_policy


def test_config_carries_the_runtime_defaults():
    config = bundle.config("/rootfs", bundle.Workload(("sh",)), cgroupns=False)
    linux = config["linux"]
    assert linux["maskedPaths"] == list(paths_policy.MASKED_PATHS)
    assert linux["readonlyPaths"] == list(paths_policy.READONLY_PATHS)
    assert config["process"]["capabilities"]["effective"] == [
        f"CAP_{name}" for name in capabilities.DEFAULT_CAPABILITIES]
    devices = linux["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}      # deny all first
    assert {"allow": True, "access": "rwm", "type": "c", "major": 1, "minor": 3} in devices
    assert {"allow": True, "access": "rwm", "type": "c", "major": 136} in devices
    assert [r["type"] for r in config["process"]["rlimits"]] == ["RLIMIT_NOFILE"]
    assert {m["destination"] for m in config["mounts"]} == {
        "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}
    from isoinspect.runtime.linux.seccomp_profile import default_profile
    assert linux["seccomp"] == default_profile()  # the policy isoinspect's containers get
    assert "cgroupsPath" not in linux


def test_binds_cgroup_path_and_limits():
    workload = bundle.Workload(("true",), limits=bundle.Limits(memory=1 << 26, pids_limit=9),
                               cgroups_path="/p/c", binds=(bundle.Bind("/host", "/data"),))
    config = bundle.config("/rootfs", workload, cgroupns=True)
    assert config["mounts"][-1] == {"destination": "/data", "type": "bind", "source": "/host",
                                    "options": ["rbind", "rw"]}
    assert config["linux"]["cgroupsPath"] == "/p/c"
    assert config["linux"]["resources"]["memory"] == {"limit": 1 << 26}
    assert config["linux"]["resources"]["pids"] == {"limit": 9}
    assert {"type": "cgroup"} in config["linux"]["namespaces"]


def test_write_makes_a_bundle_of_that_config(tmp_path):
    workload = bundle.Workload(("true",))
    path = bundle.write(str(tmp_path / "b"), "/rootfs", workload, cgroupns=False)
    with open(f"{path}/config.json") as handle:
        assert json.load(handle) == bundle.config("/rootfs", workload, cgroupns=False)
    rootfs = bundle.busybox_rootfs(str(tmp_path / "rootfs"))
    assert (tmp_path / "rootfs" / "bin" / "sh").is_symlink() and rootfs.endswith("rootfs")
