"""Cost of each namespace type alone: create and destroy, one at a time and under concurrency.

    isoinspect bench namespaces [--runs N] [--levels 1,2,4,8] [--quick] [--results-dir DIR]

One cycle: fork a child; the child times ``unshare(CLONE_NEW<type>)`` alone (create) and reports
it on a pipe, then waits; the parent tells it to exit and times exit + reap (destroy: the last
reference to the namespace goes with the process). Type ``none`` (``unshare(0)``, a no-op) is the
baseline of the timing itself and of fork/exit/reap, so a type's own cost is its figure minus
none's.

The network namespace is torn down asynchronously (``cleanup_net`` on a workqueue, after the
last reference is dropped). To see that, the parent gives the child's netns an id in its own
netns (RTM_NEWNSID) and listens on the RTNLGRP_NSID netlink group: ``cleanup_net`` announces
RTM_DELNSID for the id when it takes the namespace off the id tables, the first step of its
teardown. For ``net``, destroy therefore runs from the exit request until that announcement
(the queueing delay plus the exit); the per-subsystem exit work that follows is not included.

Under concurrency, ``level`` worker processes run cycles side by side; ``rate_per_s`` is the
number of completed create+destroy cycles per second across them.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time

from isoinspect.benches import stats
from isoinspect.runtime import process
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError
from isoinspect.runtime.linux import namespaces
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.linux.signals import SIGKILL

TYPES = {"none": 0, **namespaces.FLAG_BY_PROC}  # "none": unshare(0), the baseline
RTM_NEWNSID, RTM_DELNSID, NLMSG_ERROR = 88, 89, 2
RTNLGRP_NSID, NETNSA_NSID, NETNSA_FD = 28, 1, 3
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
QUICK_RUNS, QUICK_LEVELS, DEFAULT_LEVELS = 20, [1, 4], [1, 2, 4, 8]
NSID_BASE = 0x49530000  # "IS" + worker/counter: far from ids `ip netns` hands out


class NsidWatch:
    """Give netns ids (RTM_NEWNSID) and wait for their RTM_DELNSID announcement."""

    def __init__(self) -> None:
        self.request = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.request.bind((0, 0))
        self.listen = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.listen.bind((0, 0))
        self.listen.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NSID)
        self.seq = 0
        self.deleted: set[int] = set()

    @staticmethod
    def _attr(kind: int, payload: bytes) -> bytes:
        return struct.pack("HH", 4 + len(payload), kind) + payload

    def assign(self, pid: int, nsid: int) -> None:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            body = struct.pack("Bxxx", 0) + self._attr(NETNSA_FD, struct.pack("I", fd)) + \
                self._attr(NETNSA_NSID, struct.pack("i", nsid))
            self.seq += 1
            header = struct.pack("IHHII", 16 + len(body), RTM_NEWNSID, NLM_F_REQUEST | NLM_F_ACK,
                                 self.seq, 0)
            self.request.send(header + body)
            reply = self.request.recv(65536)
        finally:
            os.close(fd)
        _, kind, _, _, _ = struct.unpack_from("IHHII", reply)
        error = struct.unpack_from("i", reply, 16)[0] if kind == NLMSG_ERROR else 0
        if error:
            raise OSError(-error, f"RTM_NEWNSID: {os.strerror(-error)}")

    def wait_deleted(self, nsid: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while nsid not in self.deleted:
            self.listen.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.listen.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"no RTM_DELNSID for nsid {nsid} in {timeout:.0f} s") \
                    from None
            self.deleted |= set(parse_deleted(data))
        self.deleted.discard(nsid)

    def close(self) -> None:
        self.request.close()
        self.listen.close()


def parse_deleted(data: bytes) -> list[int]:
    """The nsids of the RTM_DELNSID messages in one netlink read."""
    found, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        if length < 16:
            break
        if kind == RTM_DELNSID:
            pos, end = offset + 20, offset + length
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("HH", data, pos)
                if alen < 4:
                    break
                if atype == NETNSA_NSID:
                    found.append(struct.unpack_from("i", data, pos + 4)[0])
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3
    return found


def _in_child(body) -> None:
    """Run ``body`` in a forked child and _exit (1 on any error): never return into the
    parent's stack."""
    code = 0
    try:
        body()
    except BaseException as exc:  # noqa: BLE001 - a forked copy must never return
        sys.stderr.write(f"isoinspect bench namespaces: {exc}\n")
        code = 1
    os._exit(code)


def cycle(flag: int, watch: NsidWatch | None = None, nsid: int = 0) -> tuple[float, float]:
    """One create (in the child) + destroy (exit .. reaped, or .. RTM_DELNSID); seconds."""
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        def child() -> None:
            os.close(report_r)
            os.close(go_w)
            begin = time.perf_counter_ns()
            sc.unshare(flag)  # flag 0 ("none"): the bare syscall, the baseline
            os.write(report_w, struct.pack("q", time.perf_counter_ns() - begin))
            os.read(go_r, 1)

        _in_child(child)
    os.close(report_w)
    os.close(go_r)
    try:
        raw = os.read(report_r, 8)
        if len(raw) != 8:
            raise OSError(f"unshare({flag:#x}) failed in the child")
        create = struct.unpack("q", raw)[0] / 1e9
        if watch is not None:
            watch.assign(pid, nsid)
        begin = time.perf_counter_ns()
        os.close(go_w)
        go_w = -1
        os.waitpid(pid, 0)
        pid = -1
        if watch is not None:
            watch.wait_deleted(nsid)
        return create, (time.perf_counter_ns() - begin) / 1e9
    finally:
        os.close(report_r)
        if go_w >= 0:
            os.close(go_w)
        if pid > 0:
            process.kill_and_wait(pid, steps=((SIGKILL, float("inf")),), reap=True)


