"""The cgroup v2 device filter, without a kernel: the instruction encoder, the v1-rule model and
the generated program, decoded from its bytes and run by a small interpreter of the opcodes it
uses (ctx = struct bpf_cgroup_dev_ctx: access << 16 | type, major, minor).

The real thing (loaded, attached, a process refused) is in tests/integration/
test_cgroup_device_filter_real.py (host, cgroup2 mount of the hybrid setup) and in the v2 guest.
"""

from __future__ import annotations

import struct

import pytest

from isoinspect.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources
from isoinspect.runtime.cgroups.v2 import devices
from isoinspect.runtime.cgroups.v2.devices import (
    ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR, DeviceException, DeviceFilterError)
from isoinspect.runtime.linux import bpf

RW = ACC_READ | ACC_WRITE
VDA = (254, 0)


def run(insns: list[bpf.Insn], dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the program the kernel would run, from its encoded bytes."""
    ctx = struct.pack("<III", access << 16 | dev_type, major, minor)
    code = bpf.decode(bpf.encode(insns))
    regs = [0] * 11
    pc = steps = 0
    while True:
        steps += 1
        assert steps < 10000, "no exit"
        insn = code[pc]
        pc += 1
        cls, op, x = insn.code & 0x07, insn.code & 0xF0, insn.code & 0x08
        if insn.code == bpf.CLASS_LDX | bpf.SIZE_W | bpf.MODE_MEM:
            assert insn.src == bpf.R1, "only the context is read"
            regs[insn.dst] = struct.unpack_from("<I", ctx, insn.off)[0]
        elif cls == bpf.CLASS_ALU:
            operand = regs[insn.src] if x else insn.imm & 0xFFFFFFFF
            value = regs[insn.dst]
            value = {bpf.ALU_AND: value & operand, bpf.ALU_RSH: value >> operand,
                     bpf.ALU_MOV: operand}[op]
            regs[insn.dst] = value & 0xFFFFFFFF
        elif insn.code == bpf.CLASS_JMP | bpf.JMP_EXIT:
            return regs[bpf.R0]
        elif cls == bpf.CLASS_JMP:
            operand = regs[insn.src] if x else insn.imm
            taken = {bpf.JMP_JNE: regs[insn.dst] != operand,
                     bpf.JMP_JEQ: regs[insn.dst] == operand}[op]
            if taken:
                pc += insn.off
        else:
            raise AssertionError(f"unexpected instruction {insn}")


def verdicts(rules) -> dict[str, int]:
    prog = devices.program(devices.emulate(rules))
    cases = {
        "null rw": (DEV_CHAR, RW, 1, 3), "zero r": (DEV_CHAR, ACC_READ, 1, 5),
        "urandom r": (DEV_CHAR, ACC_READ, 1, 9), "pts/3 rw": (DEV_CHAR, RW, 136, 3),
        "vda r": (DEV_BLOCK, ACC_READ, *VDA), "vda w": (DEV_BLOCK, ACC_WRITE, *VDA),
        "vda mknod": (DEV_BLOCK, ACC_MKNOD, *VDA), "mem r": (DEV_CHAR, ACC_READ, 1, 1),
        "kmsg mknod": (DEV_CHAR, ACC_MKNOD, 1, 11), "null mknod+r": (DEV_CHAR, ACC_MKNOD | ACC_READ, 1, 3),
    }
    return {name: run(prog, *case) for name, case in cases.items()}


# ---- encoder -----------------------------------------------------------------------------------

def test_encoding_matches_the_kernel_layout():
    raw = bpf.encode([bpf.ldx_w(bpf.R2, bpf.R1, 4), bpf.jmp_imm(bpf.JMP_JNE, bpf.R4, -1, 3),
                      bpf.alu32_reg(bpf.ALU_MOV, bpf.R1, bpf.R3), bpf.exit_insn()])
    assert len(raw) == 32
    code, regs, off, imm = struct.unpack_from("<BBhi", raw, 0)
    assert (code, regs & 0xF, regs >> 4, off, imm) == (0x61, 2, 1, 4, 0)  # LDX|W|MEM
    code, regs, off, imm = struct.unpack_from("<BBhi", raw, 8)
    assert (code, regs, off, imm) == (0x55, 4, 3, -1)                      # JMP|JNE|K
    code, regs, _, _ = struct.unpack_from("<BBhi", raw, 16)
    assert (code, regs & 0xF, regs >> 4) == (0xBC, 1, 3)                   # ALU|MOV|X
    assert raw[24] == 0x95                                                  # JMP|EXIT


def test_decode_inverts_encode():
    insns = [bpf.alu32_imm(bpf.ALU_AND, bpf.R2, 0xFFFF), bpf.jmp_reg(bpf.JMP_JNE, bpf.R1, bpf.R3, 7)]
    assert bpf.decode(bpf.encode(insns)) == insns


# ---- the program -------------------------------------------------------------------------------

def test_default_rules_program_shape():
    insns = devices.program(devices.emulate(DEFAULT_DEVICE_RULES))
    # prologue: R2 = type, R3 = access, R4 = major, R5 = minor
    assert [(i.code, i.dst, i.src, i.off, i.imm) for i in insns[:6]] == [
        (0x61, 2, 1, 0, 0), (0x54, 2, 0, 0, 0xFFFF), (0x61, 3, 1, 0, 0), (0x74, 3, 0, 0, 16),
        (0x61, 4, 1, 4, 0), (0x61, 5, 1, 8, 0)]
    # deny by default: the last two instructions return 0
    assert (insns[-2].code, insns[-2].dst, insns[-2].imm) == (0xB4, bpf.R0, 0)
    assert insns[-1].code == 0x95
    # one block per exception (11 rules after "a"), each returning 1
    returns = [insns[i - 1].imm for i, insn in enumerate(insns) if insn.code == 0x95]
    assert returns == [1] * 11 + [0]
    # the block for /dev/null: type char, major 1, minor 3, no access test (rwm)
    null = devices.program(devices.emulate([("a", None, None, "rwm", False),
                                            ("c", 1, 3, "rwm", True)]))[6:]
    assert [(i.code, i.dst, i.off, i.imm) for i in null] == [
        (0x55, 2, 4, DEV_CHAR), (0x55, 4, 3, 1), (0x55, 5, 2, 3), (0xB4, 0, 0, 1), (0x95, 0, 0, 0),
        (0xB4, 0, 0, 0), (0x95, 0, 0, 0)]


def test_default_rules_allow_dockers_devices_and_refuse_the_disk():
    got = verdicts(DEFAULT_DEVICE_RULES)
    assert got == {"null rw": 1, "zero r": 1, "urandom r": 1, "pts/3 rw": 1,
                   "vda r": 0, "vda w": 0, "vda mknod": 1, "mem r": 0, "kmsg mknod": 1,
                   "null mknod+r": 1}


def test_an_added_device_rule_allows_that_device_only():
    got = verdicts(list(DEFAULT_DEVICE_RULES) + [("b", *VDA, "rw", True)])
    assert (got["vda r"], got["vda w"], got["mem r"]) == (1, 1, 0)
    read_only = verdicts(list(DEFAULT_DEVICE_RULES) + [("b", *VDA, "r", True)])
    assert (read_only["vda r"], read_only["vda w"]) == (1, 0)


def test_v1_semantics_merge_remove_and_reset():
    deny_all = ("a", None, None, "rwm", False)
    # two allows for one device merge (v1 adds access to the same exception)
    policy = devices.emulate([deny_all, ("b", 7, 0, "r", True), ("b", 7, 0, "w", True)])
    assert policy.exceptions == [DeviceException("b", 7, 0, ACC_READ | ACC_WRITE)]
    assert run(devices.program(policy), DEV_BLOCK, RW, 7, 0) == 1
    # a deny on a deny-list removes the exact exception's bits
    policy = devices.emulate([deny_all, ("c", 1, 3, "rwm", True), ("c", 1, 3, "w", False)])
    assert policy.exceptions == [DeviceException("c", 1, 3, ACC_READ | ACC_MKNOD)]
    # allow by default: a deny refuses any request sharing a bit with it
    policy = devices.emulate([("c", 1, 1, "w", False)])
    assert policy.default_allow is True
    prog = devices.program(policy)
    assert run(prog, DEV_CHAR, RW, 1, 1) == 0
    assert run(prog, DEV_CHAR, ACC_READ, 1, 1) == 1
    assert run(prog, DEV_BLOCK, ACC_WRITE, 1, 1) == 1
    # "a" resets: everything before it is forgotten
    policy = devices.emulate([deny_all, ("c", 1, 3, "rwm", True),
                              ("a", None, None, "rwm", True)])
    assert policy.default_allow is True and policy.exceptions == []
    assert run(devices.program(policy), DEV_BLOCK, RW, *VDA) == 1


def test_no_rules_allow_everything_like_a_new_v1_cgroup():
    assert run(devices.program(devices.emulate([])), DEV_BLOCK, RW, *VDA) == 1


def test_out_of_range_numbers_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        devices.emulate([("c", 1 << 31, 0, "r", True)])


def test_a_directory_that_is_not_a_cgroup_is_a_refusal(tmp_path):
    """Never a silent allow-everything: no program attached means the container must not run."""
    with pytest.raises(DeviceFilterError, match="cgroup v2 devices: cannot"):
        devices.apply(str(tmp_path), Resources(device_rules=DEFAULT_DEVICE_RULES))
    with pytest.raises(DeviceFilterError, match="cannot open"):
        devices.apply(str(tmp_path / "gone"), Resources(device_rules=DEFAULT_DEVICE_RULES))
