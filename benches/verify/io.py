"""I/O: a ``--device-write-bps`` / ``--device-read-bps`` limit on a loop device made for the test
holds (blkio.throttle.* on v1, io.max on v2).

The workload uses O_DIRECT (``dd oflag=direct`` / ``iflag=direct``): buffered writes reach the
device later from the kernel's writeback, which v1 does not throttle per cgroup. Bytes come from
the container's cgroup, for the loop device only (blkio.throttle.io_service_bytes / io.stat),
over a window that starts once the copy is under way.
"""

from __future__ import annotations

import time

from isoinspect.benches.bundle import Limits, device_numbers
from isoinspect.benches.targets.base import Target
from isoinspect.benches.targets.box import Box
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.result import io_tolerance, make_result, unsupported, within
from isoinspect.runtime.diagnostics import Status

RATE = 2 << 20
BLOCK = 64 << 10
FILE_MB = 32
# How long a slow start may take before the first bytes reach the device: a TCG guest on a busy
# host can take seconds to flush its first direct write (CI, twice: nothing in 15 s while other
# test suites ran beside it; 1 s on a quiet host); nothing moving by then is a FAIL.
FIRST_BYTES_GRACE_S = 15.0
SLOW_TARGET_GRACE_S = 60.0  # a VM (Target.slow)
WRITE = ("echo io-ready; sleep 1; "
         "dd if=/dev/zero of={path} bs=64k count={count} oflag=direct 2>&1; echo io-done; "
         "sleep 60")
READ = ("dd if=/dev/zero of={path} bs=1M count={mb} oflag=direct 2>&1 && echo io-ready && "
        "sleep 1 && dd if={path} of=/dev/null bs=64k iflag=direct 2>&1; echo io-done; sleep 60")


def device_bytes(box: Box, device: str) -> dict[str, int]:
    """{"read": bytes, "write": bytes} the container's cgroup moved to/from ``device``."""
    io = box.view.figures().io
    counts = io.devices.get("%d:%d" % device_numbers(device), {}) if io else {}
    return {"read": counts.get("rbytes", 0), "write": counts.get("wbytes", 0)}


def steady_rate(t: list[float], value: list[int], warmup: float) -> tuple[int, int, float]:
    """(bytes/s, bytes, seconds) from a cumulative byte series sampled from before the copy.

    The rate runs from ``warmup`` after the copy's first bytes to the last sample that still
    moved; a copy over within the warm-up (nothing throttled it) is measured whole, from the
    last sample before it began.
    """
    moved_at = [i for i in range(1, len(value)) if value[i] != value[i - 1]]
    if not moved_at:
        return 0, 0, 0.0
    begin, last = moved_at[0] - 1, moved_at[-1]
    first = next((i for i in range(begin, last) if t[i] >= t[begin] + warmup), begin)
    span = t[last] - t[first]
    moved = value[last] - value[first]
    return round(moved / span), moved, round(span, 3)


def check_io(rt: Target, ctx: Context, direction: str) -> list[dict]:
    check = f"io-{direction}-bps"
    why = rt.check_unsupported(check)
    if why:
        return [unsupported(rt.name, check, "io", why)]
    from isoinspect.benches.verify.loopdev import LoopUnavailable

    try:
        loop = ctx.loop()
    except LoopUnavailable as exc:
        return [unsupported(rt.name, check, "io", str(exc))]
    scratch = loop.directory(rt.name)
    path = f"{rt.scratch}/iotest-{direction}"
    if direction == "write":
        limits = Limits(device_write_bps=[(loop.device, RATE)])
        command = WRITE.format(path=path, count=(FILE_MB << 20) // BLOCK)
    else:
        limits = Limits(device_read_bps=[(loop.device, RATE)])
        command = READ.format(path=path, mb=FILE_MB)
    box = rt.start(["sh", "-c", command], limits, scratch=scratch)
    t, value = [], []
    try:
        box.wait_for("io-ready", timeout=60)
        t0 = time.monotonic()
        planned = 1 + ctx.warmup + ctx.window
        grace = SLOW_TARGET_GRACE_S if rt.slow else FIRST_BYTES_GRACE_S
        first_moved = None
        while True:
            now = time.monotonic() - t0
            t.append(round(now, 3))
            value.append(device_bytes(box, loop.device)[direction])
            if first_moved is None and value[-1] != value[0]:
                first_moved = now
            if first_moved is not None and now >= max(planned,
                                                      first_moved + ctx.warmup + ctx.window):
                break
            if first_moved is None and now >= planned + grace:
                break
            time.sleep(0.05)
        output = box.output()
    finally:
        box.stop()
    rate, moved, span = steady_rate(t, value, ctx.warmup)
    tolerance = io_tolerance(RATE, ctx.window)
    evidence = {"device": loop.device, "bytes": moved, "window_s": span,
                "series": {"t": t, "value": value, "unit": "bytes"},
                "dd": [line for line in output.splitlines() if "copied" in line][-1:],
                "finished_early": "io-done" in output}
    if moved == 0 and rt.name == "runsc":
        return [unsupported(rt.name, check, "io",
                            "no O_DIRECT I/O reached the device from the sandbox's cgroup: "
                            "gVisor's file I/O goes through its own gofer/page cache",
                            measured=rate, expected=RATE, unit="bytes/s", evidence=evidence)]
    ok = within(rate, RATE, tolerance)
    why = (f"{rate / (1 << 20):.2f} MiB/s to {loop.device} over {span:.1f}s" if ok else
           f"{rate / (1 << 20):.2f} MiB/s to {loop.device}, limit {RATE >> 20} MiB/s")
    if not moved:  # what a FAIL with nothing moved needs to be told apart: done, or never begun
        why += (f" (nothing reached it in {t[-1]:.0f}s; the copy "
                f"{'had finished' if evidence['finished_early'] else 'had not finished'})")
    return [make_result(rt.name, check, "io", Status.judge(ok), measured=rate,
                        expected=RATE, tolerance=tolerance, unit="bytes/s", why=why,
                        evidence=evidence)]
