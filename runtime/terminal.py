"""The caller's side of `run -t` / `exec -t`: a pseudo-terminal relayed to the caller's own.

The container's process takes a new terminal from the container's devpts and sends its master
back on a socket (runtime/oci/console.py, the OCI console-socket protocol). Here, as Docker's
CLI does: with -i the caller's terminal goes into raw mode (so Ctrl-C, Ctrl-D and every other
key reach the container's line discipline as bytes, exactly as on a real terminal), bytes are
copied both ways until the container's side of the terminal is closed, SIGWINCH copies the
caller's window size onto the master (the kernel then signals the container's foreground
process group), and the caller's terminal attributes are restored on the way out.
Only imported for -t: a plain `run` never loads it.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import termios

_CHUNK = 65536


class TerminalError(Exception):
    """The container's side never sent its terminal."""


def window_size(fd: int | None) -> dict | None:
    """{"height", "width"} of the terminal at ``fd`` (None when there is none)."""
    import fcntl
    import struct

    if fd is None:
        return None
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return {"height": rows, "width": cols} if rows and cols else None


def caller_terminal() -> int | None:
    """The caller's terminal descriptor for window sizes: stdin, else stdout, if a tty."""
    for fd in (0, 1):
        if os.isatty(fd):
            return fd
    return None


def preload() -> None:
    """Modules the container's process needs after pivot_root (the host's files are gone)."""
    import array  # noqa: F401
    import fcntl  # noqa: F401

    from isoinspect.runtime.oci import console  # noqa: F401


def console_pair() -> tuple[socket.socket, socket.socket]:
    """(ours, theirs): the container's process sends its terminal's master on ``theirs``."""
    preload()
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)


def receive_master(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise TerminalError("the container did not send its terminal")
    os.set_inheritable(fds[0], False)
    return fds[0]


class RawMode:
    """The caller's terminal in raw mode for the block; its attributes restored after."""

    def __init__(self, fd: int | None) -> None:
        self.fd, self.saved = fd, None

    def __enter__(self) -> "RawMode":
        if self.fd is not None and os.isatty(self.fd):
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def relay(master: int, in_fd: int | None, out_fd: int, size_fd: int | None) -> None:
    """Copy the caller's input to the terminal and its output back until the container's
    side closes (EIO/EOF on the master); follow the caller's window size on SIGWINCH."""
    from isoinspect.runtime.oci.console import set_size

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous_wakeup = signal.set_wakeup_fd(wake_w)
    previous = signal.signal(signal.SIGWINCH, lambda *_: None)
    try:
        size = window_size(size_fd)
        if size:
            set_size(master, size["height"], size["width"])
        readers = [master, wake_r] + ([in_fd] if in_fd is not None else [])
        while True:
            ready, _, _ = select.select(readers, [], [])
            if wake_r in ready:
                _drain(wake_r)
                size = window_size(size_fd)
                if size:
                    set_size(master, size["height"], size["width"])
            if in_fd is not None and in_fd in ready:
                data = os.read(in_fd, _CHUNK)
                if data:
                    _write_all(master, data)
                else:  # the caller's input ended: nothing more to send
                    readers.remove(in_fd)
                    in_fd = None
            if master in ready:
                try:
                    data = os.read(master, _CHUNK)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    return
                _write_all(out_fd, data)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        signal.set_wakeup_fd(previous_wakeup)
        os.close(wake_r)
        os.close(wake_w)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError as exc:
            if exc.errno == errno.EIO:  # the terminal went away under us
                return
            raise


def attach(master: int, interactive: bool) -> None:
    """Relay ``master`` to the caller (raw mode with -i) until the container's side closes."""
    in_fd = 0 if interactive else None
    with RawMode(in_fd):
        relay(master, in_fd, 1, caller_terminal())


def check_input(tty: bool, interactive: bool) -> None:
    """Docker's refusal: -it needs the caller's stdin to be a terminal."""
    if tty and interactive and not os.isatty(0):
        from isoinspect.runtime.errors import IsoinspectError
        raise IsoinspectError("the input device is not a TTY", exit_code=1)


def run_on_terminal(runtime, record, interactive: bool, forwarder) -> int:
    """`run -t`: start ``record`` on a new terminal, relay it, return the exit code."""
    ours, theirs = console_pair()
    try:
        try:
            started = runtime.start(record, console_fd=theirs.fileno(),
                                    console_size=window_size(caller_terminal()))
        finally:
            theirs.close()
        forwarder.attach(started.pid)
        try:
            master = receive_master(ours)
        except BaseException:
            from isoinspect.runtime.process import send_signal
            send_signal(started.pid, signal.SIGKILL)
            runtime.wait_child(started)
            raise
    finally:
        ours.close()
    try:
        attach(master, interactive)
    finally:
        os.close(master)
    return runtime.wait_child(started, forwarder)
