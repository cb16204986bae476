"""The default seccomp profile (data in the OCI format) and the one compiler: compiled program,
cache keys, start-path imports, and what the profile refuses compared with the policy it had when
it was Python code (the lists below are that policy, frozen).

The compiled program is run here by a small classic-BPF interpreter on made-up seccomp_data, so
what the filter decides is checked without root; tests/integration/test_security_real.py loads
it into the kernel.
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import random
import struct
import subprocess
import sys
import textwrap

import pytest

from isoinspect.runtime.linux import seccomp_profile as sp

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
# x86_64 syscall numbers
NR = {"read": 0, "write": 1, "openat": 257, "getpid": 39, "clone": 56, "fork": 57,
      "execve": 59, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308, "bpf": 321,
      "ptrace": 101, "personality": 135, "clone3": 435, "keyctl": 250, "reboot": 169,
      "io_uring_setup": 425, "mount_setattr": 442, "pivot_root": 155}

# The policy as it was before the profile became data (a regression oracle, not the source).
EPERM_SYSCALLS = frozenset((
    "_sysctl", "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "get_mempolicy", "init_module", "io_uring_enter", "io_uring_register",
    "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
    "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "quotactl_fd", "reboot", "request_key", "set_mempolicy", "set_mempolicy_home_node", "setns",
    "settimeofday", "stime", "swapoff", "swapon", "sysfs", "syslog", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old"))
CLONE_NAMESPACE_FLAGS = 0x7E020000
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64",
                                 reason="syscall numbers in these tests are x86_64's")


def run_bpf(program: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, args=(0,) * 6) -> int:
    """Evaluate a classic-BPF seccomp program on one seccomp_data; return its action."""
    args = tuple(args) + (0,) * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & (2**64 - 1) for a in args])
    insns = [struct.unpack("<HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    a = x = pc = 0
    mem = [0] * 16
    for _ in range(len(insns) + 1):  # classic BPF only jumps forward
        code, jt, jf, k = insns[pc]
        pc += 1
        cls, op = code & 0x07, code & 0xF0
        if cls == 0x00:  # LD
            mode = code & 0xE0
            if mode == 0x20:
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:
                a = k
            elif mode == 0x60:
                a = mem[k]
            else:
                raise AssertionError(f"unsupported LD mode {code:#x}")
        elif cls == 0x01:  # LDX
            x = mem[k] if code & 0xE0 == 0x60 else k
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            operand = x if code & 0x08 else k
            ops = {0x00: lambda: a + operand, 0x10: lambda: a - operand,
                   0x40: lambda: a | operand, 0x50: lambda: a & operand,
                   0x60: lambda: a << operand, 0x70: lambda: a >> operand,
                   0x80: lambda: -a, 0xA0: lambda: a ^ operand}
            a = ops[op]() & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            operand = x if code & 0x08 else k
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand,
                     0x40: bool(a & operand)}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return a if code & 0x18 == 0x10 else k
        else:  # MISC
            if op == 0x00:
                x = a
            else:
                a = x
    raise AssertionError("program did not return")


@pytest.fixture(scope="module")
def program() -> bytes:
    return sp.compile_default_profile()


def test_default_profile_is_a_valid_oci_section():
    section = sp.default_profile()
    sp.check(section)
    assert section["defaultAction"] == "SCMP_ACT_ALLOW"
    assert not section.get("architectures")  # native ABI only; others hit the bad-arch kill
    names = [name for rule in section["syscalls"] for name in rule["names"]]
    assert len(names) == len(set(names))


def test_profile_data_is_the_policy_it_replaced():
    rules = {tuple(rule["names"]): rule for rule in sp.default_profile()["syscalls"]}
    eperm = [rule for rule in rules.values() if not rule.get("args")
             and rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == errno.EPERM]
    assert {name for rule in eperm for name in rule["names"]} == EPERM_SYSCALLS
    assert rules[("clone3",)]["action"] == "SCMP_ACT_ERRNO"
    assert rules[("clone3",)]["errnoRet"] == errno.ENOSYS
    clone = rules[("clone",)]["args"]
    assert {(a["op"], a["index"], a["value"], a["valueTwo"]) for a in clone} == {
        ("SCMP_CMP_MASKED_EQ", 0, 1 << bit, 1 << bit) for bit in range(32)
        if CLONE_NAMESPACE_FLAGS >> bit & 1}
    assert len(rules) == 4


def test_cache_path_is_named_by_the_data_and_the_compiler(tmp_path, monkeypatch):
    data = tmp_path / "profile.json"
    data.write_bytes(open(sp.DEFAULT_PROFILE_PATH, "rb").read())
    os.utime(data, ns=(1, 1))
    first = sp.cache_path(str(tmp_path), str(data))
    assert os.path.dirname(first) == str(tmp_path)
    assert sp.cache_path(str(tmp_path), str(data)) == first
    assert sp.cache_path().startswith("/var/lib/isoinspect/seccomp/default-")
    data.write_bytes(data.read_bytes().replace(b'"errnoRet": 38', b'"errnoRet": 125'))
    os.utime(data, ns=(1, 1))  # same mtime: the size still tells
    assert sp.cache_path(str(tmp_path), str(data)) != first
    data.write_bytes(data.read_bytes().replace(b'"errnoRet": 125', b'"errnoRet": 95'))
    os.utime(data, ns=(2, 2))  # same size: the mtime tells
    assert sp.cache_path(str(tmp_path), str(data)) != first
    os.utime(data, ns=(1, 1))
    compiler = tmp_path / "compiler.py"
    compiler.write_text("# a changed compiler\n")
    monkeypatch.setattr(sp, "COMPILER_PATH", str(compiler))
    assert sp.cache_path(str(tmp_path), str(data)) != first
    section = {"defaultAction": "SCMP_ACT_ALLOW"}
    before = sp.profile_cache_path(section, str(tmp_path))
    compiler.write_text("# changed again, and longer\n")
    assert sp.profile_cache_path(section, str(tmp_path)) != before


def test_bundle_carrying_the_default_profile_gets_the_same_program(tmp_path):
    default = sp.load_default_filter_bytes(str(tmp_path / "default"))
    bundle = sp.load_filter_bytes(sp.default_profile(), str(tmp_path / "bundle"))
    assert bundle == default
    assert os.listdir(tmp_path / "bundle") != os.listdir(tmp_path / "default")  # two caches


def test_personality_blocks_cover_exactly_the_refused_values():
    rule = next(rule for rule in sp.default_profile()["syscalls"]
                if rule["names"] == ["personality"])
    assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == errno.EPERM
    assert {(arg["op"], arg["index"]) for arg in rule["args"]} == {("SCMP_CMP_MASKED_EQ", 0)}
    blocks = [(arg["value"], arg["valueTwo"]) for arg in rule["args"]]

    def hits(value):
        return sum(1 for mask, want in blocks if value & mask == want)

    rng = random.Random(7)
    samples = [rng.getrandbits(32) for _ in range(20000)]
    for allowed in PERSONALITY_ALLOWED:
        samples += [allowed, allowed - 1, allowed + 1]
    for value in samples:
        value &= 0xFFFFFFFF
        assert hits(value) == (0 if value in PERSONALITY_ALLOWED else 1), hex(value)


def test_program_shape(program):
    assert program and len(program) % 8 == 0
    assert len(program) // 8 < 4096  # BPF_MAXINSNS


@x86_64_only
@pytest.mark.parametrize("name", ["mount", "umount2", "unshare", "setns", "bpf", "ptrace",
                                  "keyctl", "reboot", "io_uring_setup", "mount_setattr",
                                  "pivot_root"])
def test_refused_syscalls_get_eperm(program, name):
    assert run_bpf(program, NR[name]) == RET_ERRNO | errno.EPERM


@x86_64_only
@pytest.mark.parametrize("name", ["read", "write", "openat", "getpid", "fork", "execve"])
def test_ordinary_syscalls_are_allowed(program, name):
    assert run_bpf(program, NR[name]) == RET_ALLOW


@x86_64_only
def test_every_x86_64_syscall_gets_what_the_old_profile_gave(program):
    """Each syscall number of the x86_64 table, with zero arguments: EPERM for the refused
    list, ENOSYS for clone3, allowed otherwise (clone and personality(0) included)."""
    seccomp = sp._import_seccomp()
    seen = 0
    for nr in range(0, 1024):
        try:
            name = seccomp.resolve_syscall(seccomp.Arch.X86_64, nr)
        except (ValueError, RuntimeError):
            continue
        name = name.decode() if isinstance(name, bytes) else name
        if not name or name.startswith("UNKNOWN"):
            continue
        seen += 1
        want = (RET_ERRNO | errno.EPERM if name in EPERM_SYSCALLS else
                RET_ERRNO | errno.ENOSYS if name == "clone3" else RET_ALLOW)
        assert run_bpf(program, nr) == want, name
    assert seen > 300


@x86_64_only
def test_clone_is_refused_only_with_namespace_flags(program):
    sigchld = 17
    assert run_bpf(program, NR["clone"], args=[sigchld]) == RET_ALLOW
    assert run_bpf(program, NR["clone"], args=[0x3D0F00]) == RET_ALLOW  # threads
    for flag in (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000,
                 0x40000000):
        assert run_bpf(program, NR["clone"], args=[flag | sigchld]) == RET_ERRNO | errno.EPERM


@x86_64_only
def test_clone3_gets_enosys(program):
    assert run_bpf(program, NR["clone3"]) == RET_ERRNO | errno.ENOSYS


@x86_64_only
def test_personality_values(program):
    for value in PERSONALITY_ALLOWED:
        assert run_bpf(program, NR["personality"], args=[value]) == RET_ALLOW
    for value in (0x0040000, 0x0400000, 0x1, 0x20009, 0xFFFFFFFE):
        assert run_bpf(program, NR["personality"], args=[value]) == RET_ERRNO | errno.EPERM


@x86_64_only
def test_x32_and_foreign_arch_are_killed(program):
    assert run_bpf(program, X32_SYSCALL_BIT | NR["getpid"]) == RET_KILL_PROCESS
    assert run_bpf(program, 20, arch=AUDIT_ARCH_I386) == RET_KILL_PROCESS


def test_load_builds_then_reuses_the_cache(tmp_path, monkeypatch):
    first = sp.load_default_filter_bytes(str(tmp_path))
    path = sp.cache_path(str(tmp_path))
    assert first and len(first) % 8 == 0
    with open(path, "rb") as handle:
        assert handle.read() == first
    info = os.stat(path)
    assert info.st_mode & 0o777 == 0o644

    def must_not_compile():
        raise AssertionError("compiled although the cache exists")

    monkeypatch.setattr(sp, "compile_default_profile", must_not_compile)
    assert sp.load_default_filter_bytes(str(tmp_path)) == first
    assert os.stat(path).st_mtime_ns == info.st_mtime_ns
    assert os.listdir(tmp_path) == [os.path.basename(path)]


@pytest.mark.parametrize("damage", ["truncate", "odd_length", "world_writable"])
def test_bad_or_untrusted_cache_is_rebuilt(tmp_path, damage):
    good = sp.load_default_filter_bytes(str(tmp_path))
    path = sp.cache_path(str(tmp_path))
    if damage == "truncate":
        open(path, "wb").close()
    elif damage == "odd_length":
        with open(path, "wb") as handle:
            handle.write(b"\x06\x00\x00\x00\x00\x00\xff\x7f" + b"xyz")
    else:
        with open(path, "wb") as handle:
            handle.write(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # "allow everything"
        os.chmod(path, 0o666)
    assert sp.load_default_filter_bytes(str(tmp_path)) == good
    with open(path, "rb") as handle:
        assert handle.read() == good
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_unwritable_cache_still_gives_the_program(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    program = sp.load_default_filter_bytes(str(blocker / "seccomp"))
    assert program == sp.compile_default_profile()


def test_concurrent_builders_leave_one_whole_file(tmp_path):
    cache, go = str(tmp_path / "cache"), str(tmp_path / "go")
    script = textwrap.dedent(f"""
        import hashlib, os, time
        from isoinspect.runtime.linux import seccomp_profile as sp
        while not os.path.exists({go!r}):
            time.sleep(0.001)
        print(hashlib.sha256(sp.load_default_filter_bytes({cache!r})).hexdigest())
    """)
    builders = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                 text=True) for _ in range(6)]
    open(go, "w").close()  # start them together
    digests = {builder.communicate(timeout=60)[0].strip() for builder in builders}
    assert all(builder.returncode == 0 for builder in builders)
    with open(sp.cache_path(cache), "rb") as handle:
        assert digests == {hashlib.sha256(handle.read()).hexdigest()}
    assert os.listdir(cache) == [os.path.basename(sp.cache_path(cache))]


def test_start_path_imports_nothing_heavy(tmp_path):
    """Importing the four modules and reading a cached program loads only these modules and
    `resource` beyond what the interpreter loads anyway (no seccomp, hashlib, ctypes...)."""
    cache = str(tmp_path)
    sp.load_default_filter_bytes(cache)
    script = textwrap.dedent(f"""
        import sys
        before = set(sys.modules)
        import isoinspect.runtime.linux.capabilities
        import isoinspect.runtime.linux.seccomp_profile as sp
        import isoinspect.runtime.linux.rlimits
        import isoinspect.runtime.linux.paths_policy
        isoinspect.runtime.linux.capabilities.parse_capabilities(["NET_ADMIN"], ["MKNOD"])
        isoinspect.runtime.linux.rlimits.parse_ulimit("nofile=10:20")
        assert sp.load_default_filter_bytes({cache!r})
        print(" ".join(sorted(set(sys.modules) - before)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    new = {name for name in out if not name.startswith("isoinspect")}
    assert new <= {"resource"}, new
