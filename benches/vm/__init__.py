"""QEMU guest harness: a Debian kernel with pure cgroup v2, the host's project and Python shared in.

See qemu.py (``GuestVM.run``, ``boot_time``), kernel.py (apt download + cache) and initramfs.py.
"""

from isoinspect.benches.vm.kernel import GuestKernel, VMError, ensure_kernel
from isoinspect.benches.vm.qemu import GuestVM, VMResult, boot_time

__all__ = ["GuestKernel", "GuestVM", "VMError", "VMResult", "boot_time", "ensure_kernel"]
