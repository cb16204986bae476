"""Registry authentication: the ``WWW-Authenticate`` challenge and the distribution token flow.

A registry answers 401 with ``Bearer realm=R,service=S,scope=...`` (token auth: Docker Hub,
GHCR, Harbor, docker-registry's ``auth: token``) or ``Basic realm=...`` (htpasswd). For Bearer,
the client GETs ``R?service=S&scope=repository:NAME:pull[,push]`` (with basic credentials if it
has some, anonymously otherwise), takes ``token`` (or ``access_token``) from the JSON answer
and retries with ``Authorization: Bearer``. Tokens are kept per (realm, service, scopes) for
the one operation, never on disk.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

from isoinspect.runtime.credentials import Credentials
from isoinspect.runtime.errors import IsoinspectError

_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')

# (url, headers) -> (status, body): how the caller fetches the realm (its TLS settings)
Getter = Callable[[str, dict], tuple[int, bytes]]


class AuthError(IsoinspectError):
    """Credentials refused or missing; exit 1 like Docker's "unauthorized"."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # 'basic' or 'bearer' (lower case)
    realm: str = ""
    service: str = ""
    scope: str = ""


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a WWW-Authenticate header; None if there is none we know."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    params = {}
    for key, value in _PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return Challenge(scheme, params.get("realm", ""), params.get("service", ""),
                     params.get("scope", ""))


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def repository_scope(repository: str, actions: str) -> str:
    """'team/app', 'pull,push' -> 'repository:team/app:pull,push' (the spec's scope)."""
    return f"repository:{repository}:{actions}" if repository else ""


@dataclass
class TokenCache:
    """Bearer tokens of one operation, keyed by realm, service and scopes."""

    tokens: dict[tuple[str, str, tuple[str, ...]], str] = field(default_factory=dict)
    renewed: set[tuple[str, str, tuple[str, ...]]] = field(default_factory=set)

    def token(self, challenge: Challenge, scopes: tuple[str, ...],
              credentials: Credentials | None, get: Getter) -> str:
        key = (challenge.realm, challenge.service, scopes)
        if key not in self.tokens:
            self.tokens[key] = fetch_token(challenge, scopes, credentials, get)
        return self.tokens[key]

    def renew(self, challenge: Challenge, scopes: tuple[str, ...]) -> bool:
        """Forget the token the registry refused, once per key: it may have expired during
        a long push (tokens live minutes); a second refusal is a real denial (False)."""
        key = (challenge.realm, challenge.service, scopes)
        if key in self.renewed:
            return False
        self.renewed.add(key)
        self.tokens.pop(key, None)
        return True


def token_url(challenge: Challenge, scopes: tuple[str, ...]) -> str:
    query = [("service", challenge.service)] if challenge.service else []
    query += [("scope", scope) for scope in scopes if scope]
    sep = "&" if "?" in challenge.realm else "?"
    return challenge.realm + (sep + urllib.parse.urlencode(query) if query else "")


def fetch_token(challenge: Challenge, scopes: tuple[str, ...],
                credentials: Credentials | None, get: Getter) -> str:
    """GET the realm for a token covering ``scopes``; AuthError if refused."""
    if urllib.parse.urlsplit(challenge.realm).scheme not in ("http", "https"):
        raise IsoinspectError(f"registry token realm {challenge.realm!r} is not an http(s) URL",
                              exit_code=1)
    headers = {"Authorization": basic_header(credentials)} if credentials else {}
    status, body = get(token_url(challenge, scopes), headers)
    if status in (401, 403):
        who = f"user {credentials.username!r}" if credentials else "anonymous access"
        scope = f", or no access to {' '.join(scopes)}" if any(scopes) else ""
        raise AuthError(f"unauthorized: {challenge.realm} refused {who} "
                        f"(incorrect username or password{scope})")
    if status != 200:
        raise IsoinspectError(f"token server {challenge.realm}: HTTP {status}: "
                              f"{body[:200].decode(errors='replace').strip()}", exit_code=1)
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    token = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) \
        else None
    if not isinstance(token, str) or not token:
        raise IsoinspectError(f"token server {challenge.realm} sent no token", exit_code=1)
    return token
