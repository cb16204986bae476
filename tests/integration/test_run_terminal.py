"""`run -it` and `exec -it` on a real pseudo-terminal driven by the test, as a user's shell
would be: raw mode, window size (set before and changed while running), exit code, and the
caller's terminal attributes restored afterwards."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Driven:
    """The CLI running with a pty we hold as its controlling terminal."""

    def __init__(self, iso, *args: str) -> None:
        self.master, self.slave = pty.openpty()
        _set_size(self.slave, 31, 97)
        self.before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([iso.cli, *args], env=iso.env, stdin=self.slave,
                                     stdout=self.slave, stderr=self.slave,
                                     start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        self.seen = b""

    def expect(self, pattern: bytes, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.seen)
            if found:
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    pass

    def send(self, text: bytes) -> None:
        os.write(self.master, text)

    def resize(self, rows: int, cols: int) -> None:
        _set_size(self.slave, rows, cols)
        os.kill(self.proc.pid, signal.SIGWINCH)

    def finish(self) -> int:
        code = self.proc.wait(timeout=20)
        after = termios.tcgetattr(self.slave)
        os.close(self.master)
        os.close(self.slave)
        assert after == self.before, "the caller's terminal was not restored"
        return code


def _session(term: Driven) -> None:
    term.expect(rb"[#$] ")
    term.send(b"echo $((6*7)); stty size; tty\r")
    term.expect(rb"42\r\n31 97\r\n/dev/pts/\d+")
    term.resize(40, 120)
    time.sleep(0.2)
    term.send(b"stty size\r")
    term.expect(rb"40 120\r\n")
    term.send(b"sleep 30\r")
    time.sleep(0.3)
    term.send(b"\x03")  # Ctrl-C as a byte: the container's terminal turns it into SIGINT
    term.send(b"echo after-$?\r")
    term.expect(rb"after-130")
    term.send(b"exit 3\r")


def test_run_it_is_a_real_terminal(iso):
    term = Driven(iso, "run", "-it", "--rm", "--network", "none", "busybox", "sh")
    _session(term)
    assert term.finish() == 3
    assert iso("ps", "-aq").stdout == ""


def test_ctrl_d_ends_the_shell(iso):
    term = Driven(iso, "run", "-it", "--rm", "--network", "none", "busybox", "sh")
    term.expect(rb"[#$] ")
    term.send(b"\x04")
    assert term.finish() == 0


def test_exec_it_is_a_real_terminal(iso):
    iso("run", "-d", "--name", "tty-exec", "--network", "none", "busybox", "sleep", "60",
        check=True)
    try:
        term = Driven(iso, "exec", "-it", "tty-exec", "sh")
        _session(term)
        assert term.finish() == 3
    finally:
        iso("rm", "-f", "tty-exec")


def test_t_alone_gives_a_terminal_without_input(iso):
    result = iso("run", "-t", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "tty; exit 4")
    assert result.returncode == 4
    assert re.match(r"/dev/pts/\d+\n", result.stdout), result.stdout  # text mode: \r\n read as \n


def test_i_alone_keeps_stdin_without_a_terminal(iso):
    result = iso("run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "cat; tty || true", input="piped\n")
    assert result.stdout == "piped\nnot a tty\n"


def test_it_refuses_input_that_is_not_a_terminal(iso):
    result = iso("run", "-it", "--rm", "busybox", "true", input="")
    assert result.returncode == 1
    assert "the input device is not a TTY" in result.stderr
    assert iso("ps", "-aq").stdout == ""
