"""An OCI ``linux.seccomp`` section -> classic BPF bytes, with libseccomp (Debian's ``seccomp``
Python bindings, imported lazily), cached by the SHA-256 of the section's canonical JSON.

Semantics follow runc: rules whose action equals the default are dropped; conditions on
different arguments of one syscall entry are ANDed in one rule; several conditions on the same
argument index become one rule each (ORed). Syscall names this libseccomp or architecture does
not know are skipped, as runc does.
"""

from __future__ import annotations

import errno
import json
import os

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


class SeccompError(ValueError):
    pass


def check(section: dict) -> None:
    """Validate the shape of a seccomp section (no libseccomp needed)."""
    from isoinspect.runtime.oci.config import ConfigError
    try:
        _check(section)
    except SeccompError as exc:
        raise ConfigError(f"linux.seccomp: {exc}") from None


def _check(section: dict) -> None:
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
        if rule.get("action") == "SCMP_ACT_NOTIFY" or section["defaultAction"] == \
                "SCMP_ACT_NOTIFY":
            raise SeccompError("SCMP_ACT_NOTIFY is not supported")
        if not rule.get("names"):
            raise SeccompError("a syscalls entry has no names")
        for arg in rule.get("args") or ():
            if arg.get("op") not in OPERATORS:
                raise SeccompError(f"unknown operator {arg.get('op')!r}")
            if not isinstance(arg.get("index"), int) or not 0 <= arg["index"] < 6:
                raise SeccompError(f"bad argument index {arg.get('index')!r}")


def digest(section: dict) -> str:
    import hashlib
    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _import_seccomp():
    try:
        import seccomp
    except ModuleNotFoundError:
        import site  # the bindings live in the system site-packages
        site.main()
        import sys
        if "/usr/lib/python3/dist-packages" not in sys.path:
            sys.path.append("/usr/lib/python3/dist-packages")
        import seccomp
    return seccomp


def _action(seccomp, name: str, errno_ret: int | None):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    raise SeccompError(f"unsupported action {name}")


def _rule_args(seccomp, args: list[dict]) -> list[list]:
    """Argument conditions -> list of ANDed condition lists (one per OR branch)."""
    by_index: dict[int, list] = {}
    for arg in args:
        op = getattr(seccomp, OPERATORS[arg["op"]])
        value, two = int(arg.get("value", 0)), int(arg.get("valueTwo", 0))
        cond = seccomp.Arg(arg["index"], op, value, two)
        by_index.setdefault(arg["index"], []).append(cond)
    if not by_index:
        return [[]]
    if all(len(v) == 1 for v in by_index.values()):
        return [[v[0] for v in by_index.values()]]
    # runc: more than one condition on the same argument -> one rule per condition.
    return [[cond] for conds in by_index.values() for cond in conds]


def compile_bpf(section: dict) -> bytes:
    """Compile the section for the listed architectures (plus the native one)."""
    import tempfile

    _check(section)
    seccomp = _import_seccomp()
    default_name = section["defaultAction"]
    default = _action(seccomp, default_name, section.get("defaultErrnoRet"))
    filt = seccomp.SyscallFilter(defaction=default)
    for arch in section.get("architectures") or ():
        try:
            filt.add_arch(getattr(seccomp.Arch, ARCHES[arch]))
        except Exception:  # noqa: BLE001 - the native one (already there) / not supported
            pass
    for rule in section.get("syscalls") or ():
        if rule["action"] == default_name and rule.get("errnoRet") == \
                section.get("defaultErrnoRet"):
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


def load_bpf(section: dict, cache_dir: str) -> bytes:
    """The compiled program for ``section``, from ``cache_dir`` when built before."""
    from isoinspect.runtime.linux.seccomp_profile import cached_program

    path = os.path.join(cache_dir, digest(section) + ".bpf")
    return cached_program(path, lambda: compile_bpf(section))
