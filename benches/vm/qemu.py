"""Boot the Debian guest under QEMU, run one command in it, return its output and exit code.

    vm = GuestVM()                     # kernel + initramfs from the cache (built on first use)
    result = vm.run(["python3", "-c", "print(1)"], cwd="/work/main")
    result.returncode, result.stdout, result.accel, result.boot_seconds

The accelerator is chosen by a timed boot, not by the presence of /dev/kvm (a software
hypervisor can offer /dev/kvm yet only run kernels built for it): KVM is tried once with a short
timeout and the verdict is cached per host boot; TCG otherwise. $ISOINSPECT_VM_ACCEL=kvm|tcg
forces one. Every result carries the accelerator it ran with.

The job is a shell script in a host run directory shared read-write into the guest at
/run/isoinspect-vm; its stdout, stderr and exit code come back as files there. The console
(serial) is kept for diagnosis: a boot that does not reach the ready marker in time, or a guest
that ends without an exit code, raises VMError with the console's tail.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from isoinspect.runtime.fsutil import write_atomic

from .initramfs import cmdline, ensure_initramfs, root_links
from .kernel import GuestKernel, VMError, cache_dir, ensure_kernel

QEMU = "qemu-system-x86_64"
READY = "@@VM-READY"
GUEST_RUN_DIR = "/run/isoinspect-vm"
KVM_PROBE_TIMEOUT = 20.0
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


@dataclass
class VMResult:
    returncode: int
    stdout: str
    stderr: str
    accel: str
    kernel: str
    boot_seconds: float          # QEMU start -> ready marker (init done, cgroup2 mounted)
    total_seconds: float         # QEMU start -> QEMU exit
    guest_uptime_ready: float | None = None   # the guest's own clock at the ready marker
    console: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("console")
        return data


def _qemu_binary() -> str:
    path = shutil.which(QEMU)
    if not path:
        raise VMError(f"{QEMU} not found (apt-get install qemu-system-x86)")
    return path


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


class GuestVM:
    def __init__(self, project: str = PROJECT_ROOT, memory_mb: int = 1024, cpus: int = 2,
                 accel: str | None = None, cache: str | None = None, disk_mb: int = 0,
                 extra_shares: list[tuple[str, str, str]] | None = None,
                 log=None) -> None:
        self.project = os.path.abspath(project)
        self.memory_mb, self.cpus, self.disk_mb = memory_mb, cpus, disk_mb
        self.cache = cache_dir(cache)
        self.log = log or (lambda _msg: None)
        self.qemu = _qemu_binary()
        self.kernel: GuestKernel = ensure_kernel(self.cache, log=self.log)
        self.links = root_links("/")
        # (tag, host path, guest path, mode): ro = 9p read-only; ov = 9p read-only under a
        # tmpfs overlay (writable, writes stay in the guest); rw = 9p read-write.
        self.shares: list[tuple[str, str, str, str]] = [("usr", "/usr", "/usr", "ro"),
                                                        ("etc", "/etc", "/etc", "ov")]
        linked = {name for name, _ in self.links}
        for name in ("bin", "sbin", "lib", "lib64"):
            if name not in linked and os.path.isdir("/" + name):
                self.shares.append((name, "/" + name, "/" + name, "ro"))
        self.shares.append(("project", self.project, self.project, "ov"))
        # The host's Python environment (a venv outside the project, e.g. in CI) at its own path.
        prefix = os.path.realpath(sys.prefix)
        if not any(prefix == p or prefix.startswith(p.rstrip("/") + "/")
                   for p in ("/usr", self.project)):
            self.shares.append(("pyenv", prefix, prefix, "ro"))
        for index, (host, guest, mode) in enumerate(extra_shares or ()):
            self.shares.append((f"x{index}", host, guest, mode))
        self.shares.append(("vmrun", "", GUEST_RUN_DIR, "rw"))
        self.initramfs = ensure_initramfs(self.kernel)
        self.layout = cmdline([(tag, guest, mode) for tag, _h, guest, mode in self.shares],
                              self.links)
        self.accel = accel or os.environ.get("ISOINSPECT_VM_ACCEL") or None
        self.accel_reason = "requested" if self.accel else ""

    # -- accelerator ---------------------------------------------------------------------------
    def choose_accel(self) -> str:
        """'kvm' if a timed KVM boot of this kernel works here, else 'tcg' (cached per boot)."""
        if self.accel:
            return self.accel
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            self.accel, self.accel_reason = "tcg", "no usable /dev/kvm"
            return self.accel
        verdicts = os.path.join(self.cache, "accel.json")
        key = f"{_boot_id()}/{self.kernel.key}/{os.stat(self.qemu).st_mtime_ns}"
        try:
            with open(verdicts) as handle:
                cached = json.load(handle)
        except (OSError, ValueError):
            cached = {}
        if key in cached:
            self.accel, self.accel_reason = cached[key]["accel"], cached[key]["reason"] + " (cached)"
            return self.accel
        self.log(f"probing KVM with a timed boot (≤ {KVM_PROBE_TIMEOUT:.0f} s)")
        try:
            result = self._boot(["true"], accel="kvm", boot_timeout=KVM_PROBE_TIMEOUT,
                                timeout=KVM_PROBE_TIMEOUT + 5)
            ok = result.returncode == 0
            reason = (f"KVM boot reached init in {result.boot_seconds:.2f} s" if ok
                      else f"KVM boot ended with rc {result.returncode}")
        except VMError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            ok, reason = False, f"KVM boot failed: {lines[0]} ({lines[-1].strip()})"
        self.accel, self.accel_reason = ("kvm" if ok else "tcg"), reason
        cached = {key: {"accel": self.accel, "reason": reason, "at": time.time()}}
        os.makedirs(self.cache, exist_ok=True)
        write_atomic(verdicts, json.dumps(cached).encode())
        return self.accel

    # -- running -------------------------------------------------------------------------------
    def run(self, command: list[str] | str, cwd: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 600,
            boot_timeout: float | None = None) -> VMResult:
        """Boot, run ``command`` (argv list, or a shell string) in the guest, power off."""
        accel = self.choose_accel()
        return self._boot(command, accel=accel, cwd=cwd, env=env, timeout=timeout,
                          boot_timeout=boot_timeout or (60 if accel == "kvm" else 120))

    def qemu_argv(self, accel: str, run_dir: str, disk: str | None) -> list[str]:
        argv = [self.qemu, "-nodefaults", "-no-user-config", "-display", "none",
                "-serial", "stdio", "-no-reboot", "-m", str(self.memory_mb),
                "-smp", str(self.cpus), "-kernel", self.kernel.boot_image,
                "-initrd", self.initramfs,
                "-append", f"console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init {self.layout}"]
        if accel == "kvm":
            argv += ["-accel", "kvm", "-cpu", "host"]
        else:
            argv += ["-accel", "tcg,thread=multi" if self.cpus > 1 else "tcg", "-cpu", "max"]
        model = "passthrough" if os.geteuid() == 0 else "none"
        for index, (tag, host, _guest, mode) in enumerate(self.shares):
            host = host or run_dir
            readonly = ",readonly=on" if mode != "rw" else ""
            argv += ["-fsdev", f"local,id=fs{index},path={host},security_model={model},"
                               f"multidevs=remap{readonly}",
                     "-device", f"virtio-9p-pci,fsdev=fs{index},mount_tag={tag}"]
        if disk:
            argv += ["-drive", f"file={disk},if=virtio,format=raw,cache=unsafe"]
        return argv

    def _job(self, command: list[str] | str, cwd: str | None, env: dict[str, str] | None) -> str:
        lines = ["set -e"]
        for key, value in (env or {}).items():
            lines.append(f"export {key}={shlex.quote(str(value))}")
        lines.append(f"cd {shlex.quote(cwd or self.project)}")
        lines.append("set +e")
        text = command if isinstance(command, str) else shlex.join(command)
        lines.append(text)
        return "\n".join(lines) + "\n"

    def _boot(self, command, accel: str, cwd: str | None = None, env=None,
              timeout: float = 600, boot_timeout: float = 120) -> VMResult:
        run_dir = tempfile.mkdtemp(prefix="isoinspect-vm-")
        try:
            with open(os.path.join(run_dir, "job.sh"), "w") as handle:
                handle.write(self._job(command, cwd, env))
            disk = None
            if self.disk_mb:
                disk = os.path.join(run_dir, "disk.img")
                with open(disk, "wb") as handle:
                    handle.truncate(self.disk_mb << 20)
            argv = self.qemu_argv(accel, run_dir, disk)
            console, boot, total, uptime = self._supervise(argv, timeout, boot_timeout, accel)

            def read(name: str) -> str | None:
                try:
                    with open(os.path.join(run_dir, name), errors="replace") as handle:
                        return handle.read()
                except OSError:
                    return None

            rc_text = read("rc")
            if rc_text is None or not rc_text.strip().lstrip("-").isdigit():
                raise VMError(f"the guest ({accel}) ended without an exit code"
                              f"{_failure(console)}\n{_tail(console)}")
            return VMResult(int(rc_text), read("stdout") or "", read("stderr") or "", accel,
                            self.kernel.release, boot, total, uptime, console)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _supervise(self, argv: list[str], timeout: float, boot_timeout: float,
                   accel: str) -> tuple[str, float, float, float | None]:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        chunks: list[bytes] = []
        buffered: bytes | None = b""
        boot = uptime = None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                now = time.monotonic() - start
                limit = timeout if boot is not None else min(timeout, boot_timeout)
                if now > limit:
                    what = ("reach the ready marker" if boot is None else "finish the command")
                    raise VMError(f"the guest ({accel}) did not {what} within {limit:.0f} s"
                                  f"{_failure(_text(chunks))}\n{_tail(_text(chunks))}")
                if not selector.select(timeout=min(1.0, limit - now + 0.01)):
                    continue
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    break
                chunks.append(data)
                if buffered is None:
                    continue
                buffered += data
                if boot is None:
                    at = buffered.find(READY.encode())
                    if at < 0:
                        buffered = buffered[-64:]
                        continue
                    boot = time.monotonic() - start
                    buffered = buffered[at:]
                if b"\n" in buffered:   # the whole ready line: read the guest's clock from it
                    line = buffered.split(b"\n", 1)[0].decode(errors="replace")
                    for word in line.split():
                        if word.startswith("uptime="):
                            try:
                                uptime = float(word[7:])
                            except ValueError:
                                pass
                    buffered = None
            proc.wait(timeout=10)
        finally:
            selector.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stdout.close()
        total = time.monotonic() - start
        console = _text(chunks)
        if boot is None:
            raise VMError(f"the guest ({accel}) ended (QEMU exit {proc.returncode}) before the "
                          f"ready marker{_failure(console)}\n{_tail(console)}")
        return console, boot, total, uptime


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode(errors="replace")


def _tail(console: str, lines: int = 25) -> str:
    body = "\n".join(console.replace("\r", "").splitlines()[-lines:])
    return f"--- console (last {lines} lines) ---\n{body}"


def _failure(console: str) -> str:
    for line in console.splitlines():
        if "@@VM-FAIL" in line:
            return ": " + line.split("@@VM-FAIL", 1)[1].strip()
    return ""


def boot_time(runs: int = 3, vm: GuestVM | None = None) -> dict:
    """Boot to the ready marker ``runs`` times (command ``true``); seconds per phase."""
    vm = vm or GuestVM()
    accel = vm.choose_accel()
    samples = []
    for _ in range(runs):
        result = vm.run(["true"])
        samples.append({"boot_s": result.boot_seconds, "total_s": result.total_seconds,
                        "guest_uptime_ready_s": result.guest_uptime_ready,
                        "returncode": result.returncode})
    boots = sorted(s["boot_s"] for s in samples)
    return {"target": f"qemu-{accel}", "accel": accel, "accel_reason": vm.accel_reason,
            "kernel": vm.kernel.release, "kernel_package": f"{vm.kernel.package} "
            f"{vm.kernel.version}", "cpus": vm.cpus, "memory_mb": vm.memory_mb,
            "runs": samples, "boot_s_median": boots[len(boots) // 2],
            "guest_uptime_ready_s_median": sorted(
                s["guest_uptime_ready_s"] or 0.0 for s in samples)[len(samples) // 2],
            "boot_s_min": boots[0], "boot_s_max": boots[-1]}
