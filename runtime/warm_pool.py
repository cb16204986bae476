"""A warm pool of zygote containers (SOCK-style): start = hand a command to a prepared process.

Each zygote is a container's first process that has already done everything ``Runtime.start``
does before exec: it sits in fresh mount/UTS/IPC/PID/net namespaces, has joined its own cgroup
(created with the spec's limits), mounted and pivoted into its overlay root file system, dropped
privileges and loaded its seccomp filter (right after clone it execs a fresh, small interpreter
that does this set-up from a pickled plan: see ``_become_zygote``). It then execs the small
static program runtime/zygote_stub.c from a sealed memfd (``_wait_in_program``), which blocks on
a unix socket: ``start(argv, stdio)`` sends the command and the caller's stdio descriptors
there (SCM_RIGHTS, one message) and returns once the command has been exec'd (the
close-on-exec error pipe reaches EOF), exactly the moment ``Runtime.start`` reports. No Python
runs between the two, and that exec tears down a small static program, not an interpreter
(measured: the hand-off phase went from ~0.9-1.1 ms to ~0.4-0.5 ms). Where the program cannot
be built (no gcc) the zygote waits in Python instead: a "go" byte on a pipe releases it, then it
takes the command from the socket. A background thread refills the pool once a container has
finished (not during a start, which would compete for the CPU and the GIL).

Removal off the caller's path: ``finish()`` returns once the command's exit status is known; the
same background thread then records the exit, removes the cgroup and the container's directory
(``drain()`` waits for that; ``close()`` drains, so nothing outlives the pool). A zygote's mount
namespace is held open by the pool (a descriptor taken while it waits), so the command's exit
does not unmount its tree (for the overlay: a sync of the upper file system) in the exiting
process: the thread's close of that descriptor does, before it removes the directories
(measured: the exit-to-wait phase 1.7-2.9 ms -> 0.6-1.0 ms; holding the network, IPC, UTS and
PID namespaces too made no difference beyond noise, so they are not). Its overlay is mounted
``volatile`` (never synced: its upper dir is deleted with it, also after a crash, by ``gc``), so
that unmount does not sync the upper dir's file system either (measured under load: 0.7-6.4 ms ->
0.2-0.3 ms). If the pool's process dies first, ``isoinspect gc`` finds the records (running,
process gone, --rm) and removes them with their cgroups. Without the thread
(``background=False``) ``finish()`` removes the container itself before returning.

Why a thread and a GIL-holding clone: the refill thread clones zygotes while the main thread
waits for containers. ``syscalls.clone_process`` goes through ctypes.CDLL, which releases the
GIL, so another thread could take the GIL at the moment of the clone and the child would inherit
a GIL owned by a thread that does not exist in it. Here the clone is made through ctypes.PyDLL,
which keeps the GIL. The parent-death signal is bound to the thread that cloned, so the refill
thread lives as long as the pool does.

A zygote closes every descriptor it inherited except its own pipes (see ``_keep_only``), so
descriptors the owner opens while a zygote is being made do not leak into it.

Limits: network "none" or "host" only (no pre-start hooks such as a bridge veth), no user
namespace remap. Everything a zygote holds (cgroup, state directory, mounts in its namespace)
is removed by ``close()`` or after its container is finished with ``finish()``.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import pickle
import socket
import sys
import threading
import time

from isoinspect.runtime import child, process
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.frozen import Frozen
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.linux.signals import SIGKILL
from isoinspect.runtime.pipes import read_all

_pylibc = ctypes.PyDLL(None, use_errno=True)
MAX_COMMAND_BYTES = 65536
#: namespaces a zygote's descriptors keep alive until its removal (see the module notes)
HELD_NAMESPACES = ("mnt",)


def _clone_holding_gil(flags: int) -> int:
    pid = _pylibc.syscall(ctypes.c_long(sc.SYS_clone), ctypes.c_ulong(flags | sc.SIGCHLD),
                          None, None, None, None)
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def _keep_only(fds: list[int]) -> None:
    """In a new zygote: close every inherited descriptor but stdio and ``fds``.

    A zygote is a copy of its owner made at any moment (the refill thread runs beside the
    owner's own work) and waits indefinitely before its exec: without this it would hold
    whatever the owner had open at that moment, e.g. the write end of a pipe another
    container's output goes to, whose reader would then never see EOF. The garbage collector
    is stopped too: it must not close the numbers behind the owner's stale objects, which the
    command's descriptors may now reuse.
    """
    gc.disable()
    low = 3
    for fd in sorted(set(fds)):
        if fd > low:
            os.closerange(low, fd)
        low = max(low, fd + 1)
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def zygote_argv(plan_fd: int) -> list[str]:
    """A fresh interpreter that reads its plan from ``plan_fd`` and becomes the zygote.

    Under the venv's fast launcher tree (``<prefix>/isoinspect-src``) it starts with -I -S
    (a few MB, ~10 ms); elsewhere with site, which installs the package's import hooks.
    """
    code = (f"from isoinspect.runtime.warm_pool import zygote_main; zygote_main({plan_fd})")
    tree = os.path.join(sys.prefix, "isoinspect-src")
    if os.path.isdir(os.path.join(tree, "isoinspect")):
        return [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = [{tree!r}]; {code}"]
    return [sys.executable, "-I", "-c", code]


def zygote_main(plan_fd: int) -> None:
    """The zygote after its exec: read the plan, set the container up, wait for a command."""
    sc.make_non_dumpable()  # the exec made it dumpable; it waits inside the container
    with os.fdopen(plan_fd, "rb") as handle:
        plan, channel_fd, program_fd = pickle.load(handle)
    if program_fd >= 0:
        child.run_child(_wait_in_program(plan, channel_fd, program_fd))  # never returns
    channel = socket.socket(fileno=channel_fd)
    child.run_child(plan.replace(before_exec=_receive_command(channel)))  # never returns


#: where ``_wait_in_program`` puts the zygote program's descriptors (its argv names them)
PROGRAM_FDS = 3


def _wait_in_program(plan, channel_fd: int, program_fd: int):
    """The plan whose "command" is the zygote program (runtime/zygote_stub.c): the child sets
    the container up as for any command (privileges, seccomp, working directory, environment
    with HOME) and execs it through the sealed exec stub; it reports ready and waits.

    Its descriptors go to 3.. (kept across the exec: ``preserve_fds``): the socket, the ready
    pipe, a copy of the error pipe (the child's own is closed by that exec) and the program.
    """
    import fcntl

    sources = [channel_fd, plan.ready_fd, plan.err_fd, program_fd]
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in sources]
    for fd in sources:
        os.close(fd)
    for slot, fd in enumerate(moved):
        os.dup2(fd, PROGRAM_FDS + slot)  # inheritable
    for fd in moved[:2] + moved[3:]:
        os.close(fd)
    channel, ready, err, program = range(PROGRAM_FDS, PROGRAM_FDS + 4)
    process = plan.process.replace(
        argv=[f"/proc/self/fd/{program}", str(channel), str(ready), str(err)],
        preserve_fds=4)
    return plan.replace(process=process, err_fd=moved[2], ready_fd=-1, start_fd=-1)


def _become_zygote(keep: list[int], plan_fd: int, err_fd: int) -> None:
    """Right after clone: drop inherited descriptors and exec a small fresh interpreter.

    Why exec: a start's exec must tear down the address space of the process that execs.
    A clone of the pool's owner carries the owner's whole address space (a benchmark process:
    ~80 MB; measured here, exec from a clone of a 300 MB process took 12-22 ms instead of
    ~1 ms), while a fresh ``python -I -S`` is small whatever the owner is.
    """
    try:
        _keep_only(keep)
        for fd in keep:
            os.set_inheritable(fd, True)
        argv = zygote_argv(plan_fd)
        os.execv(argv[0], argv)
    except BaseException as exc:  # noqa: BLE001 - a forked copy must never return
        try:
            os.write(err_fd, f"zygote exec failed: {exc}".encode()[:4000])
        finally:
            os._exit(child.EXIT_SETUP_FAILED)


def encode_command(argv: list[str]) -> bytes:
    """argv as NUL-separated bytes (what a zygote receives); ValueError if it cannot be sent."""
    if not argv or any("\0" in a for a in argv):
        raise ValueError("the command must be non-empty and hold no NUL bytes")
    data = "\0".join(argv).encode()
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(f"command longer than {MAX_COMMAND_BYTES} bytes")
    return data


def decode_command(data: bytes) -> list[str]:
    return data.decode().split("\0")


def _receive_command(channel: socket.socket):
    """The zygote's ``before_exec``: take argv and stdio from the pool, then exec proceeds."""

    def receive(plan):
        data, fds, _flags, _addr = socket.recv_fds(channel, MAX_COMMAND_BYTES + 1, 3)
        if not data:
            os._exit(child.EXIT_SETUP_FAILED)  # the pool closed without a command
        targets = [t for t in range(3) if data[0] & (1 << t)]
        for target, fd in zip(targets, fds):
            if fd != target:
                os.dup2(fd, target)
                os.close(fd)
        return plan.process.replace(argv=decode_command(data[1:]))

    return receive


class Zygote:
    """One prepared container process waiting for its command (parent side)."""

    __slots__ = ("record", "pid", "err_r", "go_w", "channel", "prepared_s", "held")

    def __init__(self, record: ContainerState, pid: int, err_r: int, go_w: int,
                 channel: socket.socket, prepared_s: float, held: list[int]) -> None:
        self.record, self.pid, self.err_r, self.go_w = record, pid, err_r, go_w
        self.channel, self.prepared_s, self.held = channel, prepared_s, held

    def close_fds(self) -> None:
        for fd in (self.err_r, self.go_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.err_r = self.go_w = -1
        self.channel.close()


class Finished(Frozen):
    """A container whose command has exited, waiting for the pool to remove it."""

    record: ContainerState
    status: int  # raw waitpid status
    finished_at: float
    held: list  # namespace descriptors to close before the removal


def hold_namespaces(pid: int) -> list[int]:
    """Descriptors of ``pid``'s ``HELD_NAMESPACES`` (close-on-exec)."""
    held: list[int] = []
    try:
        for name in HELD_NAMESPACES:
            held.append(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        release(held)
        raise
    return held


def release(fds: list[int]) -> None:
    """Close ``fds``; the last reference to a namespace tears it down here."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    del fds[:]


class WarmPool:
    """``size`` zygotes of ``spec`` kept ready; ``start`` hands one a command.

    Use as a context manager (or call ``close()``): that kills and removes idle zygotes and
    waits for the removal of finished ones. ``background=False`` refills only inside
    ``start()``/``fill()`` and removes inside ``finish()`` (no thread).
    """

    def __init__(self, runtime, spec, size: int = 2, background: bool = True) -> None:
        if size < 1:
            raise ValueError("a warm pool needs size >= 1")
        if spec.network not in ("none", "host"):
            raise IsoinspectError(f"the warm pool supports --network none or host, not "
                                  f"{spec.network!r} (no pre-start hooks)", exit_code=2)
        if getattr(spec, "userns", False):
            raise IsoinspectError("the warm pool does not support user namespaces", exit_code=2)
        self.runtime, self.spec, self.size = runtime, spec, size
        self.idle: collections.deque[Zygote] = collections.deque()
        self.finished: collections.deque[Finished] = collections.deque()  # to remove
        self._removing = 0            # removals taken off ``finished``, not yet done
        self._draining = 0            # callers in drain(): no refill until they have left
        self._refill_due = True       # a zygote was used up (set by finish and failed starts)
        self._held: dict[int, list[int]] = {}  # pid of a started command -> its namespaces
        self.cold_starts = 0          # starts that found the pool empty
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._background = background
        self._program = -1  # sealed zygote program (runtime/zygote_program.py), from open()

    # -- zygotes ----------------------------------------------------------------------------

    def _flags(self) -> int:
        flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID
        if self.spec.network != "host":
            flags |= sc.CLONE_NEWNET
        return flags

    def spawn(self) -> Zygote:
        """Create a container and clone its first process up to just before exec."""
        begin = time.perf_counter()
        runtime = self.runtime
        record = runtime.create(self.spec)
        fds: list[int] = []
        parent_end = child_end = None
        program = self._program
        try:
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
            fds = [err_r, err_w, ready_r, ready_w]
            go_r = go_w = -1
            if program < 0:  # the zygote waits in Python: a "go" pipe releases it
                go_r, go_w = os.pipe2(os.O_CLOEXEC)
                fds += [go_r, go_w]
            plan_r, plan_w = os.pipe2(os.O_CLOEXEC)
            fds += [plan_r, plan_w]
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            plan = runtime.init_plan(record)
            plan = plan.replace(err_fd=err_w, ready_fd=ready_w, start_fd=go_r,
                                root=plan.root.replace(volatile=True))  # see the module notes
            payload = pickle.dumps((plan, child_end.fileno(), program))
            pid = _clone_holding_gil(self._flags())
            if pid == 0:
                keep = [err_w, ready_w, child_end.fileno(), plan_r]
                _become_zygote(keep + [fd for fd in (go_r, program) if fd >= 0], plan_r,
                               err_w)
            for fd in (err_w, ready_w, go_r, plan_r):
                if fd >= 0:
                    os.close(fd)
            fds = [fd for fd in (err_r, ready_r, go_w, plan_w) if fd >= 0]
            child_end.close()
            try:
                os.write(plan_w, payload)
            except BrokenPipeError:
                pass  # the zygote died before reading: its error pipe says why
            os.close(plan_w)
            fds.remove(plan_w)
            ready = os.read(ready_r, 1)
            os.close(ready_r)
            fds.remove(ready_r)
            if ready != b"r":
                message = read_all(err_r)
                fds.remove(err_r)
                os.waitpid(pid, 0)
                raise IsoinspectError("zygote set-up failed: "
                                      + (message.decode(errors="replace") or "no reason given"))
        except BaseException:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            for sock in (parent_end, child_end):
                if sock is not None:
                    sock.close()
            runtime._discard(record)
            raise
        record = record.replace(status=Status.RUNNING, pid=pid,
                                pid_ticks=process.start_ticks(pid), started_at=time.time())
        runtime.containers.save(record)
        try:
            held = hold_namespaces(pid)
        except OSError as exc:
            zygote = Zygote(record, pid, err_r, go_w, parent_end, 0.0, [])
            zygote.close_fds()
            self._kill(zygote)
            raise IsoinspectError(f"zygote set-up failed: its namespaces: {exc}") from None
        return Zygote(record, pid, err_r, go_w, parent_end, time.perf_counter() - begin, held)

    def fill(self) -> None:
        """Bring the pool up to ``size`` now (in the calling thread)."""
        while True:
            with self._cond:
                if self._closing or len(self.idle) >= self.size:
                    return
            zygote = self.spawn()
            with self._cond:
                self.idle.append(zygote)
                self._cond.notify_all()

    def open(self) -> "WarmPool":
        """Fill the pool; with ``background`` start the refill thread that keeps it full."""
        if self._program < 0:
            from isoinspect.runtime.zygote_program import sealed_zygote_program

            self._program = sealed_zygote_program()
        if self._background:
            self._thread = threading.Thread(target=self._refill_loop, name="isoinspect-pool",
                                            daemon=True)
            self._thread.start()
            self.wait_full()
        else:
            self.fill()
        return self

    def _refill_loop(self) -> None:
        """Remove finished containers first (their exit is known), then refill, but not while
        someone waits in drain(): a spawn's Python would keep the GIL from that caller for up
        to the switch interval (5 ms) after the removal it waited for was done. A refill is
        due once a container is done, never because a start took a zygote: waking up for any
        other reason (drain's notify) must not make it spawn beside the next start."""
        while True:
            with self._cond:
                while not self.finished and not self._closing:
                    if len(self.idle) >= self.size:
                        self._refill_due = False
                    elif self._refill_due and not self._draining:
                        break
                    self._cond.wait()
                if not self.finished and self._closing:
                    return
            if self.remove_finished():
                continue
            try:
                self.fill()
            except Exception as exc:  # noqa: BLE001 - reported, the pool goes on cold
                with self._cond:
                    self.errors.append(str(exc))
                    self._cond.notify_all()
                time.sleep(0.1)
        # unreachable

    def remove_finished(self) -> bool:
        """Remove every finished container now (in the calling thread); False if none."""
        done = False
        while True:
            with self._cond:
                if not self.finished:
                    return done
                item = self.finished.popleft()
                self._removing += 1
            try:
                self._remove_finished(item)
            except Exception as exc:  # noqa: BLE001 - reported; `gc` finds what is left
                with self._cond:
                    self.errors.append(f"removing {item.record.id[:12]}: {exc}")
            finally:
                with self._cond:
                    self._removing -= 1
                    self._cond.notify_all()
            done = True

    def _remove_finished(self, item: Finished) -> None:
        release(item.held)  # unmounts the container's tree (its last reference)
        try:
            self.runtime.record_exit(item.record, item.status, item.finished_at)
        finally:
            self._remove(item.record)

    def drain(self, timeout: float = 60.0) -> bool:
        """Block until every finished container has been removed (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining += 1
            try:
                while self.finished or self._removing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, 0.5))
            finally:
                self._draining -= 1
                self._cond.notify_all()  # the refill may go on
        return True

    def wait_full(self, timeout: float = 60.0) -> bool:
        """Block until the pool holds ``size`` zygotes (True) or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.idle) < self.size and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return len(self.idle) >= self.size

    # -- using it ---------------------------------------------------------------------------

    def _take(self) -> Zygote:
        with self._cond:
            if self.idle:
                return self.idle.popleft()
        self.cold_starts += 1
        return self.spawn()

    def start(self, argv: list[str], stdio: tuple = (None, None, None)):
        """Run ``argv`` in a zygote; return once it has been exec'd (like ``Runtime.start``).

        ``stdio``: descriptors for the command's 0/1/2 (None: that one stays the pool
        owner's). The caller waits with ``finish()``.
        """
        from isoinspect.runtime.runtime import Started

        payload = encode_command(argv)
        zygote = self._take()
        begin = time.monotonic_ns()
        fds = [fd for fd in stdio if fd is not None]
        mask = sum(1 << target for target, fd in enumerate(stdio) if fd is not None)
        try:
            socket.send_fds(zygote.channel, [bytes([mask]) + payload], fds)
            if zygote.go_w >= 0:  # a zygote waiting in Python
                os.write(zygote.go_w, b"g")
                os.close(zygote.go_w)
                zygote.go_w = -1
            message = read_all(zygote.err_r)
            zygote.err_r = -1
        except BaseException:
            zygote.close_fds()
            self._kill(zygote)
            with self._cond:
                self._refill_due = True
                self._cond.notify_all()
            raise
        ready = time.monotonic_ns()
        zygote.close_fds()
        if message:  # the zygote exits right after saying why: Docker's 126/127 from it
            code = self._done(zygote.record, zygote.pid, zygote.held)
            raise IsoinspectError(message.decode(errors="replace"), exit_code=code)
        self._held[zygote.pid] = zygote.held
        return Started(zygote.record, zygote.pid, begin, ready)

    def finish(self, started) -> int:
        """Wait for a started command and return its exit code; its container is removed
        right after by the background thread (see the module notes), or here without one."""
        return self._done(started.record, started.pid, self._held.pop(started.pid, []))

    def _done(self, record: ContainerState, pid: int, held: list[int]) -> int:
        """Reap ``pid``, queue its container's removal (and a refill); its exit code."""
        status = process.wait_status(pid)
        item = Finished(record=record, status=255 << 8 if status is None else status,
                        finished_at=time.time(), held=held)
        with self._cond:  # refill once a container is done, not while one starts
            self.finished.append(item)
            self._refill_due = True
            self._cond.notify_all()
        if self._thread is None:
            self.remove_finished()
        return process.exit_code_from_status(item.status)

    def _remove(self, record: ContainerState) -> None:
        try:
            self.runtime.remove(record.id, force=True)
        except IsoinspectError:
            pass

    def _kill(self, zygote: Zygote) -> None:
        process.kill_and_wait(zygote.pid, steps=((SIGKILL, 10.0),), reap=True)
        release(zygote.held)
        self._remove(zygote.record)

    def close(self) -> None:
        """Stop refilling, remove finished containers, kill and remove every idle zygote."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.remove_finished()  # what the thread left (or all of it, had it died)
        self.drain()
        while self.idle:
            zygote = self.idle.popleft()
            zygote.close_fds()
            self._kill(zygote)
        if self._program >= 0:
            os.close(self._program)
            self._program = -1

    def __enter__(self) -> "WarmPool":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
