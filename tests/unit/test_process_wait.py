"""process.wait_gone on a real process: the pidfd wait (woken at the exit) keeps the /proc
poll's answers: a live process within its grace is not gone, a zombie is, and a pid whose
start time no longer matches names another process (gone)."""

from __future__ import annotations

import subprocess
import time

from isoinspect.runtime import process


def test_wait_gone_live_zombie_and_reused_pid():
    child = subprocess.Popen(["sleep", "30"])
    try:
        ticks = process.start_ticks(child.pid)
        assert ticks is not None
        began = time.monotonic()
        assert process.wait_gone(child.pid, ticks, timeout=0.2) is False
        assert time.monotonic() - began >= 0.15  # it waited for the grace
        assert process.wait_gone(child.pid, ticks + 1, timeout=5) is True  # not that process
        child.kill()
        began = time.monotonic()
        assert process.wait_gone(child.pid, ticks, timeout=30) is True  # a zombie: gone
        assert time.monotonic() - began < 20
        assert process.kill_and_wait(child.pid, ticks) is True
    finally:
        child.kill()
        child.wait()
