"""Seccomp profiles in the OCI format (``linux.seccomp``) -> classic BPF, compiled once, cached.

One compiler for both kinds of profile: the default one (``seccomp_default.json`` next to this
module, used by ``isoinspect run``, build and the warm pool) and the one an OCI bundle carries.
A bundle that carries the default profile therefore gets the very same program.

The default profile is Docker's policy turned around, for a container without extra
capabilities: everything is allowed except what Docker's profile refuses to such a container,
which gets EPERM (mount, unshare, setns, module loading, kexec, bpf, perf_event_open, keyrings,
clock setting, ...), plus:
- clone with any CLONE_NEW* flag (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET,
  0x7E020000): EPERM, one masked condition per flag (Docker allows clone only when
  ``flags & 0x7E020000 == 0``). s390 swaps clone's first two arguments: there the conditions
  are moved to argument 1 when the profile is loaded (Docker does it with an arch include);
- clone3: ENOSYS (errnoRet 38), so libc falls back to clone, whose flags a filter can see;
- personality: only PER_LINUX 0x0, PER_LINUX32 0x8, UNAME26 0x20000, 0x20008 and the query
  0xffffffff pass. The data lists the refused values as masked blocks (value = mask,
  valueTwo = block start, low 32 bits only, as the kernel reads it): OCI conditions on one
  argument are ORed, so "none of these" has to be a cover of the complement;
- ptrace, kcmp, process_vm_readv/writev and io_uring are refused (Docker allows the first ones
  on kernels >= 4.8; io_uring as in moby 25). Docker lifts some refusals when a capability is
  added (CAP_SYS_ADMIN: mount, unshare...); this profile does not: use no seccomp for that.

Compiling follows runc: rules whose action equals the default are dropped; conditions on
different arguments of one entry are ANDed in one rule; several conditions on the same argument
become one rule each (ORed). Names this libseccomp or architecture does not know are skipped.
With no ``architectures`` only the native ABI is allowed through. A syscall of an ABI the filter
does not list (x32 or i386 on x86_64 for the default profile) kills the process (a deny-list
names native numbers only, so other ABIs must not get through).

Cache: programs are cached as raw BPF files, one per profile and compiler. On the start path
(``load_default_filter_bytes``) the key costs two ``stat`` calls and no import: it is the size
and mtime of the profile data and of this module, so any edit or reinstall of either gives a
new file and a stale program is never loaded. Bundle profiles are keyed by the SHA-256 of their
canonical JSON plus the same compiler stamp. libseccomp (Debian's ``seccomp`` module), json and
hashlib are imported only to build. Cached bytes are for the architecture that built them (the
cache directory is per host); read them *before* pivot_root: the cache is on the host.
"""

from __future__ import annotations

import os

from isoinspect.runtime.fsutil import write_atomic

DEFAULT_CACHE_DIR = "/var/lib/isoinspect/seccomp"
COMPILER_PATH = os.path.abspath(__file__)
DEFAULT_PROFILE_PATH = os.path.join(os.path.dirname(COMPILER_PATH), "seccomp_default.json")

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
           "SCMP_ACT_NOTIFY")
OPERATORS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE",
             "SCMP_CMP_EQ": "EQ", "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT",
             "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
ARCHES = {"SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
          "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS",
          "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
          "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC",
          "SCMP_ARCH_PPC64": "PPC64", "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390",
          "SCMP_ARCH_S390X": "S390X", "SCMP_ARCH_PARISC": "PARISC",
          "SCMP_ARCH_PARISC64": "PARISC64", "SCMP_ARCH_RISCV64": "RISCV64"}
EPERM = 1


class SeccompError(ValueError):
    """A profile this compiler cannot take (the OCI layer reports it as a config error)."""


# ----------------------------------------------------------------------------- profiles

def check(section: dict) -> None:
    """Validate the shape of a profile (no libseccomp needed); raises SeccompError."""
    if not isinstance(section, dict):
        raise SeccompError("must be an object")
    if section.get("defaultAction") not in ACTIONS:
        raise SeccompError(f"unknown defaultAction {section.get('defaultAction')!r}")
    for arch in section.get("architectures") or ():
        if arch not in ARCHES:
            raise SeccompError(f"unknown architecture {arch!r}")
    for rule in section.get("syscalls") or ():
        if rule.get("action") not in ACTIONS:
            raise SeccompError(f"unknown action {rule.get('action')!r}")
        if "SCMP_ACT_NOTIFY" in (rule.get("action"), section["defaultAction"]):
            raise SeccompError("SCMP_ACT_NOTIFY is not supported")
        if not rule.get("names"):
            raise SeccompError("a syscalls entry has no names")
        for arg in rule.get("args") or ():
            if arg.get("op") not in OPERATORS:
                raise SeccompError(f"unknown operator {arg.get('op')!r}")
            if not isinstance(arg.get("index"), int) or not 0 <= arg["index"] < 6:
                raise SeccompError(f"bad argument index {arg.get('index')!r}")


def default_profile(path: str = DEFAULT_PROFILE_PATH) -> dict:
    """The default profile as an OCI ``linux.seccomp`` section, for this machine."""
    import json

    with open(path, encoding="utf-8") as handle:
        section = json.load(handle)
    if os.uname().machine.startswith("s390"):  # clone(stack, flags, ...) there
        for rule in section["syscalls"]:
            if rule["names"] == ["clone"]:
                rule["args"] = [dict(arg, index=1) for arg in rule["args"]]
    return section


