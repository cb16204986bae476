"""CVE-2019-5736 class: a container must never reach the host's interpreter via /proc/<pid>/exe.

Every process that starts a container's command (``run``'s first process, ``exec``'s helper,
a warm-pool zygote, the OCI init and exec) is this runtime's Python until its last execve.
The attacks, for real:

- a container process loops over /proc/[0-9]*/exe while ``isoinspect exec`` enters the
  container 25 times, recording every executable it can resolve or open that is not the
  container's own busybox;
- the same with the command ``exec`` runs replaced by a ``#!/proc/self/exe`` script: the kernel
  resolves that interpreter in the process that execs, which was the host's python, now
  running *as the container's process* (dumpable again after exec, so non-dumpable alone does
  not help). The attacker plants a FIFO where that python reads its first byte-code file, so
  it blocks there while the attacker opens its /proc/<pid>/exe (the host's python is
  dynamically linked: the image must hold glibc's loader and libraries, as debian does; the
  test copies the host's into the container);
- an image whose command is such a script (``run``'s first process);
- a warm-pool zygote, which waits in the container's namespaces before its command exists.

Opening the host's python for reading is where the real attack starts: once no process runs
it, the descriptor can be reopened for writing through /proc/self/fd. The attacker here never
writes to anything but the runtime's sealed stub (pytest runs the same interpreter, so a write
open of it would fail with ETXTBSY anyway); the host interpreter's digest and mtime are
checked too. Before the fix every one of these tests failed: the attacker read
/usr/bin/python3.X (``exec``: the exec'd host python; warm pool and ``run``: PID 1 was it).

Docker (runc >= 1.0.0-rc6; 1.1.x re-executes ``runc init`` from a sealed memfd copy of itself,
1.2 from a private read-only overlayfs mount, after making it non-dumpable before it joins the
container): the same attacker sees no host file; a ``#!/proc/self/exe`` command starts the
sealed runc copy inside the container, which fails with a usage error; the host's runc binary
is never reachable. Here the last exec goes through a sealed in-memory stub instead
(runtime/linux/sealed_exec.py) and every entering process is non-dumpable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from isoinspect.runtime.linux import sealed_exec
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.spec import ContainerSpec

HOST_PYTHON = os.path.realpath("/proc/self/exe")
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
BYTECODE = f"/usr/lib/{PYVER}/encodings/__pycache__/__init__.cpython-" \
           f"{sys.version_info.major}{sys.version_info.minor}.pyc"
STUB_LINK = f"/memfd:{sealed_exec.STUB_NAME}"

# Plants (with HOSTILE=1) the #!/proc/self/exe command and the FIFO the host's python would
# block on, then loops over every process's exe link. A link that is not the container's
# busybox is recorded; its content read (= an fd obtained); a write tried only on a memfd.
ATTACKER = r"""
if [ "$HOSTILE" = 1 ]; then
    mkdir -p "${BYTECODE%/*}"
    : > "${BYTECODE%/__pycache__/*}/__init__.py"
    mkfifo "$BYTECODE"
    rm /bin/true
    printf '#!/proc/self/exe\n' > /bin/true
    chmod 755 /bin/true
fi
: > /tmp/found
touch /tmp/ready
while :; do
    for d in /proc/[0-9]*; do
        [ "$d" = /proc/$$ ] && continue
        t=$(readlink "$d/exe" 2>/dev/null) || continue
        [ "$d/exe" -ef /bin/busybox ] && continue
        echo "link ${d#/proc/} $t" >> /tmp/found
        if cat "$d/exe" > /dev/null 2>&1; then echo "read ${d#/proc/} $t" >> /tmp/found; fi
        case "$t" in /memfd:*)
            if (printf X >> "$d/exe") 2>/dev/null; then
                echo "wrote ${d#/proc/} $t" >> /tmp/found
            fi
        esac
        case "$t" in *python*) (echo > "$BYTECODE") & ;; esac  # let a blocked one go on
    done
    echo >> /tmp/passes
done
"""


def _install_host_libc(root: str) -> None:
    """Give a container what most images have anyway: glibc's loader and the libraries the
    host's python links against (busybox is static; without them the host's python cannot
    start inside, which is why this attack needs an image with glibc, e.g. debian)."""
    listing = subprocess.run(["ldd", HOST_PYTHON], capture_output=True, text=True,
                             check=True).stdout
    for word in listing.split():
        if word.startswith("/") and os.path.exists(word):
            target = root + word
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.realpath(word), target)


def _fingerprint(path: str) -> tuple[str, int, int]:
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    info = os.stat(path)
    return digest, info.st_mtime_ns, info.st_size


def _start_attacker(iso, hostile: bool) -> int:
    started = iso("run", "-d", "--network", "none", "--name", "attacker", "-e",
                  f"HOSTILE={int(hostile)}", "-e", f"BYTECODE={BYTECODE}", "busybox",
                  "sh", "-c", ATTACKER)
    assert started.returncode == 0, started.stderr
    pid = json.loads(iso("inspect", "attacker", check=True).stdout)[0]["State"]["Pid"]
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/proc/{pid}/root/tmp/ready"):
        assert time.monotonic() < deadline, "the attacker never got ready"
        time.sleep(0.05)
    return pid


def _findings(pid: int) -> list[tuple[str, str, str]]:
    with open(f"/proc/{pid}/root/tmp/found") as handle:
        return [tuple(line.rstrip("\n").split(" ", 2)) for line in handle if line.strip()]


def _is_busybox(pid: int, target: str) -> bool:
    """A process that exited between readlink and the attacker's -ef test: its link names the
    container's own busybox (resolved inside the container's root, never the host's)."""
    try:
        return os.path.samefile(f"/proc/{pid}/root{target}", f"/proc/{pid}/root/bin/busybox")
    except OSError:
        return False


