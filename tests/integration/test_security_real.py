"""Capabilities, seccomp, rlimits and masked/read-only paths on the real kernel (root).

Each check runs in a forked child that changes only itself (and mounts only in a private mount
namespace of its own), reports a JSON dict through a pipe and _exits: nothing returns into
pytest and nothing reaches the host.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import traceback

import pytest

from isoinspect.runtime.linux import capabilities, paths_policy, rlimits, seccomp_profile
from isoinspect.runtime.linux import syscalls as sc

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

DEFAULT = capabilities.DEFAULT_MASK
LIBC = ctypes.CDLL(None, use_errno=True)
SYS_CLONE3 = 435
SYS_GETPID = 39
X32_SYSCALL_BIT = 0x40000000
ADDR_NO_RANDOMIZE = 0x0040000


def in_child(body, timeout: float = 30.0) -> dict:
    """Run body() in a forked child; return the dict it returned (or fail with its error)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            try:
                payload = {"ok": body()}
                code = 0
            except BaseException:
                payload = {"error": traceback.format_exc()}
            os.write(write_fd, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    assert chunks, f"child wrote nothing (wait status {status:#x})"
    payload = json.loads(b"".join(chunks))
    assert "error" not in payload, payload["error"]
    return payload["ok"]


def status_fields() -> dict:
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key.startswith("Cap"):
                fields[key] = int(value, 16)
            elif key in ("NoNewPrivs", "Seccomp", "Seccomp_filters"):
                fields[key] = int(value)
    return fields


def errno_of(call, *args) -> int:
    try:
        call(*args)
    except OSError as exc:
        return exc.errno
    return 0


def raw_syscall(number: int, *args) -> int:
    result = LIBC.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return ctypes.get_errno() if result == -1 else 0


def personality_errno(value: int) -> int:
    return raw_syscall(135, value)


def fork_exec_status(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return os.waitpid(pid, 0)[1]


def exec_and_capture(argv: list[str]) -> str:
    """fork+exec argv with stdout on a pipe; its output (the exec'ed program's view)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(write_fd, 1)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def parse_status_text(text: str) -> dict:
    return {key: int(value, 16) for key, _, value in
            (line.partition(":") for line in text.splitlines()) if key.startswith("Cap")}


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> bytes:
    return seccomp_profile.load_default_filter_bytes(str(tmp_path_factory.mktemp("seccomp")))


def ordinary_calls_work(scratch: str) -> dict:
    path = os.path.join(scratch, f"probe-{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = os.write(fd, b"hello")
    os.close(fd)
    with open(path, "rb") as handle:
        read_back = handle.read()
    os.unlink(path)
    return {"getpid": os.getpid() > 0, "write": written, "read": read_back.decode(),
            "fork_exec_true": fork_exec_status(["/bin/true"]),
            "fork_exec_false": fork_exec_status(["/bin/false"])}


def test_default_caps_no_new_privs_and_seccomp(program, tmp_path):
    scratch = mount_point = str(tmp_path)

    def body():
        capabilities.apply_capabilities(DEFAULT)
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        seccomp_profile.apply_filter(program)
        report = status_fields()
        report["unshare_uts"] = errno_of(sc.unshare, sc.CLONE_NEWUTS)
        report["mount"] = errno_of(sc.mount, "tmpfs", mount_point, "tmpfs", 0)
        report["clone_newnet"] = errno_of(sc.clone_process, sc.CLONE_NEWNET)
        report["clone3"] = raw_syscall(SYS_CLONE3, 0, 0)
        report["personality_query"] = personality_errno(0xFFFFFFFF)
        report["personality_no_aslr"] = personality_errno(ADDR_NO_RANDOMIZE)
        report.update(ordinary_calls_work(scratch))
        report["after_exec"] = exec_and_capture(["/bin/grep", "^Cap", "/proc/self/status"])
        return report

    r = in_child(body)
    assert (r["CapBnd"], r["CapEff"], r["CapPrm"]) == (DEFAULT, DEFAULT, DEFAULT)
    assert (r["CapInh"], r["CapAmb"]) == (0, 0)
    assert (r["NoNewPrivs"], r["Seccomp"], r["Seccomp_filters"]) == (1, 2, 1)
    assert r["unshare_uts"] == errno.EPERM
    assert r["mount"] == errno.EPERM
    assert r["clone_newnet"] == errno.EPERM
    assert r["clone3"] == errno.ENOSYS
    assert r["personality_query"] == 0
    assert r["personality_no_aslr"] == errno.EPERM
    assert (r["getpid"], r["write"], r["read"]) == (True, 5, "hello")
    assert r["fork_exec_true"] == 0 and os.WEXITSTATUS(r["fork_exec_false"]) == 1
    # root keeps the mask across exec (through the bounding set), and nothing more
    after = parse_status_text(r["after_exec"])
    assert (after["CapEff"], after["CapPrm"], after["CapBnd"]) == (DEFAULT, DEFAULT, DEFAULT)


def test_control_without_filter_the_same_calls_succeed(tmp_path):
    """The calls the filter refuses do work for root without it: the EPERMs above (and
    below) come from the filter, not from the test's set-up."""
    def body():
        setns_fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        return {"unshare_uts": errno_of(sc.unshare, sc.CLONE_NEWUTS),
                "setns": errno_of(sc.setns, setns_fd, 0),
                "personality_no_aslr": personality_errno(ADDR_NO_RANDOMIZE),
                "seccomp": status_fields()["Seccomp"]}

    assert in_child(body) == {"unshare_uts": 0, "setns": 0, "personality_no_aslr": 0,
                              "seccomp": 0}


def test_filter_refuses_even_with_every_capability(program, tmp_path):
    mount_point = str(tmp_path)

    def body():
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        seccomp_profile.apply_filter(program)
        setns_fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        return {"cap_sys_admin": bool(status_fields()["CapEff"] >> 21 & 1),
                "unshare_uts": errno_of(sc.unshare, sc.CLONE_NEWUTS),
                "unshare_user": errno_of(sc.unshare, sc.CLONE_NEWUSER),
                "setns": errno_of(sc.setns, setns_fd, 0),
                "mount": errno_of(sc.mount, "tmpfs", mount_point, "tmpfs", 0),
                "clone_newpid": errno_of(sc.clone_process, sc.CLONE_NEWPID),
                "plain_fork_exec": fork_exec_status(["/bin/true"])}

    assert in_child(body) == {"cap_sys_admin": True, "unshare_uts": errno.EPERM,
                              "unshare_user": errno.EPERM, "setns": errno.EPERM,
                              "mount": errno.EPERM, "clone_newpid": errno.EPERM,
                              "plain_fork_exec": 0}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 is an x86_64 ABI")
def test_x32_syscall_kills_the_process(program):
    def body():
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        seccomp_profile.apply_filter(program)
        pid = os.fork()
        if pid == 0:
            try:
                raw_syscall(X32_SYSCALL_BIT | SYS_GETPID)
            finally:
                os._exit(3)
        status = os.waitpid(pid, 0)[1]
        return {"signaled": os.WIFSIGNALED(status),
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}

    assert in_child(body) == {"signaled": True, "signal": signal.SIGSYS}


def test_switch_user_to_nobody_has_no_effective_caps():
    def body():
        capabilities.switch_user(65534, 65534, [], DEFAULT)
        report = status_fields()
        report["ids"] = [os.getresuid(), os.getresgid(), os.getgroups()]
        report["setuid_back"] = errno_of(os.setuid, 0)
        report["after_exec"] = exec_and_capture(["/bin/grep", "^Cap", "/proc/self/status"])
        return report

    r = in_child(body)
    assert r["CapBnd"] == DEFAULT
    assert (r["CapEff"], r["CapPrm"], r["CapInh"], r["CapAmb"]) == (0, 0, 0, 0)
    assert r["ids"] == [[65534] * 3, [65534] * 3, []]
    assert r["setuid_back"] == errno.EPERM
    after = parse_status_text(r["after_exec"])
    assert (after["CapEff"], after["CapPrm"], after["CapBnd"]) == (0, 0, DEFAULT)


def test_switch_user_root_with_added_caps_and_groups(tmp_path):
    scratch = str(tmp_path)
    mask = capabilities.parse_capabilities(["NET_ADMIN"], ["MKNOD"])

    def body():
        capabilities.switch_user(0, 0, [10, 20], mask)
        report = status_fields()
        report["groups"] = sorted(os.getgroups())
        node = f"{scratch}/null"
        report["mknod"] = errno_of(os.mknod, node, 0o600 | 0o020000, os.makedev(1, 3))
        return report

    r = in_child(body)
    assert (r["CapEff"], r["CapPrm"], r["CapBnd"]) == (mask, mask, mask)
    assert mask >> 12 & 1 and not mask >> 27 & 1
    assert r["groups"] == [10, 20]
    assert r["mknod"] == errno.EPERM


def test_asking_for_a_capability_the_runtime_lacks_names_it():
    def body():
        sc.capset(DEFAULT, DEFAULT, 0)  # as if the runtime itself ran with fewer capabilities
        try:
            capabilities.apply_capabilities(DEFAULT | 1 << 21)
        except PermissionError as exc:
            return str(exc)
        return "no error"

    assert in_child(body) == "[Errno 1] capset: the runtime itself lacks CAP_SYS_ADMIN"


def private_mount_namespace() -> None:
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)


def write_errno(path: str) -> int:
    try:
        with open(path, "w") as handle:
            handle.write("x")
    except OSError as exc:
        return exc.errno
    return 0


def first_file_with_content(candidates) -> str | None:
    """The first of candidates that can be read and is not empty (/proc/kcore, for instance,
    is missing where the kernel is built without it)."""
    for path in candidates:
        try:
            with open(path, "rb") as handle:
                if handle.read(1):
                    return path
        except OSError:
            pass
    return None


def test_masked_and_readonly_proc_paths():
    target = first_file_with_content(["/proc/kcore", "/proc/timer_list", "/proc/cmdline"])

    def body():
        private_mount_namespace()
        paths_policy.mask_paths("", [target, "/proc/no-such-entry", "/proc/driver"])
        paths_policy.readonly_paths("", ["/proc/sys", "/proc/sysrq-trigger", "/proc/nothing"])
        with open(target, "rb") as handle:
            content = handle.read(64)
        return {"content": content.decode(), "rdev": os.stat(target).st_rdev,
                "driver": os.listdir("/proc/driver"),
                "driver_own_fs": os.stat("/proc/driver").st_dev != os.stat("/proc").st_dev,
                "driver_write": write_errno("/proc/driver/x"),
                "hostname_write": write_errno("/proc/sys/kernel/hostname"),
                "sys_readonly": bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)}

    r = in_child(body)
    assert r["content"] == "" and r["rdev"] == os.makedev(1, 3)
    assert r["driver"] == [] and r["driver_own_fs"] and r["driver_write"] == errno.EROFS
    assert r["hostname_write"] == errno.EROFS
    assert r["sys_readonly"]
    # the host saw none of it
    with open(target, "rb") as handle:
        assert handle.read(1) and os.stat(target).st_rdev == 0
    assert os.stat("/proc/driver").st_dev == os.stat("/proc").st_dev
    assert not os.statvfs("/proc/sys").f_flag & os.ST_RDONLY


