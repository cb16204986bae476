"""The ``Target`` interface (one adapter per peer) and the helpers every target shares.

A target is one way to start an isolated workload (DESIGN.md section 1): the one adapter of a
peer runtime, driven by ``bench`` (start-up samples) and by ``verify`` (a container with limits),
so both run each peer under the same configuration (OCI peers: benches/bundle.py). Adding
crun, runsc, Docker or a QEMU guest means adding a module here, not changing the runners:

* ``available()`` says whether the target can run on this host, and why not (never raises);
* ``prepare(workdir)`` puts the image in the target's own format under ``workdir`` (untimed);
* ``measure(metric)`` runs the workload once and returns a ``Sample`` (wall seconds, on-CPU
  seconds or None) for one of ``METRICS``:
  - ``start_to_ready``: start .. the workload's first output (it runs ``echo MARKER``; the
    timer stops when the marker arrives on a pipe), what a caller waits for before the
    workload does anything; the rest of that run (exit, clean-up) is untimed;
  - ``lifecycle``: create + run ``true`` + delete (what ``runc run`` or ``docker run --rm``
    cost a caller); on-CPU time is the rusage of the processes reaped in the timed region
    (and, for daemons, their own CPU time);
  - ``teardown``: the workload has exited (untimed), then delete/remove alone;
  a metric a target cannot measure is listed in ``unsupported`` with the reason;
  ``start_once()`` is ``measure("lifecycle").wall`` (pytest-benchmark adapter);
  ``last_phases`` may then hold an optional breakdown of that one start;
* ``cleanup()`` removes everything ``prepare`` and the starts left behind, even after Ctrl-C;
* for verify (runc, runsc, docker, the isoinspect library): ``start(argv, limits, scratch)``
  runs ``argv`` with ``limits`` (a bundle.Limits) and hands back a running :class:`box.Box`
  (output in a log, ``stop`` removes the container); ``check_unsupported``/``explain`` say
  why a check cannot be judged on this peer; a ``control`` target leaves every limit out.

Timing uses ``time.perf_counter_ns`` (CLOCK_MONOTONIC on Linux). Subprocess targets are started
with ``posix_spawn`` (vfork + exec in glibc) rather than ``subprocess``, so the harness adds
about as little as possible on top of the peer it measures, and the same amount for every peer.
"""

from __future__ import annotations

import itertools
import os
import resource
import select
import shutil
import subprocess
import time
from typing import NamedTuple

from isoinspect.runtime import process
from isoinspect.runtime.linux.signals import SIGKILL

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
METRICS = ("start_to_ready", "lifecycle", "teardown")
MARKER = "isoinspect-ready"
READY_COMMAND = ["echo", MARKER]
LIFECYCLE_COMMAND = ["true"]
#: verify's containers (and their cgroup parent) are named after this
VERIFY_PREFIX = "isoinspect-verify"


class Sample(NamedTuple):
    """One measurement: wall seconds and on-CPU seconds (None when not measured)."""

    wall: float
    cpu: float | None = None


class TargetError(RuntimeError):
    """One start failed (non-zero exit, missing file, ...): the runner records it."""


