"""The default seccomp profile (now data, compiled by the one compiler) on real containers.

An OCI bundle that carries the default profile runs the host's Python (``/usr`` bound read-only
into a busybox rootfs) and makes raw syscalls; the results are what the profile gave when it was
Python code: EPERM for unshare(CLONE_NEWUSER), keyctl, ptrace, mount and
personality(ADDR_NO_RANDOMIZE), ENOSYS for clone3. The same bundle without the profile (and with CAP_SYS_ADMIN) shows the
refusals come from the filter. ``isoinspect run`` is checked with busybox's own applets.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil

import pytest
from test_oci_cli import BUSYBOX, Runc

from isoinspect.runtime.linux import seccomp_profile

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or platform.machine() != "x86_64",
                                reason="needs root; the probe's syscall numbers are x86_64's")

PROBE = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return 0 if ret >= 0 else ctypes.get_errno()
print(json.dumps({
    "unshare_user": call(272, 0x10000000),  # unshare(CLONE_NEWUSER)
    "keyctl": call(250, 0, (1 << 64) - 3, 0),  # KEYCTL_GET_KEYRING_ID, session keyring
    "ptrace": call(101, 0),  # PTRACE_TRACEME
    "mount": call(165, 0, 0, 0, 0, 0),
    "clone3": call(435, 0, 0),
    "personality": call(135, 0x0040000),  # ADDR_NO_RANDOMIZE
    "getpid": call(39),
}))
"""
REFUSED = {"unshare_user": errno.EPERM, "keyctl": errno.EPERM, "ptrace": errno.EPERM,
           "mount": errno.EPERM, "clone3": errno.ENOSYS, "personality": errno.EPERM,
           "getpid": 0}


@pytest.fixture
def python_rootfs(tmp_path):
    """busybox plus the host's /usr (bound read-only by the bundle) and its merged-usr links."""
    root = tmp_path / "pyroot"
    for sub in ("bin", "proc", "sys", "dev", "tmp", "usr"):
        (root / sub).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "sh")
    for name in ("lib", "lib64"):
        os.symlink(f"usr/{name}", root / name)
    (root / "probe.py").write_text(PROBE)
    return str(root)


def _probe(runc: Runc, cid: str, seccomp: dict | None, caps: list[str], env: dict) -> dict:
    def mutate(config):
        config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                 "options": ["rbind", "ro", "nosuid", "nodev"]})
        config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective",
                                                                "permitted")}
        if seccomp is not None:
            config["linux"]["seccomp"] = seccomp

    bundle = runc.bundle(["/usr/bin/python3", "-I", "-S", "/probe.py"], name=cid,
                         mutate=mutate)
    runc.ids.append(cid)
    result = runc("run", "--bundle", bundle, cid, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bundle_with_the_default_profile_refuses_what_it_did(tmp_path, python_rootfs):
    runc = Runc(tmp_path, python_rootfs)
    cache = tmp_path / "oci-seccomp"
    env = dict(os.environ, ISOINSPECT_OCI_SECCOMP_CACHE=str(cache))
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]
    try:
        filtered = _probe(runc, "seccomp-default", seccomp_profile.default_profile(), caps, env)
        control = _probe(runc, "seccomp-none", None, caps, env)
    finally:
        for cid in runc.ids:
            runc("delete", "--force", cid)
    assert filtered == REFUSED
    for name, refusal in REFUSED.items():
        if refusal:
            assert control[name] != refusal, (name, control)
    # the bundle's program is byte for byte the one `isoinspect run` loads
    (cached,) = os.listdir(cache)
    default = seccomp_profile.load_default_filter_bytes(str(tmp_path / "default"))
    assert (cache / cached).read_bytes() == default


def test_run_refuses_user_namespaces_and_mounts(iso):
    script = ("unshare -U true 2>/dev/null || echo unshare-user-refused; "
              "unshare -m true 2>/dev/null || echo unshare-mount-refused; "
              "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null || echo mount-refused; "
              "true && echo still-runs")
    result = iso("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", "busybox",
                 "sh", "-c", script)
    assert result.stdout.split() == ["unshare-user-refused", "unshare-mount-refused",
                                     "mount-refused", "still-runs"], result.stderr
    unconfined = iso("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN",
                     "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", script)
    assert unconfined.stdout.split() == ["still-runs"], unconfined.stderr
