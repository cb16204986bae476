"""Debian's docker-registry on 127.0.0.1 for the registry tests: one config writer and one
start-and-wait, whatever the auth (htpasswd, token) and transport (HTTP, TLS)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    data: str  # its storage root
    log: str  # its log file


@contextlib.contextmanager
def serve_registry(base: Path, auth_yaml: str, tls: tuple[str, str] | None = None) \
        -> Iterator[Registry]:
    """Run docker-registry with ``auth_yaml`` (the lines under ``auth:``) and, with
    ``tls=(cert, key)``, HTTPS; ready once /v2/ answers 401 (auth is on in every test)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (scripts/setup.sh installs it)")
    port = free_port()
    tls_yaml = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else ""
    (base / "config.yml").write_text(f"""\
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {base}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{tls_yaml}auth:
{auth_yaml}""")
    log = open(base / "log", "w")
    proc = subprocess.Popen([binary, "serve", str(base / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT)
    scheme = "https" if tls else "http"
    context = ssl.create_default_context(cafile=tls[0]) if tls else None
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/v2/", timeout=2,
                                       context=context)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"docker-registry did not start: {(base / 'log').read_text()}")
            time.sleep(0.1)
        yield Registry(f"127.0.0.1:{port}", str(base / "data"), str(base / "log"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
