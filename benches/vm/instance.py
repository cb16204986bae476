"""A detached guest: QEMU left running in the background, its job (e.g. ``sleep``) running in
the guest, until ``stop`` (the VM instances of ``bench density``).

``GuestVM.run`` boots, runs one command and powers off; a density instance must stay up. It
uses the same kernel, initramfs, shares and QEMU command line (``GuestVM.qemu_argv``,
``GuestVM._job``); what differs:

* the console goes to a file in the run directory, so nothing has to keep reading a pipe;
* the job prints ``STARTED`` on its stdout file (the run share) and then execs the command,
  so "started" means the guest's PID 1 ran the job, past the ready marker;
* QEMU runs in its own session (a Ctrl-C at the terminal is ours to handle) with a
  parent-death SIGKILL (a killed bench cannot leave a guest behind); ``stop`` kills its
  process group and reaps it. Callers hold instances in try/finally, so Ctrl-C stops them too.

``smallest_memory`` boots the guest with growing RAM sizes until one reaches ``STARTED``.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .kernel import VMError
from .qemu import GuestVM, _failure, _tail

STARTED = "@@isoinspect-guest-started"
MEMORY_CANDIDATES_MB = (64, 80, 96, 128)
PT_LOAD = 1
MIB = 1 << 20
POLL_S = 0.02


def _die_with_parent() -> None:
    """In QEMU's child before exec: SIGKILL when the bench process goes away."""
    from isoinspect.runtime.linux import syscalls as sc

    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)


def _before_exec(cgroup_procs: tuple[str, ...]):
    """The child's set-up before exec: die with the parent, then join the cgroup (so QEMU
    runs under its host limits from its first instruction, as libvirt starts it)."""
    def setup() -> None:
        _die_with_parent()
        for path in cgroup_procs:
            for attempt in range(5):  # a transient refusal is retried; the last one is said
                try:
                    with open(path, "w") as handle:
                        handle.write("0")
                    break
                except OSError as exc:
                    if attempt == 4:
                        os.write(2, f"@@VM-FAIL joining {path}: {exc}\n".encode())
                        raise
                    time.sleep(0.05)
    return setup


