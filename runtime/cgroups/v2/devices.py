"""v2 devices: cgroup v2 has no devices.allow/deny files; the allow-list is an eBPF program of
type BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup (BPF_CGROUP_DEVICE), as runc
and crun do. The kernel runs it on every mknod and open of a device node by a process in the
cgroup: return 1 allows, 0 refuses with EPERM.

The same (type, major, minor, access, allow) rules the v1 driver writes to devices.allow/deny are
first replayed through a model of the v1 controller (``emulate``: an "a" rule resets the default
and clears the exceptions; an allow/deny rule adds an exception or removes an exact one), so both
drivers mean the same thing by the same rules. ``program`` turns that policy into instructions;
``apply`` loads and attaches it (before the container's process joins the cgroup), replacing a
program this driver attached earlier. The attachment holds the program, so its fd is closed at
once; rmdir of the cgroup frees both.

A kernel that cannot load or attach the program (no CONFIG_CGROUP_BPF) is a refusal, never a
silent allow-everything.
"""

from __future__ import annotations

import os

from isoinspect.runtime.errors import IsoinspectError

# runtime/linux/bpf.py (ctypes, struct) is imported where used: importing a cgroup driver stays
# free of non-project modules (tests/unit/test_cgroups_fs.py).

NAME = "devices"

# bpf_cgroup_dev_ctx.access_type = access << 16 | type (linux/bpf.h BPF_DEVCG_*).
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_MAX_NUMBER = 0x7FFFFFFF  # compared as a sign-extended 32-bit immediate


class DeviceFilterError(IsoinspectError):
    """The device allow-list could not be installed; the container must not start without it."""


class DeviceException:
    """One exception to the default: a device type ("b"/"c"), major and minor (None: any) and the
    access bits (ACC_*) it covers."""

    __slots__ = ("kind", "major", "minor", "access")

    def __init__(self, kind: str, major: int | None, minor: int | None, access: int) -> None:
        self.kind, self.major, self.minor, self.access = kind, major, minor, access

    def key(self) -> tuple[str, int | None, int | None]:
        return (self.kind, self.major, self.minor)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DeviceException)
                and (self.key(), self.access) == (other.key(), other.access))

    def __repr__(self) -> str:
        return f"DeviceException({self.kind!r}, {self.major}, {self.minor}, access={self.access})"


class DevicePolicy:
    """The v1 controller's state after a rule list: a default and ordered exceptions to it."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool, exceptions: list[DeviceException]) -> None:
        self.default_allow = default_allow
        self.exceptions = exceptions

    def __repr__(self) -> str:
        return f"DevicePolicy(default_allow={self.default_allow}, {self.exceptions!r})"


def access_bits(access: str) -> int:
    """"rwm" -> ACC_READ | ACC_WRITE | ACC_MKNOD."""
    bits = 0
    for letter in access:
        bits |= _ACCESS[letter]
    return bits


def emulate(rules) -> DevicePolicy:
    """Replay rules the way cgroup v1's devices controller applies them to a new cgroup (which
    starts allowing everything): the resulting default and exceptions."""
    default_allow = True
    exceptions: list[DeviceException] = []
    for kind, major, minor, access, allow in rules:
        if kind == "a":
            default_allow, exceptions = allow, []
            continue
        for number in (major, minor):
            if number is not None and number > _MAX_NUMBER:
                raise ValueError(f"devices: major/minor {number} out of range")
        rule = DeviceException(kind, major, minor, access_bits(access))
        if allow == default_allow:  # e.g. allow while allowing by default: remove an exception
            for existing in exceptions:
                if existing.key() == rule.key():
                    existing.access &= ~rule.access
            exceptions = [e for e in exceptions if e.access]
            continue
        same = next((e for e in exceptions if e.key() == rule.key()), None)
        if same is not None:
            same.access |= rule.access
        else:
            exceptions.append(rule)
    return DevicePolicy(default_allow, exceptions)


def program(policy: DevicePolicy) -> list:
    """The filter: load the context into R2 (type), R3 (access), R4 (major), R5 (minor); one
    block per exception that falls through to the next on a mismatch and otherwise returns the
    exception's verdict; the default at the end.

    As in v1, on a deny-by-default policy an exception matches when it covers every requested
    access bit; on an allow-by-default one when it shares any of them.
    """
    from isoinspect.runtime.linux import bpf

    insns = [bpf.ldx_w(bpf.R2, bpf.R1, 0), bpf.alu32_imm(bpf.ALU_AND, bpf.R2, 0xFFFF),
             bpf.ldx_w(bpf.R3, bpf.R1, 0), bpf.alu32_imm(bpf.ALU_RSH, bpf.R3, 16),
             bpf.ldx_w(bpf.R4, bpf.R1, 4), bpf.ldx_w(bpf.R5, bpf.R1, 8)]
    verdict = 0 if policy.default_allow else 1
    for exception in policy.exceptions:
        insns += _block(exception, covers=not policy.default_allow, verdict=verdict)
    insns += [bpf.alu32_imm(bpf.ALU_MOV, bpf.R0, 1 if policy.default_allow else 0),
              bpf.exit_insn()]
    return insns


def _block(exception: DeviceException, covers: bool, verdict: int) -> list:
    """Tests that each jump past the block when the exception does not apply, then the verdict.
    Jumps are made with offset 0 and pointed at the block's end once its length is known."""
    from isoinspect.runtime.linux import bpf

    block = [bpf.jmp_imm(bpf.JMP_JNE, bpf.R2, _TYPES[exception.kind], 0)]
    if exception.access != ACC_ALL:
        block += [bpf.alu32_reg(bpf.ALU_MOV, bpf.R1, bpf.R3),
                  bpf.alu32_imm(bpf.ALU_AND, bpf.R1, exception.access)]
        # covers: skip if (access & rule) != access; shares: skip if (access & rule) == 0
        block.append(bpf.jmp_reg(bpf.JMP_JNE, bpf.R1, bpf.R3, 0) if covers
                     else bpf.jmp_imm(bpf.JMP_JEQ, bpf.R1, 0, 0))
    if exception.major is not None:
        block.append(bpf.jmp_imm(bpf.JMP_JNE, bpf.R4, exception.major, 0))
    if exception.minor is not None:
        block.append(bpf.jmp_imm(bpf.JMP_JNE, bpf.R5, exception.minor, 0))
    block += [bpf.alu32_imm(bpf.ALU_MOV, bpf.R0, verdict), bpf.exit_insn()]
    for index, insn in enumerate(block):
        if insn.code & 0x07 == bpf.CLASS_JMP and insn.code != bpf.CLASS_JMP | bpf.JMP_EXIT:
            insn.off = len(block) - index - 1
    return block


