"""Isolation scorecard against a fake /proc."""

from __future__ import annotations

import os

from isoinspect.inspector.scorecard import decode_caps, format_card, scorecard

STATUS = """Name:\tsh
Uid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t00000000a80425fb
CapEff:\t00000000a80425fb
CapBnd:\t00000000a80425fb
CapAmb:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
"""

MOUNTINFO = """1 0 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/a
2 1 0:51 / /proc rw - proc proc rw
3 2 0:6 /null /proc/kcore ro - devtmpfs udev rw
4 2 0:6 /null /proc/keys ro - devtmpfs udev rw
"""


def _proc(tmp_path, pid, ns, status=STATUS, mountinfo=MOUNTINFO):
    base = tmp_path / "proc" / str(pid)
    (base / "ns").mkdir(parents=True)
    for name, target in ns.items():
        os.symlink(target, base / "ns" / name)
    (base / "status").write_text(status)
    (base / "mountinfo").write_text(mountinfo)
    (base / "cgroup").write_text("0::/docker/abc\n")
    return str(tmp_path / "proc")


def test_docker_default_caps_decode():
    caps = decode_caps(0xa80425fb)
    assert caps == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                    "SETPCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD",
                    "AUDIT_WRITE", "SETFCAP"]


def test_scorecard_compares_namespaces_with_the_reference(tmp_path):
    host = {n: f"{n}:[1{i}]" for i, n in enumerate(("mnt", "uts", "ipc", "net", "pid", "user",
                                                      "cgroup", "time"))}
    container = dict(host, mnt="mnt:[99]", uts="uts:[98]", ipc="ipc:[97]", net="net:[96]",
                     pid="pid:[95]", cgroup="cgroup:[94]")
    _proc(tmp_path, 1, host)
    proc = _proc(tmp_path, 42, container)
    card = scorecard(42, reference=1, proc=proc, cgroup_root=str(tmp_path / "nocgroup"))
    assert card["namespaces"]["net"] == "own" and card["namespaces"]["user"] == \
        "shared with host"
    assert card["seccomp"] == "filter" and card["no_new_privs"] is True
    assert card["capabilities"]["dangerous"] == [] and len(card["capabilities"]["effective"]) == 14
    assert card["rootfs"] == {"read_only": False, "fstype": "overlay",
                              "masked_paths": ["/proc/kcore", "/proc/keys"]}
    assert card["cgroup"] is None                      # no cgroupfs in the fake tree
    assert card["runs_as_root"] is True and card["shares_host_kernel"] == "yes"
    assert card["verdict"]["level"] == "confined" and card["verdict"]["missing"] == []
    assert "no_new_privs" in card["verdict"]["extra"]
    text = format_card(card)
    assert "ns net     own" in text and "confined like Docker's default" in text
    assert "runs as root without a user namespace" in text


def test_privileged_process_is_not_confined(tmp_path):
    ns = {n: f"{n}:[1]" for n in ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")}
    status = STATUS.replace("00000000a80425fb", "000001ffffffffff").replace(
        "Seccomp:\t2", "Seccomp:\t0").replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")
    proc = _proc(tmp_path, 7, ns, status=status)
    card = scorecard(7, reference=7, proc=proc, cgroup_root=str(tmp_path / "x"))
    assert card["verdict"]["level"] == "not confined"
    assert "shares the host's ipc, mnt, net, pid, uts namespaces" in card["verdict"]["text"]
    assert "SYS_ADMIN" in card["capabilities"]["dangerous"] and card["capabilities"]["all"]
    assert card["seccomp"] == "disabled"


def test_user_namespace_root_maps_to_an_unprivileged_host_uid(tmp_path):
    host = {n: f"{n}:[1]" for n in ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")}
    container = dict(host, mnt="mnt:[2]", uts="uts:[2]", ipc="ipc:[2]", net="net:[2]",
                     pid="pid:[2]", user="user:[2]")
    _proc(tmp_path, 1, host)
    proc = _proc(tmp_path, 9, container, status=STATUS.replace("Uid:\t0\t0\t0\t0",
                                                               "Uid:\t100000\t100000\t100000\t100000"))
    (tmp_path / "proc" / "9" / "uid_map").write_text("         0     100000      65536\n")
    card = scorecard(9, reference=1, proc=proc, cgroup_root=str(tmp_path / "x"))
    assert card["uid"] == {"inside": 0, "host": 100000} and card["runs_as_root"]
    assert card["user_namespace"] and "a user namespace" in card["verdict"]["extra"]
    assert "inside its user namespace (not root on the host)" in card["verdict"]["text"]
