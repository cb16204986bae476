"""--ulimit parsing and applying; masked/read-only path mounts against a recording seam."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from isoinspect.runtime.linux import paths_policy, rlimits
from isoinspect.runtime.linux import syscalls as sc

INF = resource.RLIM_INFINITY


@pytest.mark.parametrize("spec, expected", [
    ("nofile=1024:2048", ("nofile", 1024, 2048)),
    ("nofile=1024", ("nofile", 1024, 1024)),
    (" NPROC = 10 : 20 ", ("nproc", 10, 20)),
    ("core=0", ("core", 0, 0)),
    ("memlock=-1", ("memlock", INF, INF)),
    ("memlock=1024:unlimited", ("memlock", 1024, INF)),
    ("locks=5:6", ("locks", 5, 6)),
])
def test_parse_ulimit(spec, expected):
    assert rlimits.parse_ulimit(spec) == expected


@pytest.mark.parametrize("spec, fragment", [
    ("nofile", "expected name=soft[:hard]"),
    ("nofile=", "expected name=soft[:hard]"),
    ("=5", "expected name=soft[:hard]"),
    ("files=10", "invalid ulimit type"),
    ("nofile=2048:1024", "soft limit must be less than or equal to hard limit"),
    ("nofile=unlimited:1024", "soft limit must be less than or equal to hard limit"),
    ("nofile=-2", "invalid ulimit value"),
    ("nofile=ten", "invalid ulimit value"),
    ("nofile=1:2:3", "invalid ulimit value"),
])
def test_parse_ulimit_errors_are_one_line(spec, fragment):
    with pytest.raises(ValueError) as info:
        rlimits.parse_ulimit(spec)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_rlimit_numbers_agree_with_the_resource_module():
    for name, number in rlimits.RLIMIT_NUMBERS.items():
        known = getattr(resource, "RLIMIT_" + name.upper(), None)
        assert known in (None, number), name
    assert rlimits.RLIMIT_NUMBERS["locks"] == 10


def test_merge_overrides_by_name():
    merged = rlimits.merge_rlimits(rlimits.DEFAULT_RLIMITS,
                                   [("nofile", 10, 20), ("nproc", 5, 5)])
    assert merged == [("nofile", 10, 20), ("nproc", 5, 5)]


def fake_proc(tmp_path, nr_open: str | None, cap_eff: int | None) -> str:
    (tmp_path / "proc/sys/fs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc/self").mkdir(parents=True, exist_ok=True)
    if nr_open is not None:
        (tmp_path / "proc/sys/fs/nr_open").write_text(nr_open)
    if cap_eff is not None:
        (tmp_path / "proc/self/status").write_text(f"Name:\tx\nCapEff:\t{cap_eff:016x}\n")
    return str(tmp_path)


SYS_RESOURCE = 1 << 24


def test_default_rlimits_fit_nr_open(tmp_path):
    assert rlimits.DEFAULT_RLIMITS == (("nofile", 1048576, 1048576),)
    root = fake_proc(tmp_path, "65536\n", SYS_RESOURCE)
    assert rlimits.default_rlimits(root) == [("nofile", 65536, 65536)]
    root = fake_proc(tmp_path, "4194304\n", SYS_RESOURCE)
    assert rlimits.default_rlimits(root) == [("nofile", 1048576, 1048576)]
    (tmp_path / "proc/sys/fs/nr_open").unlink()
    assert rlimits.default_rlimits(root) == [("nofile", 1048576, 1048576)]


def test_default_rlimits_keep_the_hosts_hard_limit_without_cap_sys_resource(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    root = fake_proc(tmp_path, "4194304\n", 0xFFFFFFFF & ~SYS_RESOURCE)
    expected = min(1048576, hard) if hard != INF else 1048576
    assert rlimits.default_rlimits(root) == [("nofile", expected, expected)]


def test_default_rlimits_can_be_applied_here():
    result = _in_subprocess("""
        import resource
        from isoinspect.runtime.linux import rlimits
        limits = rlimits.default_rlimits()
        rlimits.apply_rlimits(limits)
        print(limits == [("nofile", *resource.getrlimit(resource.RLIMIT_NOFILE))])
    """)
    assert result.stdout.strip() == "True", result.stderr


def _in_subprocess(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True,
                          text=True)


def test_apply_rlimits_sets_them():
    result = _in_subprocess("""
        import resource
        from isoinspect.runtime.linux import rlimits
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        rlimits.apply_rlimits([("nofile", 64, 128), ("core", 0, 0)])
        print(resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_CORE))
    """)
    assert result.stdout.strip() == "(64, 128) (0, 0)", result.stderr


def test_apply_rlimits_error_names_the_limit():
    result = _in_subprocess("""
        from isoinspect.runtime.linux import rlimits
        rlimits.apply_rlimits([("nofile", 64, 128)])
        try:
            rlimits.apply_rlimits([("nofile", 64, 4096)] if __import__("os").geteuid()
                                  else [("nofile", 1 << 40, 1 << 40)])
        except OSError as exc:
            print(exc.errno, exc.strerror)
    """)
    assert result.stdout.startswith(f"{errno.EPERM} setrlimit nofile="), result.stderr


class RecordingSyscalls:
    """Stands in for the syscalls module: records mounts, fails like the kernel would."""

    MS_BIND, MS_REC, MS_RDONLY, MS_REMOUNT = sc.MS_BIND, sc.MS_REC, sc.MS_RDONLY, sc.MS_REMOUNT
    MS_NOSUID, MS_NODEV, MS_NOEXEC = sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC
    MS_NOATIME, MS_NODIRATIME, MS_RELATIME = sc.MS_NOATIME, sc.MS_NODIRATIME, sc.MS_RELATIME

    def __init__(self):
        self.calls = []

    def mount(self, source, target, fstype, flags=0, data=None):
        if not os.path.exists(target):
            raise OSError(errno.ENOENT, "mount", target)
        if flags & self.MS_BIND and not flags & self.MS_REMOUNT \
                and os.path.isdir(target) != os.path.isdir(source):
            raise OSError(errno.ENOTDIR, "mount", target)
        self.calls.append((source, target, fstype, flags))


@pytest.fixture
def recorder(monkeypatch):
    fake = RecordingSyscalls()
    monkeypatch.setattr(paths_policy, "_syscalls", lambda: fake)
    return fake


def test_default_path_lists_are_dockers():
    assert "/proc/kcore" in paths_policy.MASKED_PATHS and len(paths_policy.MASKED_PATHS) == 11
    assert paths_policy.READONLY_PATHS == ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                           "/proc/sysrq-trigger")


def test_mask_paths_under_a_prefix(tmp_path, recorder):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/kcore").write_text("secret")
    (tmp_path / "proc/acpi").mkdir()
    paths_policy.mask_paths(str(tmp_path) + "/", ["/proc/kcore", "/proc/acpi", "/proc/nothing"])
    assert recorder.calls == [
        ("/dev/null", f"{tmp_path}/proc/kcore", None, sc.MS_BIND),
        ("tmpfs", f"{tmp_path}/proc/acpi", "tmpfs", sc.MS_RDONLY),
    ]


def test_relative_paths_are_refused(recorder):
    with pytest.raises(ValueError):
        paths_policy.mask_paths("", ["proc/kcore"])
    with pytest.raises(ValueError):
        paths_policy.readonly_paths("", ["proc/sys"])


FLAG_PAIRS = ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV),
              (os.ST_NOEXEC, sc.MS_NOEXEC), (os.ST_RELATIME, sc.MS_RELATIME),
              (os.ST_NOATIME, sc.MS_NOATIME), (os.ST_NODIRATIME, sc.MS_NODIRATIME))


def test_readonly_remount_repeats_the_mounts_flags(recorder):
    paths_policy.readonly_paths("", ["/proc/sys", "/proc/absent"])
    bind, remount = recorder.calls
    assert bind == ("/proc/sys", "/proc/sys", None, sc.MS_BIND | sc.MS_REC)
    flags = remount[3]
    want = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
    assert flags & want == want
    st = os.statvfs("/proc/sys").f_flag
    for st_flag, ms_flag in FLAG_PAIRS:
        assert bool(flags & ms_flag) == bool(st & st_flag), hex(ms_flag)


@pytest.mark.parametrize("st_flag, ms_flag", FLAG_PAIRS)
def test_each_locked_flag_is_carried_over(recorder, monkeypatch, st_flag, ms_flag):
    class FakeStatvfs:
        f_flag = st_flag | os.ST_RDONLY | os.ST_SYNCHRONOUS

    monkeypatch.setattr(os, "statvfs", lambda path: FakeStatvfs)
    paths_policy.readonly_paths("", ["/proc/sys"])
    assert recorder.calls[1][3] == ms_flag | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC


def test_empty_lists_touch_nothing(recorder):
    paths_policy.mask_paths("/x", [])
    paths_policy.readonly_paths("/x", ())
    assert recorder.calls == []
