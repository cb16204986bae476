"""Flag parsing and spec validation: the errors users see for bad input."""

from __future__ import annotations

import pytest

from isoinspect.runtime import units
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.spec import ContainerSpec


@pytest.mark.parametrize("text, expected", [
    ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
    ("1048576", 1048576), ("64mb", 64 << 20), ("64MiB", 64 << 20), ("1.5g", 3 << 29),
    ("100b", 100),
])
def test_parse_bytes(text, expected):
    assert units.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["12x", "", "m", "-5m", "abc", "1..2m", "nan"])
def test_parse_bytes_rejects(text):
    with pytest.raises(IsoinspectError) as info:
        units.parse_bytes(text)
    assert "--memory" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, quota", [("0.5", 50000), ("1.5", 150000), ("2", 200000),
                                         ("0.2", 20000)])
def test_parse_cpus(text, quota):
    assert units.parse_cpus(text) == (quota, 100000)


@pytest.mark.parametrize("text", ["-1", "0", "x", "0.001"])
def test_parse_cpus_rejects(text):
    with pytest.raises(IsoinspectError):
        units.parse_cpus(text)


def test_parse_cpuset_checks_shape_and_host_cpus():
    assert units.parse_cpuset("0") == "0"
    for bad in ("a", "3-1", "0-", "99999"):
        with pytest.raises(IsoinspectError):
            units.parse_cpuset(bad)


def test_parse_env_takes_bare_names_from_the_caller(monkeypatch):
    monkeypatch.setenv("ISO_TEST_VAR", "v1")
    assert units.parse_env(["A=1", "ISO_TEST_VAR", "UNSET_ISO_VAR"]) == ["A=1", "ISO_TEST_VAR=v1"]
    with pytest.raises(IsoinspectError):
        units.parse_env(["=x"])


def test_spec_from_flags_parses_everything():
    spec = ContainerSpec.from_flags("busybox", ["true"], memory="64m", memory_swap="128m",
                                    cpus="0.5", cpu_shares="512", cpuset_cpus="0",
                                    pids_limit="10", env=["A=1"], user="1000:1000")
    assert (spec.memory, spec.memory_swap, spec.cpu_quota_us, spec.cpu_shares,
            spec.cpuset_cpus, spec.pids_limit, spec.env, spec.user) == \
        (64 << 20, 128 << 20, 50000, 512, "0", 10, ["A=1"], "1000:1000")


@pytest.mark.parametrize("kwargs, message", [
    ({"memory": "1m"}, "minimum memory"),
    ({"memory_swap": "64m"}, "--memory"),
    ({"memory": "64m", "memory_swap": "32m"}, "larger than"),
    ({"cpu_shares": "1"}, "--cpu-shares"),
    ({"network": "bridge9"}, "--network"),
    ({"workdir": "relative"}, "absolute"),
    ({"pids_limit": "-5"}, "--pids-limit"),
])
def test_spec_rejects(kwargs, message):
    with pytest.raises(IsoinspectError) as info:
        ContainerSpec.from_flags("busybox", ["true"], **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("text, rule", [
    ("c 1:3 rwm", ("c", 1, 3, "rwm", True)),
    ("b 254:* r", ("b", 254, None, "r", True)),
    ("  a *:*   mw ", ("a", None, None, "mw", True)),
])
def test_device_cgroup_rule_parses_dockers_syntax(text, rule):
    spec = ContainerSpec.from_flags("busybox", ["true"], device_cgroup_rules=[text])
    assert spec.device_rules == [rule]
    assert ContainerSpec("busybox", ["true"]).device_rules == []


@pytest.mark.parametrize("text", ["c 1:3", "x 1:3 r", "c 1 r", "c 1:3 rx", "c 1:3 rr",
                                  "c -1:3 r", "c 1:99999999999 r", "c 1:3 r extra", ""])
def test_device_cgroup_rule_rejects(text):
    with pytest.raises(IsoinspectError, match="invalid --device-cgroup-rule"):
        ContainerSpec.from_flags("busybox", ["true"], device_cgroup_rules=[text])
