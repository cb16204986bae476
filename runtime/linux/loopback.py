"""Bring up ``lo`` in a fresh network namespace without importing socket (slow to import).

Docker's ``--network none`` containers have a working loopback; a new netns starts with lo down.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_AF_INET, _SOCK_DGRAM, _SOCK_CLOEXEC = 2, 2, 0o2000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS = 0x8913, 0x8914
_IFF_UP = 0x1


class _IfReq(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 16), ("flags", ctypes.c_short),
                ("pad", ctypes.c_char * 22)]


def bring_up_loopback() -> None:
    """Set IFF_UP on lo in the caller's network namespace."""
    fd = _libc.socket(_AF_INET, _SOCK_DGRAM | _SOCK_CLOEXEC, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"socket: {os.strerror(err)}")
    try:
        req = _IfReq(b"lo", 0)
        for request in (_SIOCGIFFLAGS, _SIOCSIFFLAGS):
            if request == _SIOCSIFFLAGS:
                req.flags |= _IFF_UP
            if _libc.ioctl(fd, ctypes.c_ulong(request), ctypes.byref(req)) < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"ioctl(lo): {os.strerror(err)}")
    finally:
        os.close(fd)
