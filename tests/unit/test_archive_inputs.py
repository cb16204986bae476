"""Inputs of image archives and registries: digests, member names, scratch-entry owners."""

from __future__ import annotations

import pytest

from isoinspect.runtime import digests
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.images import _entry_pid, start_settings
from isoinspect.runtime.safe_extract import UnsafeArchive, member_parts

GOOD = "sha256:" + "0123456789abcdef" * 4


def test_only_sha256_with_64_lowercase_hex_is_a_digest():
    assert digests.check(GOOD) == GOOD and digests.hex_of(GOOD) == GOOD[7:]
    for bad in ("sha256:" + "../" * 21 + "x", GOOD.upper(), GOOD[:-1], GOOD + "0",
                "sha512:" + "0" * 64, "sha256:" + "g" * 64, "sha256:" + "0" * 63 + "\n",
                None, 5, ["sha256:" + "0" * 64]):
        with pytest.raises(IsoinspectError, match="invalid diffID"):
            digests.check(bad, "diffID")


def test_config_diff_ids_and_settings_are_checked():
    assert digests.config_diff_ids({"rootfs": {"diff_ids": [GOOD]}}) == [GOOD]
    for config in ([], {"rootfs": []}, {"rootfs": {"diff_ids": GOOD}},
                   {"rootfs": {"diff_ids": ["sha256:../../etc"]}}):
        with pytest.raises(IsoinspectError):
            digests.config_diff_ids(config)
    for settings in ({"Env": "PATH=/bin"}, {"Cmd": [1]}, {"WorkingDir": ["/"]}, ["x"]):
        with pytest.raises(IsoinspectError):
            start_settings({"rootfs": {"diff_ids": [GOOD]}, "config": settings})
    info = start_settings({"rootfs": {"diff_ids": [GOOD]}, "config": {"Cmd": None}})
    assert info["layer_ids"] == [GOOD[7:]] and info["cmd"] == []


def test_member_names_stay_inside_the_target():
    assert member_parts("./a/b/", "m") == ["a", "b"]
    assert member_parts("/etc/passwd", "m") == ["etc", "passwd"]
    assert member_parts("a/../b", "m") == ["b"]
    assert member_parts("./", "m") == [] and member_parts("", "m") == []
    for bad in ("..", "../x", "a/../../x", "/../x/..", "a\0b"):
        with pytest.raises(UnsafeArchive):
            member_parts(bad, bad)


def test_scratch_entries_name_their_creator():
    assert _entry_pid("tmp", "pull-123-89abcdef") == 123
    assert _entry_pid("tmp", "load-77-12345678") == 77
    assert _entry_pid("layers", ".staging-42-0a0b0c0d") == 42
    assert _entry_pid("layers", ".staging-deleted-" + "1" * 64) == 0   # trash: nobody's
    assert _entry_pid("layers", "1" * 64) is None                       # a stored layer
    assert _entry_pid("images", f".staging-{'2' * 64}-99") == 99
    assert _entry_pid("images", f".staging-deleted-{'3' * 64}-98") == 98
    assert _entry_pid("images", "4" * 64) is None
    assert _entry_pid("tags", "busybox:latest.555.0a1b2c3d.tmp") == 555
    assert _entry_pid("tags", "busybox:latest") is None
