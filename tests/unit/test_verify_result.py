"""verify: tolerance math, result building, the table and the exit code (no root needed)."""

from __future__ import annotations

import pytest

from isoinspect.benches.record import validate_result
from isoinspect.benches.verify import result as r
from isoinspect.benches.verify.cpu import judge_quota
from isoinspect.benches.verify.io import steady_rate
from isoinspect.runtime.diagnostics import Status


def test_cfs_quota_tolerance_from_overrun_phase_and_sampling():
    # 2 workers x 1 ms per 100 ms period = 0.02; phase 0.5 x 0.1 / 2 = 0.025; 2 % of 0.5 = 0.01
    assert r.cfs_quota_tolerance(0.5, 2.0, 2) == pytest.approx(0.055)
    # a longer window shrinks the phase term only
    assert r.cfs_quota_tolerance(0.5, 4.0, 2) == pytest.approx(0.0425)
    assert r.cfs_quota_tolerance(1.5, 2.0, 2) < 0.5  # still tells 1.5 from 2.0 (no limit)


def test_shares_ratio_tolerance_narrows_with_the_window():
    wide, narrow = r.shares_ratio_tolerance(4.0, 1.5), r.shares_ratio_tolerance(4.0, 3.0)
    assert narrow < wide < 3.0  # 4:1 stays far from the 1:1 of no shares
    # light task gets 1/5 of 2 s = 0.4 s; 2 x 24 ms / 0.4 s = 0.12, + 0.04 -> 0.16 x 4
    assert r.shares_ratio_tolerance(4.0, 2.0) == pytest.approx(0.64)


def test_memory_batch_is_64_pages_per_cpu():
    assert r.memory_batch_bytes(2) == 64 * r.PAGE * 2


def test_io_tolerance_is_a_throttle_slice_plus_margin():
    assert r.io_tolerance(2 << 20, 2.0) == round((2 << 20) * 0.05 + (2 << 20) * 0.04)


def test_make_result_fits_the_record_contract():
    res = r.make_result("runc", "cpu-quota-0.5", "cpu", "PASS", measured=0.49, expected=0.5,
                        tolerance=0.05, unit="cpus", evidence={"a": 1})
    validate_result(res)
    assert res["kind"] == "verify" and res["why"] == "" and res["evidence"] == {"a": 1}
    with pytest.raises(ValueError):
        r.make_result("runc", "x", "cpu", "OK")
    assert r.make_result("runc", "x", "cpu", Status.UNSUPPORTED)["status"] == "UNSUPPORTED"
    assert [r.make_result("runc", "x", "cpu", Status.judge(ok))["status"]
            for ok in (True, False)] == ["PASS", "FAIL"]
    with pytest.raises(ValueError):
        r.make_result("runc", "x", "cpu", Status.DEGRADED)  # no verify verdict


def test_judge_quota():
    assert judge_quota(0.51, 0.5, 0.05, 10, 1.0)[0] is Status.OK
    assert judge_quota(0.51, 0.5, 0.05, 0, 1.0)[0] is Status.FAIL   # no throttling seen
    assert judge_quota(0.9, 0.5, 0.05, 0, 0.0)[0] is Status.FAIL    # over the limit
    assert judge_quota(0.3, 0.5, 0.05, 3, 0.5)[0] is Status.FAIL    # short, CPU sat idle
    status, why = judge_quota(0.9, 1.5, 0.15, 0, 0.1)               # short, host busy
    assert status is Status.ERROR and "inconclusive" in why


def test_steady_rate_skips_warmup_and_the_idle_tail():
    t = [i * 0.1 for i in range(30)]
    # idle 5 samples, then 1 MiB per 0.1 s for 15 samples, then done
    value = [0] * 5 + [(i + 1) << 20 for i in range(15)] + [15 << 20] * 10
    rate, moved, span = steady_rate(t, value, warmup=0.3)
    assert rate == pytest.approx(10 << 20, rel=0.01)
    assert span == pytest.approx(1.2)  # from 0.3 s after the first bytes (t=0.4) to 1.9
    assert steady_rate(t, [0] * 30, 0.3) == (0, 0, 0.0)


def test_steady_rate_of_a_copy_over_within_the_warmup():
    t = [0.0, 0.05, 0.1, 0.15]
    rate, moved, _ = steady_rate(t, [0, 0, 32 << 20, 32 << 20], warmup=0.3)
    assert moved == 32 << 20 and rate == round((32 << 20) / 0.05)


def _results():
    return [r.make_result("isoinspect", "pids-limit", "pids", "PASS", measured=16, expected=16,
                          tolerance=0, unit="pids"),
            r.make_result("control", "pids-limit", "pids", "FAIL", measured=103, expected=16,
                          tolerance=0, unit="pids", why="103 processes"),
            r.make_result("runsc", "memory-swap", "memory", "UNSUPPORTED", why="no swap")]


def test_table_marks_control_failures_as_expected():
    text = r.format_table(_results())
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["RUNTIME", "CHECK", "STATUS"]
    assert "FAIL (expected)" in lines[2] and "103" in lines[2]
    assert "UNSUPPORTED" in lines[3] and "no swap" in lines[3]
    assert "±0" in lines[1]


def test_table_formats_bytes_and_rates():
    res = r.make_result("runc", "io-write-bps", "io", "PASS", measured=2 << 20,
                        expected=2 << 20, tolerance=200000, unit="bytes/s")
    assert "2.00Mi" in r.format_table([res])


def test_exit_code():
    results = _results()
    assert r.exit_code(results) == 0
    results[1]["status"] = "PASS"  # a control check that cannot see a missing limit
    assert r.exit_code(results) == 1
    results[1]["status"] = "FAIL"
    results[0]["status"] = "ERROR"
    assert r.exit_code(results) == 1