class CommandFailed(TargetError):
    """The user's command (``bench startup --image IMG -- CMD``) exited non-zero: a failed
    run, worded as hyperfine words it; ``--ignore-failure`` keeps such runs instead."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"Command terminated with non-zero exit code: {code}"
                         + (f" ({detail[-300:]})" if detail else ""))
        self.code = code


class Target:
    """One way to start a container-like workload; subclasses fill in the blanks."""

    #: short unique name used in tables, JSON and ``--targets``
    name = "target"
    #: what ``start_once`` measures: "lifecycle" (start .. the workload exited and was cleaned
    #: up, what ``runc run`` or ``docker run --rm`` cost a caller) or "start-to-exec" (start ..
    #: the workload's command was exec'd; only in-process targets can see that moment)
    measures = "lifecycle"
    #: slow targets (VMs, Docker) are skipped by ``--quick``
    slow = False
    #: one line a reader of the table needs (what is and is not included)
    notes = ""
    #: metric -> why this target cannot measure it
    unsupported: dict[str, str] = {}
    #: lifecycles may run from several threads at once (concurrency sweep)
    concurrent = True
    #: a container target: a traced pass gives its per-phase breakdown
    container = True
    #: extra labels for every result (e.g. {"accelerator": "tcg"})
    labels: dict[str, str] = {}
    #: where verify's I/O check finds its host directory inside the container
    scratch = "/data"
    #: runs the host's programs, not an image's: the user's command only when asked by name
    on_host = False
    #: why ``use_image`` is refused ('' for targets that override it)
    no_image_reason = "cannot run an arbitrary image"

    def __init__(self, name: str | None = None, control: bool = False) -> None:
        """``name`` overrides the class's (verify names its runtimes itself); a ``control``
        target starts its containers with every limit left out."""
        if name:
            self.name = name
        self.control = control
        #: the user's image and command (benches/user_image.UserImage), once ``use_image``d
        self.user = None
        self.ignore_failure = False
        self.last_phases: dict[str, float] = {}
        self.workdir: str | None = None
        self._verify_ids = itertools.count()

    # -- the interface -----------------------------------------------------------------------

    def version(self) -> str:
        return ""

    def available(self) -> tuple[bool, str]:
        return True, ""

    def use_image(self, image, ignore_failure: bool = False) -> str:
        """Run the user's image and command (lifecycle only) instead of busybox ``true``,
        before ``prepare``; '' or why this target cannot."""
        if not self.takes_images:
            return self.no_image_reason
        self.user, self.ignore_failure = image, ignore_failure
        return ""

    #: subclasses that can run the user's image set this
    takes_images = False

    def check_exit(self, code: int | None, detail: str = "") -> None:
        """A run's exit code: CommandFailed for the user's command (unless ignored),
        TargetError for our own workload, which must succeed."""
        if code == 0 or (self.user is not None and self.ignore_failure):
            return
        if self.user is not None:
            raise CommandFailed(code if code is not None else -1, detail)
        raise TargetError(f"container exited {code}" + (f": {detail}" if detail else ""))

    def prepare(self, workdir: str) -> None:
        self.workdir = workdir

    def start_once(self) -> float:
        return self.measure("lifecycle").wall

    def measure(self, metric: str) -> Sample:
        """One run of ``metric`` (see the module notes)."""
        if metric in self.unsupported:
            raise TargetError(f"{self.name} cannot measure {metric}: {self.unsupported[metric]}")
        return {"start_to_ready": self.ready_once, "lifecycle": self.lifecycle_once,
                "teardown": self.teardown_once}[metric]()

    def ready_once(self) -> Sample:
        raise NotImplementedError

    def lifecycle_once(self) -> Sample:
        raise NotImplementedError

    def teardown_once(self) -> Sample:
        raise NotImplementedError

    def settle(self) -> None:
        """Untimed, before every measured run (a warm pool refills here)."""

    def trace_pids(self) -> list[int]:
        """Pids besides the benchmark's own whose process trees a traced pass must watch
        (daemons that start the container, e.g. containerd)."""
        return []

    def cleanup(self) -> None:
        pass

    # -- verify: one container with limits, left running until Box.stop --------------------

    def start(self, argv: list[str], limits, scratch: str | None = None):
        """Run ``argv`` under ``limits`` (``Limits()`` for a control target); a running Box."""
        raise TargetError(f"{self.name} cannot start a container with limits")

    def check_unsupported(self, check: str) -> str:
        """Why verify's ``check`` cannot be judged on this peer ('' when it can)."""
        return ""

    def explain(self, check: str, error) -> str:
        """Why a workload failure (a box.CheckError) is this peer's own way of handling the
        limit (the check is then UNSUPPORTED with the error as evidence), or '' (an ERROR)."""
        return ""

    #: check name -> its own implementation for this peer (a VM judges memory from the guest)
    verify_checks: dict = {}

    def take_evidence(self) -> dict:
        """Evidence every result of the check just run gets (e.g. a VM's accelerator and its
        host cgroup's figures); the target forgets it once taken."""
        return {}

    def verify_name(self) -> str:
        """A unique name for verify's next container (also its cgroup's name)."""
        return f"{VERIFY_PREFIX}-{os.getpid()}-{self.name}-{next(self._verify_ids)}"

    def log_path(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}.log")

    # -- pytest-benchmark adapter ------------------------------------------------------------
    # pytest-benchmark times a function call itself, so a target splits a start into untimed
    # setup, the timed operation and untimed teardown. The default times all of start_once().

    def bench_setup(self) -> object:
        return None

    def bench_operation(self, state: object) -> object:
        return self.start_once()

    def bench_teardown(self, state: object, result: object = None) -> None:
        pass

    def describe(self) -> dict:
        return {"name": self.name, "measures": self.measures, "notes": self.notes,
                "version": safe_version(self), "unsupported": dict(self.unsupported)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def safe_version(target: Target) -> str:
    try:
        return target.version()
    except Exception as exc:  # a version probe must never stop a benchmark
        return f"unknown ({exc})"


# -- helpers ---------------------------------------------------------------------------------

def find_busybox() -> str | None:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def which(program: str) -> str | None:
    found = shutil.which(program)
    return os.path.realpath(found) if found else None


def first_line(argv: list[str], line: int = 0) -> str:
    """A line of a program's output (version probes); empty when it fails."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[line].strip() if len(lines) > line else ""


class Spawner:
    """Start a program with posix_spawn, wait for it and time it; stdio to /dev/null.

    Each program gets a process group of its own, so a Ctrl-C at the terminal reaches the
    benchmark only: a peer killed half-way through its create would leave its cgroups and
    state behind; the benchmark lets the run finish (``reap``) and cleans up.

    stderr goes to a scratch file so a failing start can say why. The file descriptors are
    opened once (outside the timed region) and closed by ``close()``.
    """

    def __init__(self, env: dict | None = None, scratch_dir: str | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        #: the Target whose ``check_exit`` judges a measured run's exit code (None: any
        #: non-zero exit is a TargetError)
        self.judge: Target | None = None
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        if scratch_dir:
            self._err = os.open(os.path.join(scratch_dir, "stderr.log"),
                                os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        else:
            self._err = self._null
        self._actions = [(os.POSIX_SPAWN_DUP2, self._null, 0),
                         (os.POSIX_SPAWN_DUP2, self._null, 1),
                         (os.POSIX_SPAWN_DUP2, self._err, 2)]

    def run(self, argv: list[str]) -> float:
        """Spawn ``argv`` (argv[0] an absolute path), wait; seconds; TargetError if it failed."""
        return self.run_sample(argv).wall

    def _reset_stderr(self) -> None:
        if self._err != self._null:
            os.ftruncate(self._err, 0)
            os.lseek(self._err, 0, os.SEEK_SET)

    def run_sample(self, argv: list[str]) -> Sample:
        """Like ``run``; also the on-CPU time of the child and the descendants it reaped."""
        self._reset_stderr()
        begin = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, self.env, file_actions=self._actions,
                             setpgroup=0)
        try:
            _, status, usage = os.wait4(pid, 0)
        except BaseException:
            reap(pid)
            raise
        end = time.perf_counter_ns()
        self._check(argv, status)
        return Sample((end - begin) / 1e9, usage.ru_utime + usage.ru_stime)

    def until_marker(self, argv: list[str], marker: str = MARKER,
                     timeout: float = 120.0) -> Sample:
        """Spawn ``argv`` with stdout on a pipe; seconds until ``marker`` is read from it.

        The wait for the process's exit afterwards is untimed; a non-zero exit still fails.
        """
        self._reset_stderr()
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, self._null, 0), (os.POSIX_SPAWN_DUP2, write_fd, 1),
                   (os.POSIX_SPAWN_DUP2, self._err, 2)]
        pid = -1
        try:
            begin = time.perf_counter_ns()
            pid = os.posix_spawn(argv[0], argv, self.env, file_actions=actions, setpgroup=0)
            os.close(write_fd)
            write_fd = -1
            end = read_marker(read_fd, marker.encode(), timeout)
            _, status = os.waitpid(pid, 0)
            pid = -1
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
            if pid > 0:
                reap(pid)
        self._check(argv, status)
        if end is None:
            raise TargetError(f"{' '.join(argv)}: no {marker!r} on stdout")
        return Sample((end - begin) / 1e9, None)

    def _check(self, argv: list[str], status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and self.judge is not None and self.judge.user is not None:
            self.judge.check_exit(code, self.stderr_text())
        elif code != 0:
            raise TargetError(f"{' '.join(argv)} exited {code}: {self.stderr_text()}")

    def stderr_text(self, limit: int = 2000) -> str:
        if self._err == self._null:
            return ""
        os.lseek(self._err, 0, os.SEEK_SET)
        return os.read(self._err, limit).decode(errors="replace").strip()

    def close(self) -> None:
        for fd in {self._null, self._err}:
            try:
                os.close(fd)
            except OSError:
                pass


def read_marker(fd: int, marker: bytes, timeout: float = 120.0) -> int | None:
    """Read ``fd`` until ``marker`` appears: perf_counter_ns at that moment, None at EOF."""
    seen = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TargetError(f"no {marker!r} within {timeout:.0f} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        seen += chunk
        if marker in seen:
            return time.perf_counter_ns()


def cpu_now() -> float:
    """On-CPU seconds of this process plus the children it reaped (rusage)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def wait_exit(pid: int, timeout: float = 60.0) -> None:
    """Block until process ``pid`` (any process, not only a child) has exited; no reaping."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise TargetError(f"process {pid} still running after {timeout:.0f} s")
    finally:
        os.close(fd)


def reap(pid: int, grace: float = 10.0) -> None:
    """Wait for a child after an interruption: let it finish (it runs ``true``), then SIGKILL.

    Killing runc or our CLI at once would leave its container behind; both forward SIGINT and
    SIGTERM to the container and clean up, so the child gets ``grace`` seconds first.
    """
    deadline = time.monotonic() + grace
    while True:  # a further Ctrl-C does not cut the grace short
        left = max(0.0, deadline - time.monotonic())
        try:
            process.kill_and_wait(pid, steps=((0, left), (SIGKILL, float("inf"))), reap=True)
            return
        except KeyboardInterrupt:
            continue
