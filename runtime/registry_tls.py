"""How to reach one registry host: verified HTTPS by default, the exceptions named by the user.

- Every host: HTTPS verified against the system CA store plus any ``*.crt`` in
  ``/etc/isoinspect/certs.d/HOST[:PORT]/`` and Docker's ``/etc/docker/certs.d/HOST[:PORT]/``
  (Docker's convention; ``*.cert`` + ``*.key`` there is a client certificate), so a
  self-signed registry is trusted without being insecure.
- ``--insecure-registry HOST[:PORT]`` (or ``ISOINSPECT_INSECURE_REGISTRIES=a,b``, Docker's
  ``insecure-registries``): that host only gets unverified TLS, then plain HTTP if TLS fails.
  An entry without a port covers every port of that host.
- A loopback host (127.0.0.0/8, ::1, localhost) may answer in plain HTTP (Docker treats
  127.0.0.0/8 as insecure by default); unlike Docker, a loopback registry that does speak TLS
  still has its certificate verified unless it is named insecure.
"""

from __future__ import annotations

import functools
import glob
import ipaddress
import os
import ssl
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError

CERTS_DIRS = ("/etc/isoinspect/certs.d", "/etc/docker/certs.d")
INSECURE_ENV = "ISOINSPECT_INSECURE_REGISTRIES"
CERTS_DIRS_ENV = "ISOINSPECT_CERTS_DIRS"  # ':'-separated, replaces CERTS_DIRS


def split_host(host: str) -> tuple[str, str]:
    """'reg:5000' -> ('reg', '5000'); '[::1]:5000' -> ('::1', '5000')."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.lstrip(":")
    name, _, port = host.partition(":")
    return name, port


def is_loopback(host: str) -> bool:
    name = split_host(host)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TlsSettings:
    """The user's registry TLS choices; one per command, shared by every connection it makes."""

    insecure: tuple[str, ...] = ()
    certs_dirs: tuple[str, ...] = CERTS_DIRS

    @classmethod
    def from_env(cls, insecure: tuple[str, ...] | list[str] = ()) -> TlsSettings:
        named = [h.strip().lower() for h in os.environ.get(INSECURE_ENV, "").split(",")]
        entries = tuple(h for h in [*(i.lower() for i in insecure), *named] if h)
        dirs = os.environ.get(CERTS_DIRS_ENV)
        return cls(entries, tuple(d for d in dirs.split(":") if d) if dirs is not None
                   else CERTS_DIRS)

    def is_insecure(self, host: str) -> bool:
        host = host.lower()
        name = split_host(host)[0]
        return any(entry == host or (not split_host(entry)[1] and split_host(entry)[0] == name)
                   for entry in self.insecure)

    def may_use_http(self, host: str) -> bool:
        """Plain HTTP when TLS fails: for named insecure hosts and loopback ones."""
        return self.is_insecure(host) or is_loopback(host)

    def cert_files(self, host: str) -> tuple[list[str], list[tuple[str, str]]]:
        """CA files and (cert, key) client pairs for ``host`` from every certs.d dir."""
        cas, clients = [], []
        for base in self.certs_dirs:
            folder = os.path.join(base, host)
            if os.path.dirname(os.path.normpath(folder)) != os.path.normpath(base):
                continue  # a host name with '/' or '..' names no folder of ours
            cas += sorted(glob.glob(os.path.join(folder, "*.crt")))
            for cert in sorted(glob.glob(os.path.join(folder, "*.cert"))):
                key = cert[:-5] + ".key"
                if not os.path.isfile(key):
                    raise IsoinspectError(f"missing key {key} for client certificate {cert}")
                clients.append((cert, key))
        return cas, clients

    def context(self, host: str) -> ssl.SSLContext:
        """The TLS context for ``host``: verified (system CAs + certs.d), or not if insecure.
        One per host and process: loading the system CA store costs milliseconds, and a pull
        from a CDN-backed registry opens a connection per blob."""
        return _context(self, host)


@functools.lru_cache(maxsize=32)
def _context(settings: TlsSettings, host: str) -> ssl.SSLContext:
    if settings.is_insecure(host):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context()
    cas, clients = settings.cert_files(host)
    try:
        for ca in cas:
            ctx.load_verify_locations(cafile=ca)
        for cert, key in clients:
            ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise IsoinspectError(f"certificates for {host} in certs.d are unusable: "
                              f"{exc}") from None
    return ctx


def tls_failure(host: str, exc: ssl.SSLError) -> str:
    """One line saying why TLS to ``host`` failed and what would make it work."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return (f"registry {host}: TLS certificate not trusted ({reason}): put its CA in "
                f"{CERTS_DIRS[0]}/{host}/ca.crt or use --insecure-registry {host}")
    return f"registry {host}: TLS failed: {exc.reason or exc}"
