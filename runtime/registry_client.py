"""One registry's HTTP API for one operation: TLS choice, authentication, redirects, uploads.

The connection is kept alive across requests. HTTPS is tried first (registry_tls decides the
certificates and whether plain HTTP may follow). A 401 is answered once per challenge: basic
credentials for ``Basic``, a token from the realm for ``Bearer`` (registry_auth), then the
request is sent again; the header is reused by the following requests. GET/HEAD redirects
(blobs served from a CDN or object store) are followed without the Authorization header.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import urllib.parse

from isoinspect.runtime.credentials import Credentials
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.registry_auth import (AuthError, Challenge, TokenCache, basic_header,
                                              parse_challenge, repository_scope)
from isoinspect.runtime.registry_tls import TlsSettings, tls_failure

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5


class RegistryError(IsoinspectError):
    pass


def _unreachable(host: str, exc: BaseException) -> RegistryError:
    return RegistryError(f"registry {host} is unreachable: {exc}")


def connect(scheme: str, host: str, tls: TlsSettings, timeout: float,
            tls_host: str | None = None) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, timeout=timeout,
                                           context=tls.context(tls_host or host))
    return http.client.HTTPConnection(host, timeout=timeout)


def open_url(url: str, headers: dict, tls: TlsSettings, tls_host: str, timeout: float = 30,
             method: str = "GET") -> http.client.HTTPResponse:
    """One request to an absolute URL on a connection of its own (token realm, redirect),
    with the TLS settings of the registry ``tls_host`` that sent us there (as Docker: its
    certs.d CA and its insecure flag apply to its token server and blob redirects too)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(f"not an http(s) URL: {url!r}")
    conn = connect(parts.scheme, parts.netloc, tls, timeout, tls_host)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, headers=headers)
        return conn.getresponse()
    except ssl.SSLError as exc:
        conn.close()
        raise RegistryError(tls_failure(parts.netloc, exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _unreachable(parts.netloc, exc) from None


class Client:
    """Requests to ``host`` (HOST[:PORT]) for one repository and the actions it needs."""

    def __init__(self, host: str, credentials: Credentials | tuple | None = None,
                 timeout: float = 30, tls: TlsSettings | None = None, repository: str = "",
                 actions: str = "pull") -> None:
        self.host = host
        self.timeout = timeout
        self.tls = tls or TlsSettings.from_env()
        if isinstance(credentials, tuple):
            credentials = Credentials(*credentials)
        self.credentials = credentials
        self.scopes = (repository_scope(repository, actions),) if repository else ()
        self.repository = repository
        self.scheme = "https"
        self.confirmed = False  # a response came back over self.scheme
        self.authorization: str | None = None
        self.tokens = TokenCache()
        self.bearer_key: tuple | None = None
        self.conn: http.client.HTTPConnection | None = None

    # -- transport ------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = connect(self.scheme, self.host, self.tls, self.timeout)
        return self.conn

    def _may_fall_back(self) -> bool:
        return self.scheme == "https" and not self.confirmed and self.tls.may_use_http(self.host)

    def _send(self, method: str, url: str, body, headers: dict) -> http.client.HTTPResponse:
        attempts = 0
        while True:
            attempts += 1
            conn = self._connection()
            try:
                conn.request(method, url, body=body, headers=headers)
                response = conn.getresponse()
                self.confirmed = True
                return response
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise RegistryError(tls_failure(self.host, exc)) from None
            except (ConnectionRefusedError, socket.gaierror, socket.timeout) as exc:
                self.close()
                raise _unreachable(self.host, exc) from None
            except (ssl.SSLError, http.client.HTTPException, ConnectionError, OSError) as exc:
                self.close()
                if self._may_fall_back():  # a plain-HTTP registry answered our TLS hello
                    self.scheme = "http"
                    continue
                if isinstance(exc, ssl.SSLError):
                    raise RegistryError(tls_failure(self.host, exc)) from None
                if attempts > 1 or hasattr(body, "read"):  # else: a stale kept-alive socket
                    raise RegistryError(f"registry {self.host}: {exc}") from None

    def _get_url(self, url: str, headers: dict) -> tuple[int, bytes]:
        realm = urllib.parse.urlsplit(url)
        if realm.scheme == "http" and "Authorization" in headers and \
                not self.tls.may_use_http(realm.netloc):
            raise RegistryError(f"registry {self.host}: refusing to send credentials in clear "
                                f"text to its token server {realm.netloc} (an http:// realm); "
                                f"use --insecure-registry {realm.netloc} to allow it")
        response = open_url(url, headers, self.tls, self.host, self.timeout)
        try:
            return response.status, response.read()
        finally:
            response.close()

    # -- authentication -------------------------------------------------------------------

    def _scopes(self, challenge: Challenge) -> tuple[str, ...]:
        mine = tuple(s.rpartition(":")[0] + ":" for s in self.scopes)
        if challenge.scope and not challenge.scope.startswith(mine or ("\0",)):
            return (*self.scopes, challenge.scope)
        return self.scopes

    def _answer(self, challenge: Challenge | None) -> None:
        """Set self.authorization for a 401's challenge; AuthError if nothing new to try."""
        tried = self.authorization
        if challenge is None:
            raise AuthError(f"registry {self.host}: authentication required, and the registry "
                            "named no scheme we know")
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise AuthError(f"registry {self.host}: authentication required (use "
                                f"`isoinspect login {self.host}` or --username/--password)")
            if tried and tried.startswith("Basic "):
                raise AuthError(f"registry {self.host}: authentication refused: incorrect "
                                "username or password")
            self.authorization = basic_header(self.credentials)
            return
        scopes = self._scopes(challenge)
        key = (challenge.realm, challenge.service, scopes)
        if tried and tried.startswith("Bearer ") and key == self.bearer_key and \
                not self.tokens.renew(challenge, scopes):
            raise AuthError(self._denied())  # a fresh token for exactly this was refused
        self.bearer_key = key
        self.authorization = "Bearer " + self.tokens.token(challenge, scopes, self.credentials,
                                                           self._get_url)

    def _denied(self) -> str:
        if not self.repository:
            return f"registry {self.host}: authentication refused"
        login = "" if self.credentials else f"; try `isoinspect login {self.host}`"
        return (f"access denied to {self.host}/{self.repository}: the repository does not "
                f"exist or the token does not allow {','.join(self.scopes) or 'it'}{login}")

    # -- requests -------------------------------------------------------------------------

    def request(self, method: str, url: str, body=None, headers: dict | None = None,
                ok: tuple = (200,), stream: bool = False):
        """Send, answering a 401 and following GET/HEAD redirects; RegistryError unless the
        final status is in ``ok``. Returns the response (stream) or (response, body)."""
        headers = dict(headers or {})
        for _ in range(4):  # 401s answered: a scheme, a scope, a renewed token, then a denial
            if self.authorization:
                headers["Authorization"] = self.authorization
            response = self._send(method, url, body, headers)
            if response.status != 401:
                break
            challenge = parse_challenge(response.getheader("WWW-Authenticate"))
            response.read()
            self._answer(challenge)
        else:
            raise AuthError(self._denied())
        redirects = 0
        while response.status in REDIRECTS and method in ("GET", "HEAD") and \
                redirects < MAX_REDIRECTS and response.getheader("Location"):
            response.read()
            location = urllib.parse.urljoin(f"{self.scheme}://{self.host}{url}",
                                            response.getheader("Location"))
            same = urllib.parse.urlsplit(location).netloc == self.host
            plain = {k: v for k, v in headers.items() if k != "Authorization" or same}
            response = open_url(location, plain, self.tls, self.host, self.timeout, method)
            redirects += 1
        if response.status not in ok:
            text = response.read()[:400].decode(errors="replace")
            raise RegistryError(f"registry {self.host}: {method} {url} -> {response.status} "
                                f"{response.reason}: {text.strip()}")
        if stream:
            return response
        return response, response.read()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _path(self, location: str) -> str:
        parsed = urllib.parse.urlsplit(location)
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")

    def has_blob(self, repo: str, digest: str) -> bool:
        response, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
        return response.status == 200

    def upload(self, repo: str, digest: str, path: str | None = None, data: bytes | None = None,
               chunk_size: int = 8 << 20) -> None:
        response, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        location = response.getheader("Location")
        size = os.path.getsize(path) if path else len(data)
        offset = 0
        handle = open(path, "rb") if path else None
        try:
            while offset < size:
                chunk = handle.read(chunk_size) if handle else data[offset:offset + chunk_size]
                response, _ = self.request(
                    "PATCH", self._path(location), body=chunk,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                             "Content-Length": str(len(chunk))}, ok=(202,))
                location = response.getheader("Location") or location
                offset += len(chunk)
        finally:
            if handle:
                handle.close()
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{self._path(location)}{sep}digest={digest}", body=b"",
                     headers={"Content-Length": "0"}, ok=(201,))
