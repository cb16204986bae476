"""doctor's favordynmods line: found in mount options or on the kernel command line, never set."""

from __future__ import annotations

import os

from isoinspect.runtime.cgroups import dynmods
from isoinspect.runtime.diagnostics import Status

HYBRID = ("32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
          "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
TUNED = ("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,favordynmods\n"
         "31 23 0:27 / /mnt/x rw - tmpfs tmpfs rw,favordynmods\n")


def test_sources_are_cgroup_mounts_and_the_boot_option():
    assert dynmods.favordynmods_sources(HYBRID, "ro quiet") == []
    assert dynmods.favordynmods_sources(TUNED, "") == ["/sys/fs/cgroup"]  # not the tmpfs
    assert dynmods.favordynmods_sources(HYBRID, "quiet cgroup_favordynmods=true") == \
        ["boot option cgroup_favordynmods=true"]
    assert dynmods.favordynmods_sources(HYBRID, "cgroup_favordynmods=0") == []


def test_check_says_off_with_the_trade_off_and_measures_an_attach(tmp_path):
    mountinfo, cmdline = tmp_path / "mountinfo", tmp_path / "cmdline"
    mountinfo.write_text(HYBRID)
    cmdline.write_text("quiet\n")
    procs = tmp_path / "cgroup.procs"  # a plain file stands in: the write itself is measured
    procs.write_text("")
    found = dynmods.check(str(mountinfo), str(cmdline), str(procs))
    assert found.status is Status.OK and found.detail.startswith("favordynmods off")
    assert "never applied by isoinspect" in found.impact and "fork" in found.impact
    if os.geteuid() == 0:
        assert found.data["first_ms"] >= 0 and "cgroup.procs write took" in found.detail
    mountinfo.write_text(TUNED)
    assert dynmods.check(str(mountinfo), str(cmdline), str(procs)).data["favordynmods"]


def test_own_cgroup_procs_prefers_cgroup2_then_pids(tmp_path):
    """doctor finds its own cgroup through the one layout reader (a hybrid fake tree)."""
    root = tmp_path / "cg"
    for directory in ("unified/a", "pids/b"):
        (root / directory).mkdir(parents=True)
        (root / directory / "cgroup.procs").write_text("")
    (root / "pids" / "cgroup.procs").write_text("")
    (root / "unified" / "cgroup.controllers").write_text("")
    own = tmp_path / "cgroup"
    own.write_text("9:name=systemd:/\n8:pids:/b\n0::/a\n")
    assert dynmods.own_cgroup_procs(str(own), str(root)) == \
        str(root / "unified" / "a" / "cgroup.procs")
    (root / "unified" / "a" / "cgroup.procs").unlink()
    assert dynmods.own_cgroup_procs(str(own), str(root)) == \
        str(root / "pids" / "b" / "cgroup.procs")
    assert dynmods.own_cgroup_procs(str(tmp_path / "missing"), str(root)) is None
