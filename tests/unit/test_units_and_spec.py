"""Flag parsing and spec validation: the errors users see for bad input."""

from __future__ import annotations

import pytest

from isoinspect.runtime import units
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.spec import ContainerSpec


@pytest.mark.parametrize("text, expected", [
    ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
    ("1048576", 1048576), ("64mb", 64 << 20), ("64MiB", 64 << 20), ("1.5g", 3 << 29),
    ("100b", 100), ("1p", 1 << 50), ("0", 0), ("9223372036854775807", (1 << 63) - 1),
    ("0.5k", 512),
])
def test_parse_bytes(text, expected):
    assert units.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["12x", "", "m", "-5m", "abc", "1..2m", "nan", "1e30", "inf",
                                  "1e3m", ".5m", "1.", "+5m", "9223372036854775808",
                                  "99999999999999999999", "8388608p", "\u0661\u0662"])
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
    for bad in ("a", "3-1", "0-", "99999", "0-99999999999999", "1,0-8192"):
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
    ({"pids_limit": "99999999999999999999"}, "out of range"),
    ({"pids_limit": "4194305"}, "at most 4194304"),
    ({"memory": "1e30"}, "--memory"),
    ({"memory": "99999999999999999999"}, "out of range"),
    ({"memory_swap": "1e30", "memory": "64m"}, "--memory-swap"),
    ({"memory_swap": "1g", "memory": "0"}, "--memory"),
    ({"name": "a" * 256}, "at most 255"),
    ({"name": "a" * 300}, "invalid container name"),
    ({"user": "4294967295"}, "--user"),
    ({"user": "0:99999999999999999999"}, "--user"),
    ({"cpuset_cpus": "0-99999999999"}, "beyond"),
])
def test_spec_rejects(kwargs, message):
    with pytest.raises(IsoinspectError) as info:
        ContainerSpec.from_flags("busybox", ["true"], **kwargs)
    assert message in str(info.value)


def test_memory_zero_is_no_limit_like_docker():
    spec = ContainerSpec.from_flags("busybox", ["true"], memory="0", memory_swap="0")
    assert (spec.memory, spec.memory_swap) == (None, None)
    assert spec.resources().memory is None


def test_the_longest_name_a_file_may_have_is_accepted():
    assert ContainerSpec("busybox", ["true"], name="a" * 255).name == "a" * 255


@pytest.mark.parametrize("kwargs", [{"memory": 1 << 63}, {"pids_limit": 1 << 70},
                                    {"cpu_quota_us": 10 ** 30}])
def test_library_numbers_out_of_range_are_one_line_errors(kwargs):
    with pytest.raises(IsoinspectError) as info:
        ContainerSpec("busybox", ["true"], **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value, expected", [(None, False), ("", False), ("0", False),
                                             ("false", False), ("OFF", False), ("no", False),
                                             (" 0 ", False), ("1", True), ("yes", True),
                                             ("true", True)])
def test_debug_switch(monkeypatch, value, expected):
    from isoinspect.runtime.errors import debug_enabled

    if value is None:
        monkeypatch.delenv("ISOINSPECT_DEBUG", raising=False)
    else:
        monkeypatch.setenv("ISOINSPECT_DEBUG", value)
    assert debug_enabled() is expected


def test_parse_int_bounds():
    assert units.parse_int("-1", "--pids-limit", -1) == -1
    for bad, message in (("99999999999999999999", "out of range"),
                         ("-99999999999999999999", "out of range"), ("7", "at most 5")):
        with pytest.raises(IsoinspectError, match=message):
            units.parse_int(bad, "--x", -1, 5)


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
