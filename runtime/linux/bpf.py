"""A small eBPF instruction encoder and the bpf(2) calls to load and attach a cgroup program.

Only what a hand-assembled cgroup device filter needs: typed instructions (``Insn``) with
constructors for the opcodes used, ``encode``/``decode`` to and from the kernel's 8-byte format,
and BPF_PROG_LOAD / BPF_PROG_ATTACH / BPF_PROG_DETACH / BPF_PROG_QUERY / BPF_PROG_GET_FD_BY_ID
through ctypes. Numbers are from include/uapi/linux/bpf.h. Without a C compiler or libbpf, a
program is a list of ``Insn``; unit tests decode it back and check the fields.

A failed load is retried once with the verifier's log on, so the error says why.
"""

from __future__ import annotations

import ctypes
import os
import struct
from isoinspect.runtime.linux.syscalls import bpf_syscall

# Instruction classes, sizes, modes, sources (linux/bpf_common.h, linux/bpf.h).
CLASS_LDX = 0x01
CLASS_ALU = 0x04      # 32-bit ALU: results are zero-extended
CLASS_JMP = 0x05
SIZE_W = 0x00         # 32-bit load
MODE_MEM = 0x60
SRC_K = 0x00          # immediate operand
SRC_X = 0x08          # register operand
ALU_AND = 0x50
ALU_RSH = 0x70
ALU_MOV = 0xB0
JMP_JA = 0x00
JMP_JEQ = 0x10
JMP_JNE = 0x50
JMP_EXIT = 0x90

# Registers: R0 is the return value, R1 the context pointer on entry.
R0, R1, R2, R3, R4, R5 = range(6)

# Commands, program and attach types (enum bpf_cmd, bpf_prog_type, bpf_attach_type).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 1 << 1

_INSN = struct.Struct("<BBhi")
_LOG_SIZE = 1 << 16


class Insn:
    """One eBPF instruction: opcode, destination and source registers, offset, immediate.

    A slotted value class rather than a dataclass: importing dataclasses costs ~14 ms, and this
    module is on the container start path on cgroup v2 hosts (see resources.py)."""

    __slots__ = ("code", "dst", "src", "off", "imm")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0,
                 imm: int = 0) -> None:
        self.code, self.dst, self.src, self.off, self.imm = code, dst, src, off, imm

    def _key(self) -> tuple[int, int, int, int, int]:
        return (self.code, self.dst, self.src, self.off, self.imm)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Insn) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Insn(code={self.code:#04x}, dst={self.dst}, src={self.src}, off={self.off}, "
                f"imm={self.imm})")


def ldx_w(dst: int, src: int, off: int) -> Insn:
    """dst = *(u32 *)(src + off)"""
    return Insn(CLASS_LDX | SIZE_W | MODE_MEM, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> Insn:
    """dst = (u32)(dst <op> imm), e.g. ALU_AND, ALU_RSH, ALU_MOV."""
    return Insn(CLASS_ALU | op | SRC_K, dst, 0, 0, imm)


def alu32_reg(op: int, dst: int, src: int) -> Insn:
    """dst = (u32)(dst <op> src)"""
    return Insn(CLASS_ALU | op | SRC_X, dst, src)


def jmp_imm(op: int, dst: int, imm: int, off: int) -> Insn:
    """if (dst <op> imm) skip ``off`` instructions (64-bit compare, imm sign-extended)."""
    return Insn(CLASS_JMP | op | SRC_K, dst, 0, off, imm)


def jmp_reg(op: int, dst: int, src: int, off: int) -> Insn:
    """if (dst <op> src) skip ``off`` instructions."""
    return Insn(CLASS_JMP | op | SRC_X, dst, src, off)


def exit_insn() -> Insn:
    """return R0"""
    return Insn(CLASS_JMP | JMP_EXIT)


def encode(insns: list[Insn]) -> bytes:
    """The kernel's format: u8 code, u8 dst (low nibble) | src << 4, s16 off, s32 imm."""
    return b"".join(_INSN.pack(i.code, (i.src << 4) | i.dst, i.off, i.imm) for i in insns)


def decode(raw: bytes) -> list[Insn]:
    """Inverse of ``encode``."""
    return [Insn(code, regs & 0x0F, regs >> 4, off, imm)
            for code, regs, off, imm in _INSN.iter_unpack(raw)]


# ---- bpf(2) ----------------------------------------------------------------------------------

class _LoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


class _AttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _QueryAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32)]


class _GetFdAttr(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


def _call(cmd: int, attr: ctypes.Structure, what: str) -> int:
    return bpf_syscall(cmd, ctypes.addressof(attr), ctypes.sizeof(attr), what)


def prog_load(prog_type: int, insns: list[Insn], name: str = "",
              expected_attach_type: int = 0, license: str = "GPL") -> int:
    """Load a program; return its fd (close-on-exec). On failure the OSError's message carries
    the last lines of the verifier's log."""
    code = encode(insns)
    code_buf = ctypes.create_string_buffer(code, len(code))
    license_buf = ctypes.create_string_buffer(license.encode())
    attr = _LoadAttr(prog_type=prog_type, insn_cnt=len(insns),
                     insns=ctypes.addressof(code_buf), license=ctypes.addressof(license_buf),
                     prog_name=name.encode()[:15], expected_attach_type=expected_attach_type)
    try:
        return _call(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as first:
        if first.errno not in (13, 22):  # EACCES / EINVAL: the verifier has something to say
            raise
        log = ctypes.create_string_buffer(_LOG_SIZE)
        attr.log_level, attr.log_size, attr.log_buf = 1, _LOG_SIZE, ctypes.addressof(log)
        try:
            return _call(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
        except OSError as err:
            lines = log.value.decode(errors="replace").strip().splitlines()
            detail = f" (verifier: {' | '.join(lines[-3:])})" if lines else ""
            raise OSError(err.errno, f"{err.strerror}{detail}") from None


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    """Attach a loaded program to a cgroup directory fd."""
    _call(BPF_PROG_ATTACH, _AttachAttr(target_fd, prog_fd, attach_type, flags),
          "bpf(BPF_PROG_ATTACH)")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    """Detach one program (given by an fd of it) from a cgroup directory fd."""
    _call(BPF_PROG_DETACH, _AttachAttr(target_fd, prog_fd, attach_type),
          "bpf(BPF_PROG_DETACH)")


def prog_query(target_fd: int, attach_type: int, capacity: int = 64) -> list[int]:
    """Ids of the programs attached directly to a cgroup for ``attach_type`` (a cgroup holds at
    most 64 per type)."""
    ids = (ctypes.c_uint32 * capacity)()
    attr = _QueryAttr(target_fd=target_fd, attach_type=attach_type,
                      prog_ids=ctypes.addressof(ids), prog_cnt=capacity)
    _call(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    return list(ids[:attr.prog_cnt])


def prog_fd_by_id(prog_id: int) -> int:
    """An fd for a loaded program, from its id (as listed by ``prog_query``)."""
    return _call(BPF_PROG_GET_FD_BY_ID, _GetFdAttr(prog_id=prog_id),
                 "bpf(BPF_PROG_GET_FD_BY_ID)")


def open_dir(path: str) -> int:
    """An O_RDONLY|O_DIRECTORY fd of a cgroup directory, the target of attach/query/detach."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