def run_cycles(name: str, count: int, worker: int = 0) -> dict:
    """``count`` cycles of one type in this process: {"create": [...], "destroy": [...]}."""
    watch = NsidWatch() if name == "net" else None
    sc.unshare(0)  # resolve the libc symbol here, not in every forked child
    out: dict = {"create": [], "destroy": []}
    try:
        for index in range(count):
            create, destroy = cycle(TYPES[name], watch, NSID_BASE + worker * 65536 + index)
            out["create"].append(create)
            out["destroy"].append(destroy)
    finally:
        if watch is not None:
            watch.close()
    return out


def at_level(name: str, count: int, level: int) -> dict:
    """``count`` cycles spread over ``level`` worker processes; samples and wall time."""
    per_worker = [count // level + (1 if i < count % level else 0) for i in range(level)]
    begin = time.perf_counter()
    if level == 1:
        merged = run_cycles(name, count)
    else:
        children = []
        for worker, share in enumerate(per_worker):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                def worker_body(worker=worker, share=share, read_fd=read_fd,
                                write_fd=write_fd) -> None:
                    os.close(read_fd)
                    data = json.dumps(run_cycles(name, share, worker)).encode()
                    with os.fdopen(write_fd, "wb") as handle:
                        handle.write(data)

                _in_child(worker_body)
            os.close(write_fd)
            children.append((pid, read_fd))
        merged = {"create": [], "destroy": []}
        failed = 0
        for pid, read_fd in children:
            with os.fdopen(read_fd, "rb") as handle:
                data = handle.read()
            _, status = os.waitpid(pid, 0)
            if status or not data:
                failed += 1
                continue
            part = json.loads(data)
            merged["create"] += part["create"]
            merged["destroy"] += part["destroy"]
        if failed:
            merged["error"] = f"{failed} of {level} workers failed"
    merged["wall_s"] = time.perf_counter() - begin
    return merged


def measure(runs: int, levels: list[int], types: list[str] | None = None,
            record=None, echo: bool = True) -> list[dict]:
    """namespace_cost results for every type and level (added to ``record`` as they come)."""
    results = []
    for name in types or list(TYPES):
        for level in levels:
            try:
                data = at_level(name, runs, level)
                error = data.get("error", "")
            except OSError as exc:
                data, error = {"create": [], "destroy": [], "wall_s": None}, str(exc)
            done = len(data["destroy"])
            rate = done / data["wall_s"] if done and data["wall_s"] else None
            for op in ("create", "destroy"):
                samples = data[op]
                result = {"kind": "namespace_cost", "namespace": name, "op": op,
                          "concurrency": level, "status": "ok" if samples else "failed",
                          "samples": samples, "unit": "s", "stats": stats.summarize(samples),
                          "rate_per_s": rate, "wall_s": data["wall_s"],
                          "destroy_until": ("RTM_DELNSID (cleanup_net started)"
                                            if name == "net" else "exit reaped")
                          if op == "destroy" else None}
                if error:
                    result["reason"] = error
                results.append(result)
                if record is not None:
                    record.add(result)
            if echo:
                create, destroy = results[-2]["stats"], results[-1]["stats"]
                rate_text = f"{rate:8.1f}/s" if rate else "       -"
                print(f"{name:7} x{level:<2} create p50 {_us(create)}  destroy p50 "
                      f"{_us(destroy)}  cycles {rate_text}" + (f"  ({error})" if error else ""),
                      flush=True)
    return results


def _us(summary: dict) -> str:
    return f"{summary['p50'] * 1e6:9.1f} us" if summary.get("n") else "        - us"


def run_command(runs: int, levels_text: str | None, quick: bool, results_dir: str | None) -> int:
    from isoinspect.benches.record import RunRecord
    from isoinspect.benches.startup import interrupt_on_signals, parse_levels

    levels = parse_levels(levels_text) or (QUICK_LEVELS if quick else DEFAULT_LEVELS)
    if quick:
        runs = min(runs, QUICK_RUNS)
    if runs < 1:
        raise UsageError("runs must be >= 1", exit_code=USAGE_EXIT_CODE)
    if os.geteuid() != 0:
        raise UsageError("creating namespaces of every type needs root", exit_code=USAGE_EXIT_CODE)
    interrupt_on_signals()
    record = RunRecord.create("bench namespaces", directory=results_dir,
                              config={"runs": runs, "levels": levels, "quick": quick})
    interrupted = False
    try:
        measure(runs, levels, record=record)
    except KeyboardInterrupt:
        interrupted = True
    record.finish(interrupted=interrupted)
    print(f"record: {record.path} (run {record.run_id})")
    return 130 if interrupted else 0
