"""Capability table, Docker's default set and --cap-add/--cap-drop parsing (no root needed)."""

from __future__ import annotations

import os
import re

import pytest

from isoinspect.runtime.linux import capabilities as caps

HEADER = "/usr/include/linux/capability.h"


def test_table_ends_and_well_known_numbers():
    assert len(caps.CAPABILITY_NAMES) == 41
    assert caps.cap_number("CAP_CHOWN") == 0
    assert caps.cap_number("CAP_SYS_ADMIN") == 21
    assert caps.cap_number("CAP_SETFCAP") == 31
    assert caps.cap_number("CAP_CHECKPOINT_RESTORE") == 40
    assert caps.LAST_KNOWN_CAP == 40
    assert caps.ALL_MASK == (1 << 41) - 1


@pytest.mark.skipif(not os.path.exists(HEADER), reason="kernel UAPI headers not installed")
def test_table_matches_the_kernel_header():
    with open(HEADER) as handle:
        defined = {name: int(number) for name, number in
                   re.findall(r"^#define CAP_(\w+)\s+(\d+)\s*$", handle.read(), re.M)}
    assert {name: caps.cap_number(name) for name in caps.CAPABILITY_NAMES} == defined


def test_name_number_round_trips():
    for number in range(caps.LAST_KNOWN_CAP + 1):
        name = caps.cap_name(number)
        assert name.startswith("CAP_")
        assert caps.cap_number(name) == number
        assert caps.cap_number(name[4:]) == number
        assert caps.cap_number(name.lower()) == number
    for name in caps.CAPABILITY_NAMES:
        assert caps.cap_name(caps.cap_number(name)) == "CAP_" + name


@pytest.mark.parametrize("bad", [-1, 41, 64])
def test_cap_name_rejects_unknown_numbers(bad):
    with pytest.raises(ValueError):
        caps.cap_name(bad)


def test_default_mask_is_dockers():
    assert caps.DEFAULT_MASK == 0xA80425FB
    assert len(caps.DEFAULT_CAPABILITIES) == 14
    assert caps.names_of(caps.DEFAULT_MASK) == sorted(
        ("CAP_" + n for n in caps.DEFAULT_CAPABILITIES), key=caps.cap_number)


def test_parse_without_changes_is_the_default():
    assert caps.parse_capabilities([], []) == caps.DEFAULT_MASK
    assert caps.parse_capabilities() == caps.DEFAULT_MASK


def test_parse_add_and_drop_accept_all_spellings():
    net_admin, net_raw = 1 << 12, 1 << 13
    for spelling in ("NET_ADMIN", "CAP_NET_ADMIN", "net_admin", " cap_net_admin "):
        assert caps.parse_capabilities([spelling], []) == caps.DEFAULT_MASK | net_admin
    assert caps.parse_capabilities([], ["CAP_NET_RAW"]) == caps.DEFAULT_MASK & ~net_raw


def test_parse_precedence_like_docker():
    net_raw, sys_admin = 1 << 13, 1 << 21
    # add wins over drop for the same capability
    assert caps.parse_capabilities(["NET_RAW"], ["NET_RAW"]) == caps.DEFAULT_MASK
    # ALL in add: everything but the dropped ones
    assert caps.parse_capabilities(["ALL"], ["SYS_ADMIN"]) == caps.ALL_MASK & ~sys_admin
    assert caps.parse_capabilities(["all"], []) == caps.ALL_MASK
    # ALL in drop: only what is added
    assert caps.parse_capabilities(["NET_RAW"], ["ALL"]) == net_raw
    assert caps.parse_capabilities([], ["CAP_ALL"]) == 0


@pytest.mark.parametrize("add, drop, bad", [(["NET_ADMINN"], [], "NET_ADMINN"),
                                            ([], ["CAP_FOO"], "CAP_FOO"),
                                            (["ALL"], ["BOGUS"], "BOGUS"),
                                            (["NET_RAW", ""], ["ALL"], "")])
def test_parse_unknown_name_is_a_one_line_value_error(add, drop, bad):
    with pytest.raises(ValueError) as info:
        caps.parse_capabilities(add, drop)
    message = str(info.value)
    assert "\n" not in message and "unknown capability" in message
    assert repr(bad) in message


def test_last_cap_reads_the_given_root(tmp_path):
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/cap_last_cap").write_text("38\n")
    assert caps.last_cap(str(tmp_path)) == 38


def test_last_cap_without_the_file_is_the_table_end(tmp_path):
    assert caps.last_cap(str(tmp_path)) == caps.LAST_KNOWN_CAP


def test_last_cap_of_this_kernel():
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        assert caps.last_cap() == int(handle.read())