def test_paths_under_a_root_prefix(tmp_path):
    root = tmp_path / "rootfs"
    (root / "proc/scsi").mkdir(parents=True)
    (root / "proc/scsi/host0").write_text("device")
    (root / "proc/keys").write_text("key material")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/value").write_text("1")
    (root / "proc/sysrq-trigger").write_text("")

    def body():
        private_mount_namespace()
        prefix = str(root)
        paths_policy.mask_paths(prefix, ["/proc/scsi", "/proc/keys", "/proc/acpi"])
        paths_policy.readonly_paths(prefix, ["/proc/sys", "/proc/irq", "/proc/sysrq-trigger"])
        return {"scsi": os.listdir(f"{prefix}/proc/scsi"),
                "keys": open(f"{prefix}/proc/keys").read(),
                "scsi_write": write_errno(f"{prefix}/proc/scsi/new"),
                "sys_write": write_errno(f"{prefix}/proc/sys/kernel/value"),
                "sys_read": open(f"{prefix}/proc/sys/kernel/value").read(),
                "sysrq_write": write_errno(f"{prefix}/proc/sysrq-trigger")}

    assert in_child(body) == {"scsi": [], "keys": "", "scsi_write": errno.EROFS,
                              "sys_write": errno.EROFS, "sys_read": "1",
                              "sysrq_write": errno.EROFS}
    # outside the child's mount namespace nothing changed
    assert (root / "proc/keys").read_text() == "key material"
    (root / "proc/sys/kernel/value").write_text("2")  # still writable