def _assert_never_reached_the_host(pid: int, before: tuple) -> None:
    findings = [f for f in _findings(pid) if not _is_busybox(pid, f[2])]
    assert not [f for f in findings if HOST_PYTHON in f[2] or "python" in f[2]], findings
    assert not [f for f in findings if f[0] == "wrote"], findings
    # anything else it saw or read must be the sealed stub (never a file of the host)
    assert all(f[2].startswith(STUB_LINK) for f in findings), findings
    with open(f"/proc/{pid}/root/tmp/passes") as handle:
        assert handle.read().count("\n") >= 1, "the attacker never finished a pass"
    assert _fingerprint(HOST_PYTHON) == before


@pytest.mark.parametrize("hostile", [False, True], ids=["plain-race", "shebang-proc-self-exe"])
def test_exec_never_exposes_the_host_interpreter(iso, hostile):
    before = _fingerprint(HOST_PYTHON)
    pid = _start_attacker(iso, hostile)
    if hostile:
        _install_host_libc(f"/proc/{pid}/root")
    codes = set()
    for _ in range(25):
        codes.add(iso("exec", "attacker", "true", timeout=60).returncode)
    _assert_never_reached_the_host(pid, before)
    # plain: busybox true; hostile: the stub re-runs itself with fewer arguments, then 127
    assert codes == ({127} if hostile else {0}), codes


def test_run_whose_command_is_proc_self_exe_never_runs_the_host_interpreter(iso):
    """An image whose command is ``#!/proc/self/exe``: before the fix PID 1 became the host's
    python (blocked on the planted FIFO, its own /proc/self/exe open to it); now the sealed
    stub runs again with fewer arguments and the container exits 127."""
    runtime = Runtime(iso.root)
    record = runtime.create(ContainerSpec("busybox", ["/evil"], network="none"))
    upper = runtime.containers.dir(record.id, "upper")
    bytecode = upper + BYTECODE  # a FIFO: the host's python would wait on it
    os.makedirs(os.path.dirname(bytecode))
    open(os.path.join(os.path.dirname(os.path.dirname(bytecode)), "__init__.py"), "w").close()
    os.mkfifo(bytecode)
    with open(os.path.join(upper, "evil"), "w") as handle:
        handle.write("#!/proc/self/exe\n")
    os.chmod(os.path.join(upper, "evil"), 0o755)
    _install_host_libc(upper)
    devnull = os.open("/dev/null", os.O_WRONLY)
    started = runtime.start(record, stdio=(None, devnull, devnull))
    link = ""
    try:
        try:
            link = os.readlink(f"/proc/{started.pid}/exe")
        except OSError:
            pass  # already gone: it exited
        assert HOST_PYTHON not in link, f"the container's PID 1 ran the host's {link}"
    finally:
        if "python" in link:  # before the fix: it waits on the FIFO for ever
            os.kill(started.pid, signal.SIGKILL)
        code = runtime.wait_child(started)
        os.close(devnull)
        runtime.remove(record.id, force=True)
    assert code == 127


def test_a_waiting_warm_pool_zygote_is_not_reachable(iso):
    """A zygote waits for its command inside the container's namespaces; a process that
    enters that container must not be able to open the zygote's /proc/1/exe."""
    from isoinspect.runtime.warm_pool import WarmPool

    runtime = Runtime(iso.root)
    spec = ContainerSpec("busybox", ["true"], remove=True, network="none")
    before = _fingerprint(HOST_PYTHON)
    with WarmPool(runtime, spec, size=1, background=False) as pool:
        zygote = pool.idle[0]
        probe = iso("exec", zygote.record.id, "sh", "-c",
                    "readlink /proc/1/exe; cat /proc/1/exe > /dev/null && echo opened")
        assert probe.returncode != 0 or "opened" not in probe.stdout, probe.stdout
        assert "python" not in probe.stdout, probe.stdout
    assert _fingerprint(HOST_PYTHON) == before


def test_the_stub_is_sealed_and_reports_exec_failures():
    """Nobody can write the stub, even through a fresh open of its /proc/<pid>/fd link; its
    failures read like Docker's (``exec: "<path>": <reason>``, 127 for ENOENT, else 126)."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    stub = sealed_exec.sealed_stub(write_fd)
    try:
        with pytest.raises(OSError) as refused:
            os.write(stub, b"x")
        assert refused.value.errno == errno.EPERM
        with pytest.raises(OSError):
            fd = os.open(f"/proc/self/fd/{stub}", os.O_WRONLY)
            try:
                os.write(fd, b"x")
            finally:
                os.close(fd)
        pid = os.fork()
        if pid == 0:
            try:
                sealed_exec.exec_via_stub(stub, write_fd, "/nonexistent", ["x"], {})
            finally:
                os._exit(99)
        os.close(write_fd)
        write_fd = -1
        message = b""
        while chunk := os.read(read_fd, 4096):
            message += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(stub)
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    assert message == b'exec: "/nonexistent": no such file or directory'
    assert os.waitstatus_to_exitcode(status) == 127
