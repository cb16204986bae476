"""Every process that enters a container does so the same way (runtime/child.py ``enter``).

Two defects the twin paths had, fixed once by sharing the last steps:
- An ignored signal stays ignored across exec, and a blocked one blocked: the command of
  `isoinspect run` and `exec` started with Python's SIGPIPE and SIGXFSZ ignored (SigIgn
  0x1001000), so ``yes | head -1`` never ended by SIGPIPE, plus whatever the caller's callers
  ignored or blocked (a CI runner's chain ignored signal 32). Only the OCI path reset
  SIGPIPE/SIGXFSZ, and nothing reset the rest or the mask.
- Descriptors the caller of `isoinspect run` / `exec` left open without close-on-exec (a shell,
  a benchmark harness, a CI runner) reached the container's command. Only the OCI path closed
  them.
Docker (runc): the command starts with every signal at its default (SigIgn all zero), none
blocked, and with only 0/1/2 (plus --preserve-fds) open, for `docker run` and `docker exec`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

DEFAULT_DISPOSITIONS = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000"
PROBE = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]


def _careless_caller() -> None:
    """The CLI's parent ignored SIGHUP and SIGUSR1 and blocked SIGUSR2 (as nohup, a shell or
    a CI runner may): the container's command must not inherit any of it."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})


def _cli(iso, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([iso.cli, *args], env=iso.env, capture_output=True, text=True,
                          timeout=60, preexec_fn=_careless_caller)


def _running(iso, name: str) -> None:
    """A detached container (`run -d` returns once its command has been exec'd)."""
    iso("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60", check=True)
    assert json.loads(iso("inspect", name, check=True).stdout)[0]["State"]["Running"]


def test_run_and_exec_commands_start_with_default_signal_dispositions(iso):
    run = _cli(iso, "run", "--rm", "--network", "none", "busybox", *PROBE)
    assert (run.returncode, run.stdout.strip()) == (0, DEFAULT_DISPOSITIONS), run.stderr
    _running(iso, "isoinspect-sigs")
    exec_ = _cli(iso, "exec", "isoinspect-sigs", *PROBE)
    assert (exec_.returncode, exec_.stdout.strip()) == (0, DEFAULT_DISPOSITIONS), exec_.stderr
    # What the ignored SIGPIPE broke: the writer of a closed pipe must die of it (141).
    piped = iso("exec", "isoinspect-sigs", "sh", "-c", "(yes; echo $? >&2) | head -c1",
                check=True)
    assert piped.stderr.strip() == "141"  # 128 + SIGPIPE; with it ignored: 1 (write error)


def _with_leaked_fd(iso, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI with descriptor 97 open and inheritable (as a careless caller would)."""
    fd = os.open("/proc/self/status", os.O_RDONLY)
    os.dup2(fd, 97, inheritable=True)
    os.close(fd)
    try:
        return subprocess.run([iso.cli, *args], env=iso.env, capture_output=True, text=True,
                              timeout=60, pass_fds=(97,))
    finally:
        os.close(97)


def test_inherited_descriptors_do_not_reach_run_or_exec_commands(iso):
    probe = "if [ -e /proc/$$/fd/97 ]; then echo leaked; else echo closed; fi"
    run = _with_leaked_fd(iso, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                          probe)
    assert (run.returncode, run.stdout.strip()) == (0, "closed"), run.stderr
    _running(iso, "isoinspect-fds")
    exec_ = _with_leaked_fd(iso, "exec", "isoinspect-fds", "sh", "-c", probe)
    assert (exec_.returncode, exec_.stdout.strip()) == (0, "closed"), exec_.stderr