# ---- the controller interface -------------------------------------------------------------

def needed(res) -> bool:
    return res.device_rules is not None


def apply(directory: str, res) -> list[str]:
    """Load the filter for ``res.device_rules`` and attach it to ``directory`` (replacing the one
    attached before, if any); DeviceFilterError if the kernel cannot."""
    from isoinspect.runtime.linux import bpf

    insns = program(emulate(res.device_rules))
    step = "open the cgroup"
    try:
        dir_fd = bpf.open_dir(directory)
    except OSError as err:
        raise DeviceFilterError(f"cgroup v2 devices: cannot open {directory}: "
                                f"{err.strerror}") from None
    try:
        step = "list the device programs attached to"
        previous = bpf.prog_query(dir_fd, bpf.BPF_CGROUP_DEVICE)
        step = "load the device filter for"
        prog_fd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, insns, "isoinspect_dev",
                                bpf.BPF_CGROUP_DEVICE)
        try:
            step = "attach the device filter to"
            bpf.prog_attach(dir_fd, prog_fd, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
        finally:
            os.close(prog_fd)
        step = "detach the previous device filter from"
        for prog_id in previous:
            old_fd = bpf.prog_fd_by_id(prog_id)
            try:
                bpf.prog_detach(dir_fd, old_fd, bpf.BPF_CGROUP_DEVICE)
            finally:
                os.close(old_fd)
    except OSError as err:
        raise DeviceFilterError(f"cgroup v2 devices: cannot {step} {directory}: "
                                f"{err.strerror or err}{_hint(err.errno)}") from None
    finally:
        os.close(dir_fd)
    return []


def _hint(errno_value: int | None) -> str:
    if errno_value == 38:  # ENOSYS
        return " (kernel without CONFIG_BPF_SYSCALL: no device allow-list possible on cgroup v2)"
    if errno_value == 22:  # EINVAL
        return (" (kernel without CONFIG_CGROUP_BPF? cgroup v2 needs it for the device "
                "allow-list; refusing to run without one)")
    if errno_value == 1:  # EPERM
        return " (needs CAP_SYS_ADMIN/CAP_BPF; a parent cgroup may forbid attaching)"
    return ""


def attached(directory: str) -> list[int] | None:
    """Ids of the device programs attached directly to ``directory``; None if it is gone or the
    kernel cannot say."""
    from isoinspect.runtime.linux import bpf

    try:
        dir_fd = bpf.open_dir(directory)
    except OSError:
        return None
    try:
        return bpf.prog_query(dir_fd, bpf.BPF_CGROUP_DEVICE)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
