"""A dockerd of our own for tests and benchmarks, kept off the host's network.

Docker's behaviour: dockerd started with ``--bridge=none`` deletes an existing ``docker0`` at
start-up (it removes the default bridge it was told not to manage), which took the shared
daemon's default networking away until that daemon restarted. So the private daemon runs in a
network namespace of its own, named /run/netns/isoinspect-dockerd-<pid>-<hex> while it lives:
there is no docker0 in it to delete, and nothing it does to links, routes or iptables reaches the
host's. Its API socket is a file, so the host still talks to it. Data root, exec root (where it
starts its own containerd), pid file and containerd namespaces are its own, under one temp dir.

This is the only place a private dockerd is started (benches/oci_docker.py and the tests use it).
It is stopped and its netns name removed on every path out of ``start``/``stop`` (exceptions,
Ctrl-C); if the Python thread that started it dies without stopping it (SIGKILL), the daemon gets
SIGTERM (parent-death signal) and the next start removes names left by dead owners.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from isoinspect.runtime.network import netns

RUNC_CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect-runc")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
IMAGE = "isoinspect-busybox:latest"
NETNS_PREFIX = f"{netns.PREFIX}dockerd-"
_NAME = re.compile(rf"^{re.escape(NETNS_PREFIX)}(\d+)-[0-9a-f]+$")


def sweep_stale_netns(netns_dir: str = netns.NETNS_DIR) -> list[str]:
    """Remove /run/netns names of private daemons whose owning process is gone."""
    try:
        names = os.listdir(netns_dir)
    except FileNotFoundError:
        return []
    removed = []
    for name in sorted(names):
        match = _NAME.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            netns.unbind(os.path.join(netns_dir, name))
            removed.append(name)
    return removed


class PrivateDocker:
    """A dockerd of our own in its own netns, with ``isoinspect`` registered as a runtime
    (no bridge, no iptables: containers use ``--network none``). With ``bridge`` (an address
    like "10.213.77.1/24") it makes Docker's default bridge network, docker0, inside its own
    netns: containers on it reach each other there, and the host's docker0 is another link in
    another namespace. Use as a context manager, or call ``stop`` in a ``finally``."""

    def __init__(self, runtime_path: str = RUNC_CLI, netns_dir: str = netns.NETNS_DIR,
                 bridge: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="isodock-", dir="/tmp")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER=DOCKER or "")
        self.runtime_path = runtime_path
        self.bridge = bridge  # docker0's address/prefix (--bip), or None for --bridge=none
        self.netns_dir = netns_dir
        self.netns_path = os.path.join(netns_dir,
                                       f"{NETNS_PREFIX}{os.getpid()}-{os.urandom(3).hex()}")
        self.proc: subprocess.Popen | None = None
        self.log = None

    def __enter__(self) -> "PrivateDocker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def command(self, config: str) -> list[str]:
        """unshare binds a new netns on our name, then runs dockerd in it with SIGTERM as its
        parent-death signal (so a killed owner does not leave a daemon behind)."""
        ns = "isodock" + os.urandom(4).hex()  # containerd: [A-Za-z0-9]+([._-][A-Za-z0-9]+)*
        return ["unshare", f"--net={self.netns_path}", "--",
                "setpriv", "--pdeathsig", "TERM", "--",
                shutil.which("dockerd") or "dockerd", "--config-file", config,
                "--data-root", f"{self.dir}/data", "--exec-root", f"{self.dir}/exec",
                "--pidfile", f"{self.dir}/docker.pid", "-H", f"unix://{self.sock}",
                *(["--bip", self.bridge] if self.bridge else ["--bridge=none"]),
                "--iptables=false", "--ip-masq=false",
                "--containerd-namespace", ns, "--containerd-plugins-namespace", f"{ns}-plugins"]

    def start(self, image: str | None = IMAGE) -> None:
        """Start the daemon, wait for its API, load ``image`` (None: none); on any failure or
        interrupt, stop it again before raising."""
        try:
            sweep_stale_netns(self.netns_dir)
            config = os.path.join(self.dir, "daemon.json")
            with open(config, "w") as handle:
                json.dump({"runtimes": {"isoinspect": {"path": self.runtime_path}}}, handle)
            self.log = open(os.path.join(self.dir, "dockerd.log"), "w")
            os.makedirs(self.netns_dir, mode=0o755, exist_ok=True)
            os.close(os.open(self.netns_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
            self.proc = subprocess.Popen(self.command(config), stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            self._wait_ready()
            if image:
                subprocess.run([os.path.join(REPO, "scripts", "docker-busybox.sh"), image],
                               env=self.env, check=True, capture_output=True, timeout=120)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self("version", "--format", "{{.Server.Version}}").returncode != 0:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: see {self.dir}/dockerd.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def __call__(self, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        return subprocess.run([DOCKER, *args], env=self.env, text=True, timeout=timeout,
                              **kwargs)

    def server_version(self) -> str:
        return self("version", "--format", "{{.Server.Version}}").stdout.strip()

    def stop(self) -> None:
        """Remove its containers, stop it, then its mounts, netns name and temp dir (each step
        runs even if an earlier one fails or is interrupted)."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    ids = self("ps", "-aq", timeout=30).stdout.split()
                    if ids:
                        self("rm", "-f", *ids, timeout=60)
                finally:
                    self._terminate()
        finally:
            if self.log is not None:
                self.log.close()
            for sub in ("exec", "data"):
                subprocess.run(["umount", "-R", f"{self.dir}/{sub}"], capture_output=True)
            netns.unbind(self.netns_path)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
