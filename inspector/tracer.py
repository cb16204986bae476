"""Load the probes (one BCC program), poll the perf buffer, decode and attribute events.

    with Tracer() as tracer:                 # raises TracerUnavailable with a one-line reason
        tracer.watch_pid(pid)                # pid tree, or tracer.watch_cgroup(cgroup_id)
        ...
        tracer.drain()
        tracer.events, tracer.lost, tracer.cost()

Tracing works on tracepoints alone (this project's hosts have no kprobes and refuse fentry):
that is the normal mode. Without BCC or root the caller falls back to the cgroup readers.
The probes' own cost comes from the kernel's BPF run-time stats, switched on only while a Tracer
with ``measure_cost`` is open: through a BPF_ENABLE_STATS fd (refcounted by the kernel, so
concurrent tracers cannot switch it off under each other), else kernel.bpf_stats_enabled set and
restored to its old value on close.
"""

from __future__ import annotations

import ctypes
import os
import time

from . import capabilities
from .attribution import Attributor
from .events import decode
from .probes import ALL, program, tracepoints

BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"


class TracerUnavailable(RuntimeError):
    """eBPF tracing cannot run here; str() is the one-line reason."""


def import_bcc():
    """Debian's python3-bpfcc from the system site-packages (the fast launcher starts Python with
    -I -S, so site is loaded on demand)."""
    try:
        import bcc
    except ModuleNotFoundError:
        import site

        site.main()
        try:
            import bcc
        except ModuleNotFoundError:
            raise TracerUnavailable("BCC (python3-bpfcc) is not importable: apt-get install "
                                    "python3-bpfcc and use a venv with --system-site-packages; "
                                    "cgroup readers only") from None
    if not hasattr(bcc, "BPF"):
        raise TracerUnavailable(f"the 'bcc' module at {bcc.__file__} is not BCC (the PyPI "
                                "package 'bcc' is unrelated): cgroup readers only")
    return bcc


def preflight(euid: int | None = None) -> tuple[str, list[str]]:
    """Cheap start-up checks (no compile): tracefs path and missing tracepoints.

    Raises TracerUnavailable when tracing cannot work at all (not root, no tracefs).
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise TracerUnavailable("eBPF tracing needs root: cgroup readers only")
    tracefs = capabilities.find_tracefs()
    if not tracefs:
        raise TracerUnavailable("tracefs is not mounted (mount -t tracefs tracefs "
                                "/sys/kernel/tracing): cgroup readers only")
    missing = capabilities.missing_tracepoints(tracefs, tuple(tracepoints()))
    return tracefs, missing


BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


def enable_stats_fd() -> int | None:
    """bpf(BPF_ENABLE_STATS): run-time stats stay on while the returned fd is open. The kernel
    counts the holders, so concurrent tracers never switch the stats off under each other."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(ctypes.c_uint32(BPF_STATS_RUN_TIME).value
                                       .to_bytes(4, "little") + bytes(4), 8)
    fd = libc.syscall(BPF_SYSCALL, BPF_ENABLE_STATS, attr, ctypes.c_uint(8))
    return fd if fd >= 0 else None


