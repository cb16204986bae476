"""pyroute2's IPRoute, imported without ``pyroute2/__init__`` (bridges, listings, gc, doctor).

``import pyroute2`` loads its whole object database (asyncio, sqlite, multiprocessing): about
110 ms, more than a container start. The netlink classes we use do not need it, so the packages
are registered bare first, which leaves about 20 ms. A container start does not use it at all
(rtnetlink.py speaks the few messages it needs); bridges, listings, gc and doctor do.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from isoinspect.runtime.errors import IsoinspectError


def _import_iproute():
    if "pyroute2.iproute.linux" not in sys.modules and "pyroute2" not in sys.modules:
        import importlib.util
        import types

        spec = importlib.util.find_spec("pyroute2")
        if spec is None:  # the fast launcher runs without site-packages: add the system's
            import site  # (not site.main(): its .pth processing costs ~10-30 ms)

            sys.path += [p for p in site.getsitepackages([sys.base_prefix])
                         if p not in sys.path]
            spec = importlib.util.find_spec("pyroute2")
        if spec is None:
            raise IsoinspectError("bridge networking needs pyroute2 (apt install "
                                  "python3-pyroute2), or use --network none")
        # Bare packages: pyroute2/__init__ and pyroute2/iproute/__init__ import the object
        # database and every API; pyroute2.lab is a docs helper that imports unittest.mock.
        for name, folder in (("pyroute2", ""), ("pyroute2.iproute", "iproute")):
            package = types.ModuleType(name)
            package.__path__ = [os.path.join(spec.submodule_search_locations[0], folder)
                                .rstrip("/")]
            sys.modules[name] = package
        lab = types.ModuleType("pyroute2.lab")
        lab.LAB_API = type("LAB_API", (), {})
        sys.modules.setdefault("pyroute2.lab", lab)
    with _no_platform_probes():
        from pyroute2.iproute.linux import IPRoute

    return IPRoute


@contextmanager
def _no_platform_probes():
    """pyroute2.config calls platform.uname() and architecture(), which spawn ``uname -p``
    and ``file``: two processes (10-150 ms) on the start path. Answer from os.uname()."""
    import collections
    import platform
    import struct

    Uname = collections.namedtuple("Uname", "system node release version machine processor")
    saved = platform.uname, platform.architecture
    platform.uname = lambda: Uname(*os.uname(), "")
    platform.architecture = lambda *args, **kwargs: (f"{struct.calcsize('P') * 8}bit", "ELF")
    try:
        yield
    finally:
        platform.uname, platform.architecture = saved


def iproute():
    """An IPRoute socket in this process's network namespace."""
    return _import_iproute()()
