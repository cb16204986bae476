"""Terminals: a pty whose master goes to the caller's console socket (runc's protocol: the
pty's name as payload, the master descriptor as SCM_RIGHTS)."""

from __future__ import annotations

import os


def open_pty(size: dict | None = None) -> tuple[int, int]:
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    if size:
        set_size(master, int(size.get("height", 0)), int(size.get("width", 0)))
    return master, slave


def set_size(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios
    if rows and cols:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def send_master(socket_path: str, master: int) -> None:
    import array  # noqa: F401  (for send_on, loaded before the root changes)
    import socket

    name = "/dev/ptmx"  # what runc sends: the master's name
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path)
        send_on(sock, master, name)


def connect(socket_path: str):
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    return sock


def send_on(sock, master: int, name: str = "/dev/ptmx") -> None:
    import array
    import socket
    fds = array.array("i", [master])
    sock.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])


def send_fd(sock_fd: int, master: int, name: str = "/dev/ptmx") -> None:
    """send_on for a raw socket descriptor (the container's init has no socket object)."""
    import socket
    sock = socket.socket(fileno=sock_fd)
    try:
        send_on(sock, master, name)
    finally:
        sock.detach()


def become_terminal(sock_fd: int, size: dict | None = None) -> str:
    """In the process that is to own the terminal, inside the container: a pty from the
    container's /dev/ptmx (its devpts, so `tty` names it), the master sent on the console
    socket (then closed), the slave as stdio and controlling terminal. Returns its name."""
    import fcntl
    import termios

    master, slave = open_pty(size)
    name = os.ttyname(slave)
    send_fd(sock_fd, master)
    os.close(sock_fd)
    os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return name
