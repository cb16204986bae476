"""UsageError and the one report_error every entry point uses."""

from __future__ import annotations

import pytest

from isoinspect.runtime import units
from isoinspect.runtime.errors import (IsoinspectError, UsageError, report_error,
                                       report_unexpected)


def test_usage_error_is_a_user_facing_error_not_a_value_error():
    with pytest.raises(UsageError) as info:
        units.parse_bytes("lots")
    assert isinstance(info.value, IsoinspectError) and not isinstance(info.value, ValueError)
    assert info.value.exit_code == 125  # Docker's code for a refused `run` flag
    assert str(info.value) == "invalid value 'lots' for --memory: expected a size like 64m, " \
                              "512k or 1g"
    with pytest.raises(UsageError):
        units.size_in_bytes("1e30")


def test_report_error_prints_one_line_and_chooses_the_code(capsys):
    assert report_error(UsageError("invalid signal: X")) == 125
    assert report_error(IsoinspectError("no run record", exit_code=2), "isoinspect bench") == 2
    assert report_error("interrupted", exit_code=130) == 130
    assert report_error(OSError("plain")) == 1
    assert capsys.readouterr().err == ("isoinspect: invalid signal: X\n"
                                       "isoinspect bench: no run record\n"
                                       "isoinspect: interrupted\n"
                                       "isoinspect: plain\n")


def test_report_unexpected_is_one_line_unless_debugging(capsys, monkeypatch):
    monkeypatch.delenv("ISOINSPECT_DEBUG", raising=False)
    assert report_unexpected(KeyError("x")) == 125
    assert capsys.readouterr().err == ("isoinspect: internal error: KeyError: 'x' "
                                       "(set ISOINSPECT_DEBUG=1 for details)\n")
    assert report_unexpected(OSError(28, "No space left on device", "/var/x")) == 125
    assert capsys.readouterr().err == "isoinspect: no space left on device: /var/x\n"
    monkeypatch.setenv("ISOINSPECT_DEBUG", "1")
    with pytest.raises(KeyError):
        report_unexpected(KeyError("x"))