class DetachedGuest:
    """One QEMU process booted in the background; ``stop`` always kills it."""

    def __init__(self, vm: GuestVM, command: list[str] | str, memory_mb: int,
                 cpus: int | None = None, extra_argv: list[str] | None = None,
                 cgroup_procs: tuple[str, ...] = ()) -> None:
        """``cpus`` overrides the vCPU count, ``extra_argv`` is appended to QEMU's command line
        (e.g. a throttled disk), ``cgroup_procs``: cgroup.procs files QEMU joins before exec."""
        self.vm = copy.copy(vm)
        self.vm.memory_mb = memory_mb
        if cpus:
            self.vm.cpus = cpus
        self.memory_mb = memory_mb
        self.extra_argv = list(extra_argv or ())
        self.cgroup_procs = tuple(cgroup_procs)
        self.accel = vm.choose_accel()
        self.run_dir = tempfile.mkdtemp(prefix="isoinspect-vm-")
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        with open(os.path.join(self.run_dir, "job.sh"), "w") as handle:
            text = command if isinstance(command, str) else " ".join(command)
            handle.write(self.vm._job(f"echo {STARTED}\nexec {text}", "/", None))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 120.0) -> float:
        """Spawn QEMU and wait until the job runs; seconds from spawn to ``STARTED``.

        VMError (QEMU gone, or no ``STARTED`` within ``timeout``) after killing QEMU."""
        console = open(os.path.join(self.run_dir, "console.log"), "wb")
        try:
            begin = time.perf_counter()
            try:
                self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                             stdout=console, stderr=subprocess.STDOUT,
                                             start_new_session=True,
                                             preexec_fn=_before_exec(self.cgroup_procs))
            except subprocess.SubprocessError as exc:
                raise VMError(f"QEMU's set-up before exec failed ({exc}){_failure(self.console())}"
                              ) from None
            self._wait_started(begin, timeout)
            self.start_seconds = time.perf_counter() - begin
            return self.start_seconds
        except BaseException:
            self.stop()
            raise
        finally:
            console.close()

    def argv(self) -> list[str]:
        return self.vm.qemu_argv(self.accel, self.run_dir, None) + self.extra_argv

    def _wait_started(self, begin: float, timeout: float) -> None:
        stdout = os.path.join(self.run_dir, "stdout")
        while True:
            if _contains(stdout, STARTED):
                return
            if self.proc.poll() is not None:
                raise VMError(f"QEMU ({self.accel}, {self.memory_mb} MiB) exited "
                              f"{self.proc.returncode} before the job started"
                              f"{_failure(self.console())}\n{_tail(self.console())}")
            if time.perf_counter() - begin > timeout:
                raise VMError(f"the guest ({self.accel}, {self.memory_mb} MiB) did not start "
                              f"its job within {timeout:.0f} s{_failure(self.console())}\n"
                              f"{_tail(self.console())}")
            time.sleep(POLL_S)

    def console(self) -> str:
        try:
            with open(os.path.join(self.run_dir, "console.log"), errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Kill QEMU (its whole session), reap it, remove the run directory; idempotent."""
        if self.proc is not None:
            for attempt in range(2):  # a second Ctrl-C while waiting: kill and wait again
                try:
                    if self.proc.poll() is None:
                        try:
                            os.killpg(self.proc.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    self.proc.wait()
                    break
                except KeyboardInterrupt:
                    if attempt:
                        raise
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _contains(path: str, marker: str) -> bool:
    try:
        with open(path, errors="replace") as handle:
            return marker in handle.read()
    except OSError:
        return False


@dataclass
class MemoryProbe:
    """The smallest guest RAM that ran the job, and what each size tried did."""

    memory_mb: int | None
    tried: list[dict] = field(default_factory=list)   # {"memory_mb", "ok", "seconds", "error"}

    def to_dict(self) -> dict:
        return {"memory_mb": self.memory_mb, "tried": list(self.tried)}


def load_end(image: str) -> int | None:
    """Where an uncompressed ELF kernel ends in guest physical memory (the highest
    p_paddr + p_memsz of its PT_LOAD segments), bytes; None for anything else (a bzImage)."""
    try:
        with open(image, "rb") as handle:
            header = handle.read(64)
            if header[:5] != b"\x7fELF\x02":          # 64-bit ELF only
                return None
            phoff, = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return None
    ends = []
    for index in range(phnum):
        kind, _flags, _offset, _vaddr, paddr, _filesz, memsz = struct.unpack_from(
            "<IIQQQQQ", table, index * phentsize)
        if kind == PT_LOAD:
            ends.append(paddr + memsz)
    return max(ends) if ends else None


def smallest_memory(vm: GuestVM, command: list[str] | str = "sleep 30",
                    sizes: tuple[int, ...] = MEMORY_CANDIDATES_MB,
                    timeout: float = 60.0) -> MemoryProbe:
    """Boot once per size, smallest first, until a guest starts its job; that size wins.

    Sizes that cannot hold the kernel image where it loads plus the initramfs are not booted
    (such a guest hangs silently until the timeout instead of failing)."""
    probe = MemoryProbe(None)
    end = load_end(vm.kernel.boot_image)
    floor = end + os.path.getsize(vm.initramfs) if end else 0
    for size in sorted(sizes):
        if size * MIB <= floor:
            probe.tried.append({"memory_mb": size, "ok": False, "seconds": None,
                                "error": f"not booted: the kernel loads up to "
                                         f"{end / MIB:.1f} MiB, the initramfs takes "
                                         f"{os.path.getsize(vm.initramfs) / MIB:.1f} MiB"})
            continue
        guest = DetachedGuest(vm, command, size)
        try:
            seconds = guest.start(timeout)
            probe.tried.append({"memory_mb": size, "ok": True, "seconds": round(seconds, 3),
                                "error": ""})
            probe.memory_mb = size
            return probe
        except VMError as exc:
            first = str(exc).split("\n")[0]
            probe.tried.append({"memory_mb": size, "ok": False, "seconds": None,
                                "error": first[:300]})
        finally:
            guest.stop()
    return probe


__all__ = ["MEMORY_CANDIDATES_MB", "STARTED", "DetachedGuest", "MemoryProbe", "load_end",
           "smallest_memory"]
