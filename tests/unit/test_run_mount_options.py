"""Parsing of -v, --mount, --env-file and -it, without starting anything."""

from __future__ import annotations

import pytest

from isoinspect.cli.options import parse_run_args
from isoinspect.runtime.bind_mounts import BindMount, parse_mount, parse_volume
from isoinspect.runtime.env_file import parse_env_lines
from isoinspect.runtime.errors import UsageError


def test_volume_forms():
    assert parse_volume("/a:/b") == BindMount(source="/a", destination="/b",
                                              create_source=True)
    mount = parse_volume("/a/:/b/c/:ro,rslave")
    assert (mount.source, mount.destination, mount.readonly, mount.propagation,
            mount.create_source) == ("/a", "/b/c", True, "rslave", True)
    assert parse_volume("/a:/b:rw").readonly is False


@pytest.mark.parametrize("value", ["vol:/b", "/a", "/a:b", "/a:/b:rx", "/a:/", "/a:/proc",
                                   "/a:/sys/fs", "/a:/proc/../proc/sys", "/a:/b:ro:z:x",
                                   "/a:/x/../../../sys/x", "/a:/./proc", "/a:/b/.."])
def test_volume_refusals(value):
    with pytest.raises(UsageError):
        parse_volume(value)


def test_proc_allow_list_as_runc():
    assert parse_volume("/a:/proc/cpuinfo").destination == "/proc/cpuinfo"


def test_mount_forms(tmp_path):
    mount = parse_mount(f"type=bind,source={tmp_path},target=/t,readonly,"
                        "bind-propagation=shared")
    assert (mount.source, mount.destination, mount.readonly, mount.propagation,
            mount.create_source) == (str(tmp_path), "/t", True, "shared", False)
    assert parse_mount(f"type=bind,src={tmp_path},dst=/t,ro=false").readonly is False


@pytest.mark.parametrize("value", ["type=volume,source=/x,target=/t", "type=bind,target=/t",
                                   "type=bind,source=/nonexistent-isoinspect,target=/t",
                                   "type=bind,source=/,target=/proc", "type=bind,source=/",
                                   "type=bind,source=/,target=/t,bind-propagation=odd",
                                   "type=bind,source=/,target=/t,colour=red"])
def test_mount_refusals(value):
    with pytest.raises(UsageError):
        parse_mount(value)


def test_bind_mount_round_trips_as_a_tuple():
    mount = parse_volume("/a:/b:ro")
    assert BindMount.from_tuple(mount.as_tuple()) == mount


def test_env_file_format(monkeypatch):
    monkeypatch.setenv("FROM_CALLER", "v")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    data = (b"\xef\xbb\xbf# comment\n   # indented comment\n\nA=1\n  B=2\nC='q' \nD=\n"
            b"FROM_CALLER\nNOT_SET_ANYWHERE\nE=a=b\r\n")
    assert parse_env_lines(data) == ["A=1", "B=2", "C='q' ", "D=", "FROM_CALLER=v", "E=a=b"]


@pytest.mark.parametrize("data, message", [(b"A B=1\n", "whitespaces"), (b"B = 2\n", "whitespaces"),
                                           (b"=1\n", "no variable name"),
                                           (b"A=\xff\n", "invalid utf8")])
def test_env_file_errors(data, message):
    with pytest.raises(UsageError, match=message):
        parse_env_lines(data)


def test_fast_parser_takes_combined_short_flags():
    options, image, command = parse_run_args(["-it", "--rm", "-v", "/a:/b", "busybox", "sh"])
    assert (options["interactive"], options["tty"], options["rm"], options["volume"]) == \
        (True, True, True, ["/a:/b"])
    assert (image, command) == ("busybox", ["sh"])