# ----------------------------------------------------------------------------- compiling

def _import_seccomp():
    """libseccomp's bindings; under the fast launcher (python -I -S) they are in the system
    site-packages, loaded here once to build a program."""
    try:
        import seccomp
    except ModuleNotFoundError:
        import site
        import sys

        site.main()
        if "/usr/lib/python3/dist-packages" not in sys.path:
            sys.path.append("/usr/lib/python3/dist-packages")
        import seccomp
    return seccomp


def _action(seccomp, name: str, errno_ret: int | None):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(EPERM if errno_ret is None else errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    raise SeccompError(f"unsupported action {name}")


def _rule_args(seccomp, args: list[dict]) -> list[list]:
    """Argument conditions -> list of ANDed condition lists (one per OR branch)."""
    by_index: dict[int, list] = {}
    for arg in args:
        op = getattr(seccomp, OPERATORS[arg["op"]])
        value, two = int(arg.get("value", 0)), int(arg.get("valueTwo", 0))
        by_index.setdefault(arg["index"], []).append(seccomp.Arg(arg["index"], op, value, two))
    if not by_index:
        return [[]]
    if all(len(conds) == 1 for conds in by_index.values()):
        return [[conds[0] for conds in by_index.values()]]
    # runc: more than one condition on the same argument -> one rule per condition.
    return [[cond] for conds in by_index.values() for cond in conds]


def compile_profile(section: dict) -> bytes:
    """Compile a profile for the native architecture plus the listed ones; BPF bytes."""
    import tempfile

    check(section)
    seccomp = _import_seccomp()
    default_name = section["defaultAction"]
    filt = seccomp.SyscallFilter(defaction=_action(seccomp, default_name,
                                                   section.get("defaultErrnoRet")))
    filt.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    filt.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)  # binary search over syscall numbers
    for arch in section.get("architectures") or ():
        try:
            filt.add_arch(getattr(seccomp.Arch, ARCHES[arch]))
        except Exception:  # noqa: BLE001 - the native one (already there) / not supported
            pass
    for rule in section.get("syscalls") or ():
        if rule["action"] == default_name and \
                rule.get("errnoRet") == section.get("defaultErrnoRet"):
            continue
        action = _action(seccomp, rule["action"], rule.get("errnoRet"))
        for name in rule["names"]:
            for conds in _rule_args(seccomp, rule.get("args") or []):
                try:
                    filt.add_rule(action, name, *conds)
                except (RuntimeError, ValueError, OSError):
                    continue  # unknown on this architecture / libseccomp
    with tempfile.TemporaryFile() as handle:
        filt.export_bpf(handle)
        handle.seek(0)
        program = handle.read()
    if not program or len(program) % 8:
        raise SeccompError(f"libseccomp exported a {len(program)}-byte program")
    return program


def compile_default_profile() -> bytes:
    return compile_profile(default_profile())


# ----------------------------------------------------------------------------- cache

def _stamp(path: str) -> str:
    """Size and mtime of a file: changes with any edit or reinstall, costs one stat."""
    info = os.stat(path)
    return f"{info.st_size:x}.{info.st_mtime_ns:x}"


def compiler_stamp() -> str:
    return _stamp(COMPILER_PATH)


def cache_path(cache_dir: str = DEFAULT_CACHE_DIR,
               profile_path: str = DEFAULT_PROFILE_PATH) -> str:
    """Where the default profile's program is cached (named by the data and the compiler)."""
    return os.path.join(cache_dir, f"default-{_stamp(profile_path)}-{compiler_stamp()}.bpf")


def profile_cache_path(section: dict, cache_dir: str) -> str:
    """Where a bundle profile's program is cached: SHA-256 of its canonical JSON."""
    import hashlib
    import json

    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return os.path.join(cache_dir, f"{digest}-{compiler_stamp()}.bpf")


def _read_trusted(path: str) -> bytes | None:
    """The cached program, or None when missing, malformed, or writable by another user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # missing, or a cache directory that cannot be one: build
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None  # someone else could have weakened it: rebuild over it
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    program = b"".join(chunks)
    return program if program and len(program) % 8 == 0 else None


def cached_program(path: str, build) -> bytes:
    """The program cached at ``path``, or ``build()`` stored there for next time.

    The cache file must belong to the caller's effective uid and not be group/world writable,
    otherwise it is rebuilt. When the cache cannot be written (read-only /var/lib, a full
    disk), the program is compiled and returned anyway.
    """
    program = _read_trusted(path)
    if program is not None:
        return program
    program = build()
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        write_atomic(path, program, fsync=True)
    except OSError:
        pass
    return program


def load_default_filter_bytes(cache_dir: str = DEFAULT_CACHE_DIR) -> bytes:
    """The default profile as raw classic-BPF bytes, from the cache (built there if missing)."""
    return cached_program(cache_path(cache_dir), compile_default_profile)


def load_filter_bytes(section: dict, cache_dir: str) -> bytes:
    """A bundle's profile as raw classic-BPF bytes, from ``cache_dir`` when built before."""
    return cached_program(profile_cache_path(section, cache_dir),
                          lambda: compile_profile(section))


def apply_filter(program: bytes) -> None:
    """Install the filter on the calling thread (its children inherit it).

    Needs no_new_privs set (prctl PR_SET_NO_NEW_PRIVS) or CAP_SYS_ADMIN. Everything the
    profile refuses (mount, unshare...) must have been done before.
    """
    from isoinspect.runtime.linux import syscalls
    syscalls.load_seccomp_filter(program)