def test_readonly_keeps_locked_flags_in_a_user_namespace(tmp_path):
    """In a user namespace nosuid/nodev/noexec of inherited mounts are locked: the read-only
    remount must repeat them or the kernel says EPERM."""
    locked = tmp_path / "locked"
    locked.mkdir()

    def body():
        private_mount_namespace()
        sc.mount("tmpfs", str(locked), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        os.mkdir(f"{locked}/sub")
        sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
        for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
        bare = errno_of(_bare_readonly_remount, f"{locked}/sub")
        paths_policy.readonly_paths(str(locked), ["/sub"])
        return {"bare_remount": bare, "write": write_errno(f"{locked}/sub/file"),
                "flags": os.statvfs(f"{locked}/sub").f_flag & (os.ST_NOSUID | os.ST_NODEV |
                                                                os.ST_NOEXEC | os.ST_RDONLY)}

    r = in_child(body)
    assert r["bare_remount"] == errno.EPERM  # what the flags avoid
    assert r["write"] == errno.EROFS
    assert r["flags"] == os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_RDONLY


def _bare_readonly_remount(path: str) -> None:
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
    finally:
        sc.umount2(path, sc.MNT_DETACH)


def test_container_child_order_end_to_end(program, tmp_path):
    """rlimits -> masked/read-only paths -> switch_user -> no_new_privs -> seccomp -> exec,
    as runtime/child.py does it; checked from inside the exec'ed program."""
    masked = first_file_with_content(paths_policy.MASKED_PATHS) or "/dev/null"

    def body():
        private_mount_namespace()
        rlimits.apply_rlimits(rlimits.merge_rlimits(rlimits.default_rlimits(),
                                                    [rlimits.parse_ulimit("nproc=500:600")]))
        paths_policy.mask_paths("", paths_policy.MASKED_PATHS)
        paths_policy.readonly_paths("", paths_policy.READONLY_PATHS)
        capabilities.switch_user(65534, 65534, [], DEFAULT)
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        seccomp_profile.apply_filter(program)
        script = ("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; "
                  "grep -E '^Max (open files|processes)' /proc/self/limits; "
                  f"echo masked $(wc -c < {masked}); "
                  "(echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo hostname-refused; "
                  "unshare -U true 2>/dev/null || echo unshare-refused")
        return {"out": exec_and_capture(["/bin/sh", "-c", script])}

    out = in_child(body)["out"]
    lines = out.splitlines()
    fields = dict(line.split(None, 1) for line in lines if line.startswith(("Cap", "No", "Sec")))
    assert int(fields["CapEff:"], 16) == 0 and int(fields["CapBnd:"], 16) == DEFAULT
    assert fields["NoNewPrivs:"] == "1" and fields["Seccomp:"] == "2"
    nofile = rlimits.default_rlimits()[0][1:]
    limits = {line.split()[1]: line.split()[-3:-1] for line in lines if line.startswith("Max")}
    assert limits == {"open": [str(n) for n in nofile], "processes": ["500", "600"]}
    assert "masked 0" in lines
    assert "hostname-refused" in lines and "unshare-refused" in lines