class BpfStats:
    """Turn BPF run-time stats on while a tracer is open, and back off after.

    Preferred: a BPF_ENABLE_STATS fd (kernel >= 5.8; the sysctl is not touched). Fallback:
    kernel.bpf_stats_enabled set to 1 and restored to its old value on close.
    """

    def __init__(self, path: str = BPF_STATS, use_fd: bool = True) -> None:
        self.path = path
        self.use_fd = use_fd
        self.previous: str | None = None
        self.fd: int | None = None
        self.method: str | None = None

    def enable(self) -> bool:
        if self.use_fd:
            self.fd = enable_stats_fd()
            if self.fd is not None:
                self.method = "fd"
                return True
        try:
            with open(self.path) as handle:
                self.previous = handle.read().strip()
            if self.previous != "1":
                with open(self.path, "w") as handle:
                    handle.write("1")
            self.method = "sysctl"
            return True
        except OSError:
            self.previous = None
            return False

    def restore(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.previous is not None and self.previous != "1":
            try:
                with open(self.path, "w") as handle:
                    handle.write(self.previous)
            except OSError:
                pass
        self.previous = None


def prog_stats(fd: int, fdinfo_dir: str = "/proc/self/fdinfo") -> dict[str, int]:
    """run_time_ns and run_cnt of a loaded BPF program (0 while bpf_stats are off)."""
    out = {"run_time_ns": 0, "run_cnt": 0}
    try:
        with open(f"{fdinfo_dir}/{fd}") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in out:
                    out[key] = int(value.strip())
    except (OSError, ValueError):
        pass
    return out


def _load(bcc, text: str):
    """Compile and attach; libbcc's compiler chatter (header warnings) is kept off the terminal
    and only its last lines are shown when loading fails."""
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as err:
        os.dup2(err.fileno(), 2)
        try:
            return bcc.BPF(text=text.encode())
        except Exception as exc:
            os.dup2(saved, 2)
            err.seek(0)
            lines = [line for line in err.read().decode(errors="replace").splitlines()
                     if "error" in line]
            detail = f"{exc}" + (f": {lines[-1].strip()}" if lines else "")
            raise TracerUnavailable(f"the eBPF probes could not be loaded ({detail}): "
                                    "cgroup readers only") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def summarize_log2(counts: dict[int, int], total_us: int) -> dict:
    """BCC log2 histogram {slot: count} -> count, mean, p50/p99 (bucket upper bounds), max.

    Slot s holds values in [2**(s-1), 2**s - 1] (slot 0: 0, slot 1: 1).
    """
    n = sum(counts.values())
    if not n:
        return {"count": 0}

    def upper(slot: int) -> int:
        return 0 if slot == 0 else (1 << slot) - 1

    def quantile(q: float) -> int:
        seen = 0
        for slot in sorted(counts):
            seen += counts[slot]
            if seen >= q * n:
                return upper(slot)
        return upper(max(counts))

    return {"count": n, "mean_us": round(total_us / n, 1), "p50_us_le": quantile(0.5),
            "p99_us_le": quantile(0.99), "max_us_le": upper(max(counts)),
            "buckets": [{"le_us": upper(slot), "count": counts[slot]}
                        for slot in sorted(counts)]}


class Tracer:
    #: tag events with their container here (off in a tracer process: its client does it)
    attribute = True

    def __init__(self, probes=ALL, filter_enabled: bool = True, page_cnt: int = 256,
                 on_event=None, keep: bool = True, attributor: Attributor | None = None,
                 measure_cost: bool = True, all_clones: bool = False,
                 all_prctl: bool = False, buffer: str = "ring", attribute: bool = True) -> None:
        tracefs, missing = preflight()
        bcc = import_bcc()
        self.missing = missing
        missing_set = set(missing)
        self.text = program(probes, filter_enabled=filter_enabled, all_clones=all_clones,
                            all_prctl=all_prctl, buffer=buffer,
                            available=lambda c, e: f"{c}:{e}" not in missing_set)
        self.filter_enabled = filter_enabled
        self.on_event = on_event
        self.keep = keep
        self.attribute = attribute
        self.events: list[dict] = []
        self.lost = 0
        self.attributor = attributor or Attributor()
        self.stats = BpfStats()
        self._stats_on = measure_cost and self.stats.enable()
        started = time.monotonic()
        try:
            self.bpf = _load(bcc, self.text)
        except TracerUnavailable as first:
            if buffer != "ring":
                self.stats.restore()
                raise
            # kernels before 5.8 have no BPF ring buffer: per-CPU perf buffers then
            buffer = "perf"
            self.text = program(probes, filter_enabled=filter_enabled, all_clones=all_clones,
                                all_prctl=all_prctl, buffer=buffer,
                                available=lambda c, e: f"{c}:{e}" not in missing_set)
            try:
                self.bpf = _load(bcc, self.text)
            except TracerUnavailable:
                self.stats.restore()
                raise first from None
        self.load_seconds = time.monotonic() - started
        # Loading and attaching the probes was the tracepoint attach test; kprobes and fentry
        # are never needed (doctor tries those), so tracepoints-only is the full mode here.
        self.mode = capabilities.MODE_TRACEPOINTS
        self.checks = [check.as_dict() for check in (
            capabilities.check_tracefs(), capabilities.check_btf(),
            capabilities.check_kernel_headers())]
        self.buffer = buffer
        if buffer == "ring":
            self.bpf[b"events"].open_ring_buffer(self._on_ring)
        else:
            self.bpf[b"events"].open_perf_buffer(self._on_raw, page_cnt=page_cnt,
                                                lost_cb=self._on_lost)
        self._base = self._prog_totals()

    # -- filters ---------------------------------------------------------------------------
    def watch_cgroup(self, cgroup_id: int) -> None:
        self.bpf[b"filter_cgroups"][ctypes.c_uint64(cgroup_id)] = ctypes.c_uint8(1)

    def unwatch_cgroup(self, cgroup_id: int) -> None:
        try:
            del self.bpf[b"filter_cgroups"][ctypes.c_uint64(cgroup_id)]
        except KeyError:
            pass

    def watch_pid(self, pid: int) -> None:
        self.bpf[b"filter_pids"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)

    def unwatch_pid(self, pid: int) -> None:
        try:
            del self.bpf[b"filter_pids"][ctypes.c_uint32(pid)]
        except KeyError:
            pass

    def watch(self, pids=(), cgroups=()) -> None:
        """Several pids and cgroup ids at once (one request for a tracer in another process)."""
        for pid in pids:
            self.watch_pid(pid)
        for cgroup_id in cgroups:
            self.watch_cgroup(cgroup_id)

    def unwatch_all(self) -> None:
        """Forget every watched pid (with the pid trees followed so far) and cgroup."""
        for name in (b"filter_pids", b"filter_cgroups"):
            self.bpf[name].clear()

    # -- events ----------------------------------------------------------------------------
    def _on_lost(self, count: int) -> None:
        self.lost += count

    def _on_ring(self, ctx, data, size) -> None:
        self._on_raw(0, data, size)

    def _on_raw(self, cpu, data, size) -> None:
        from .probes.common import Event

        raw = ctypes.cast(data, ctypes.POINTER(Event)).contents
        self.handle(decode(raw))

    def handle(self, event: dict) -> None:
        """Attribute one decoded event (unless ``attribute=False``) and keep / forward it."""
        if self.attribute:
            self.attributor.attribute(event)
        if self.keep:
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def poll(self, timeout_ms: int = 100) -> None:
        if self.buffer == "ring":
            self.bpf.ring_buffer_poll(timeout=timeout_ms)
        else:
            self.bpf.perf_buffer_poll(timeout=timeout_ms)

    def consume(self) -> None:
        """Read what the buffer holds now without waiting (a tracer process's periodic read)."""
        if self.buffer == "ring":
            self.bpf.ring_buffer_consume()
        else:
            self.bpf.perf_buffer_poll(timeout=0)

    def lost_events(self) -> int:
        """Events the kernel could not hand over (perf: lost callback; ring: full buffer)."""
        if self.buffer == "ring":
            try:
                return int(self.bpf[b"dropped"][ctypes.c_int(0)].value)
            except (KeyError, TypeError):
                return 0
        return self.lost

    def drain(self, rounds: int = 3) -> None:
        """Read what the buffers hold now (a few short polls)."""
        for _ in range(rounds):
            self.poll(10)

    # -- run-queue delay --------------------------------------------------------------------
    def runq_delay(self) -> dict:
        """Run-queue delay of traced tasks since load (or clear_runq): a log2 histogram."""
        try:
            hist = self.bpf[b"runq_hist"]
            total = int(self.bpf[b"runq_sum"][ctypes.c_int(0)].value)
        except KeyError:
            return {}
        counts = {int(k.value): int(v.value) for k, v in hist.items() if v.value}
        return summarize_log2(counts, total)

    def clear_runq(self) -> None:
        try:
            self.bpf[b"runq_hist"].clear()
            self.bpf[b"runq_sum"][ctypes.c_int(0)] = ctypes.c_uint64(0)
        except KeyError:
            pass

    # -- cost ------------------------------------------------------------------------------
    def _prog_totals(self) -> dict[str, int]:
        total = {"run_time_ns": 0, "run_cnt": 0}
        for fn in self.bpf.funcs.values():
            stats = prog_stats(fn.fd)
            total["run_time_ns"] += stats["run_time_ns"]
            total["run_cnt"] += stats["run_cnt"]
        return total

    def cost(self) -> dict:
        """The probes' own run time since load, per program run, and lost events."""
        now = self._prog_totals()
        run_ns = now["run_time_ns"] - self._base["run_time_ns"]
        runs = now["run_cnt"] - self._base["run_cnt"]
        return {"mode": self.mode, "bpf_stats": self.stats.method if self._stats_on else None,
                "run_time_ns": run_ns,
                "run_cnt": runs,
                "ns_per_run": round(run_ns / runs, 1) if runs else 0.0,
                "lost_events": self.lost_events(), "programs": len(self.bpf.funcs),
                "load_seconds": round(self.load_seconds, 3),
                "missing_tracepoints": list(self.missing)}

    def close(self) -> None:
        bpf = getattr(self, "bpf", None)
        if bpf is not None:
            try:
                bpf.cleanup()
            finally:
                self.bpf = None
        self.stats.restore()

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clear(tracer: Tracer) -> None:
    """Forget collected events (a long-lived tracer shared by several measurements)."""
    tracer.drain()
    tracer.events.clear()
