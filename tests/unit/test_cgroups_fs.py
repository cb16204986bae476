"""cgroups: the cgroupfs I/O choke point, Resources validation/conversions, the import rule."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from isoinspect.runtime.cgroups import fs
from isoinspect.runtime.cgroups.resources import (
    DEFAULT_DEVICE_RULES, Resources, cpus_to_quota, format_device_rule, parse_cpu_list,
    parse_size, shares_to_weight)


# ---- fs --------------------------------------------------------------------------------------

def test_read_missing_file_means_not_enabled(tmp_path):
    d = str(tmp_path)
    assert fs.read_value(d, "memory.max") is None
    assert fs.read_int(d, "memory.max") is None
    assert fs.read_keyed(d, "memory.events") is None
    assert fs.read_nested(d, "io.stat") is None
    assert fs.read_pids(d) is None
    assert fs.write_if_present(d, "memory.swap.max", 0) is False
    assert not (tmp_path / "memory.swap.max").exists()


def test_read_int_maps_max_and_v1_unlimited_to_minus_one(tmp_path):
    (tmp_path / "a").write_text("max\n")
    (tmp_path / "b").write_text("9223372036854771712\n")
    (tmp_path / "c").write_text("67108864\n")
    (tmp_path / "d").write_text("-1\n")
    assert [fs.read_int(str(tmp_path), n) for n in "abcd"] == [-1, -1, 67108864, -1]


def test_read_int_bad_value_names_the_file(tmp_path):
    (tmp_path / "pids.max").write_text("lots\n")
    with pytest.raises(ValueError, match=r"pids\.max.*'lots'"):
        fs.read_int(str(tmp_path), "pids.max")


def test_read_keyed_and_nested_from_recorded_lines(tmp_path):
    (tmp_path / "memory.events").write_text(
        "low 0\nhigh 0\nmax 37\noom 1\noom_kill 1\noom_group_kill 0\n")
    (tmp_path / "io.stat").write_text(
        "1:0 rbytes=262144 wbytes=1048576 rios=64 wios=256 dbytes=0 dios=0\n"
        "8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n")
    (tmp_path / "memory.pressure").write_text(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=3937\n"
        "full avg10=1.50 avg60=0.00 avg300=0.00 total=3937\n")
    d = str(tmp_path)
    assert fs.read_keyed(d, "memory.events") == {"low": 0, "high": 0, "max": 37, "oom": 1,
                                                 "oom_kill": 1, "oom_group_kill": 0}
    io = fs.read_nested(d, "io.stat")
    assert io["1:0"]["wbytes"] == 1048576 and io["8:16"]["wios"] == 4
    assert fs.sum_by_key(io.values(), ("rbytes", "rios")) == {"rbytes": 262145, "rios": 67}
    assert fs.read_nested(d, "memory.pressure")["full"] == {
        "avg10": 1.5, "avg60": 0.0, "avg300": 0.0, "total": 3937}


def test_write_value_replaces_content_and_errors_name_the_file(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    fs.write_value(str(tmp_path), "cpu.max", "50000 100000")
    assert (tmp_path / "cpu.max").read_text() == "50000 100000"
    with pytest.raises(OSError) as missing:
        fs.write_value(str(tmp_path), "memory.max", 1)
    assert missing.value.errno == errno.ENOENT
    assert str(tmp_path / "memory.max") in str(missing.value)
    assert "controller not enabled" in str(missing.value)
    (tmp_path / "sub").mkdir()
    with pytest.raises(OSError, match="cannot write '1' to .*sub"):
        fs.write_value(str(tmp_path), "sub", "1")


def test_make_dir_and_remove_dir(tmp_path):
    path = str(tmp_path / "a" / "b" / "c")
    assert fs.make_dir(path) is True
    assert fs.make_dir(path) is False
    assert fs.remove_dir(path) is True
    assert fs.remove_dir(path) is False  # already gone: no error
    # An ordinary directory that is not a (fake) cgroup keeps its files: rmdir fails.
    (tmp_path / "a" / "b" / "keep.txt").write_text("x")
    with pytest.raises(OSError, match="cannot remove"):
        fs.remove_dir(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b" / "keep.txt").exists()


def test_remove_dir_retries_ebusy_then_gives_up(tmp_path, monkeypatch):
    target = tmp_path / "cg"
    target.mkdir()
    real_rmdir = os.rmdir
    calls = []

    def busy_twice(path):
        calls.append(path)
        if len(calls) <= 2:
            raise OSError(errno.EBUSY, "busy")
        real_rmdir(path)

    monkeypatch.setattr(os, "rmdir", busy_twice)
    assert fs.remove_dir(str(target)) is True
    assert len(calls) == 3 and not target.exists()

    def always_busy(path):
        raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(os, "rmdir", always_busy)
    with pytest.raises(OSError, match="cannot remove .*cg2: Device or resource busy"):
        fs.remove_dir(str(tmp_path / "cg2"), timeout=0.05)


def test_wait_for_times_out_with_a_message():
    with pytest.raises(TimeoutError, match="waiting for the moon"):
        fs.wait_for(lambda: False, 0.01, "the moon")


# ---- Resources -------------------------------------------------------------------------------

def test_conversions():
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert cpus_to_quota(0.5) == 50000
    assert cpus_to_quota(1.5, 50000) == 75000
    assert parse_size("64m") == parse_size("64MiB") == parse_size("64MB") == 67108864
    assert parse_size("1g") == 1 << 30 and parse_size("512k") == 524288
    assert parse_size("1048576") == 1048576 and parse_size("-1") == -1
    assert parse_cpu_list("0-2,5") == [0, 1, 2, 5]


def test_cpus_keyword_sets_the_quota():
    res = Resources(cpus=0.5)
    assert (res.cpu_quota_us, res.cpu_period_us) == (50000, 100000)
    assert Resources(cpus=2, cpu_period_us=50000).cpu_quota_us == 100000


@pytest.mark.parametrize("kwargs, message", [
    ({"cpuset_cpus": "abc"}, "cpuset"),
    ({"cpuset_cpus": "3-1"}, "cpuset range"),
    ({"cpuset_mems": ""}, "cpuset"),
    ({"pids_limit": -2}, "pids_limit"),
    ({"pids_limit": "10"}, "pids_limit"),
    ({"cpu_shares": 1}, "cpu_shares"),
    ({"cpu_shares": 262145}, "cpu_shares"),
    ({"cpu_quota_us": 500}, "cpu_quota_us"),
    ({"cpu_period_us": 999}, "cpu_period_us"),
    ({"cpus": 0}, "cpus"),
    ({"cpus": 1, "cpu_quota_us": 1000}, "either cpus or cpu_quota_us"),
    ({"memory": 0}, "memory"),
    ({"memory": -5}, "memory"),
    ({"memory_swap": 1 << 20}, "needs a memory limit"),
    ({"memory": 2 << 20, "memory_swap": 1 << 20}, "must be >= memory"),
    ({"device_rules": [("x", 1, 3, "rwm", True)]}, "type"),
    ({"device_rules": [("c", 1, 3, "rwx", True)]}, "access"),
    ({"device_rules": [("c", -1, 3, "r", True)]}, "major/minor"),
    ({"device_rules": [("c", 1, 3, "r")]}, "is not"),
    ({"device_rules": [("c", 1, 3, "r", "yes")]}, "allow"),
    ({"blkio_read_bps": [(8, 0, -1)]}, "blkio_read_bps"),
    ({"blkio_write_iops": [(8, 0)]}, "blkio_write_iops"),
])
def test_bad_values_raise_one_line_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        Resources(**kwargs)
    assert "\n" not in str(info.value)


def test_validate_catches_later_assignment():
    res = Resources(pids_limit=5)
    res.pids_limit = -3
    with pytest.raises(ValueError, match="pids_limit"):
        res.validate()


def test_accepted_edge_values():
    Resources(memory=-1, pids_limit=-1, cpu_quota_us=-1, memory_swap=-1)
    Resources(pids_limit=0, cpuset_cpus="0", cpuset_mems="0-1,3",
              memory=64 << 20, memory_swap=64 << 20, cpu_shares=2)


def test_slots_no_dataclass_and_to_dict_json_round_trip():
    res = Resources(memory=64 << 20, memory_swap=128 << 20, cpus=0.5, pids_limit=10,
                    cpuset_cpus="0-1", device_rules=DEFAULT_DEVICE_RULES,
                    blkio_read_bps=[(8, 0, 1048576)])
    with pytest.raises(AttributeError):
        res.memroy = 1  # typo: __slots__ refuses it
    assert not hasattr(Resources, "__dataclass_fields__")
    data = json.loads(json.dumps(res.to_dict()))
    assert data["memory"] == 67108864 and data["cpu_quota_us"] == 50000
    assert data["device_rules"][0] == ["a", None, None, "rwm", False]
    assert Resources.from_dict(data) == res
    with pytest.raises(ValueError, match="unknown field"):
        Resources.from_dict({"memroy": 1})


def test_default_device_rules_are_dockers():
    lines = [(format_device_rule(r), r[4]) for r in DEFAULT_DEVICE_RULES]
    assert lines[0] == ("a *:* rwm", False)
    allowed = {line for line, allow in lines if allow}
    assert allowed == {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 5:0 rwm",
                       "c 5:1 rwm", "c 5:2 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 136:* rwm"}
    assert all(allow for _, allow in lines[1:])


# ---- the start-path import rule ---------------------------------------------------------------

def test_importing_the_drivers_pulls_in_nothing_heavy():
    code = ("import sys; before = set(sys.modules); "
            "import isoinspect.runtime.cgroups.v1.manager, isoinspect.runtime.cgroups.v2.manager; "
            "isoinspect.runtime.cgroups.v1.manager.controllers(); "  # as create/apply load them
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    foreign = [m for m in out if not m.startswith("isoinspect") and m != "__future__"]
    assert foreign == [], f"cgroup drivers import {foreign} on the container start path"
    assert "isoinspect.runtime.cgroups.v1.memory" in out and "isoinspect.runtime.cgroups.v2.io" in out
