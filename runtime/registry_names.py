"""Image references as Docker reads them: which registry, which repository, which tag/digest.

``busybox`` is ``docker.io/library/busybox:latest``, ``user/img`` is ``docker.io/user/img``;
the first component names a registry only when it holds a '.' or a ':' or is ``localhost``
(Docker's rule, so ``team/app`` is a Docker Hub user, not a host called "team"). Docker Hub's
API lives at ``registry-1.docker.io``; ``ISOINSPECT_REGISTRY_MIRROR`` (Docker's
``registry-mirrors``) sends docker.io pulls elsewhere. The store keeps the familiar names
(images.normalize_ref), so a local ``busybox`` is the pulled ``docker.io/library/busybox``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.images import DOCKER_HUB, normalize_ref, validate_ref

DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"  # the key Docker's config.json uses
MIRROR_ENV = "ISOINSPECT_REGISTRY_MIRROR"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference: ``domain/path`` plus a tag, a digest or both."""

    domain: str  # 'docker.io', '127.0.0.1:5000', 'localhost'
    path: str  # repository inside the registry: 'library/busybox', 'team/app'
    tag: str  # 'latest' when neither tag nor digest was given; '' with a digest alone
    digest: str = ""  # 'sha256:<hex>' or ''

    @property
    def endpoint(self) -> str:
        """HOST[:PORT] the registry API is served at (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def manifest_ref(self) -> str:
        """What goes after /manifests/: the digest if there is one (it pins the content)."""
        return self.digest or self.tag

    @property
    def store_name(self) -> str:
        """The name:tag the local store keeps ('' for a digest-only pull: no tag)."""
        return normalize_ref(f"{self.domain}/{self.path}:{self.tag}") if self.tag else ""

    @property
    def familiar(self) -> str:
        """The reference as Docker prints it: 'busybox:latest', 'reg:5000/a@sha256:...'."""
        name = normalize_ref(f"{self.domain}/{self.path}").rpartition(":")[0]
        return f"{name}@{self.digest}" if self.digest else f"{name}:{self.tag}"


def split_domain(name: str) -> tuple[str, str]:
    """'busybox' -> ('docker.io', 'library/busybox'); 'reg:5000/a' -> ('reg:5000', 'a')."""
    first, sep, rest = name.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        domain, rest = DOCKER_HUB, name
    else:
        domain = "docker.io" if first == "index.docker.io" else first
    if domain == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    return domain, rest


def parse_reference(ref: str) -> Reference:
    """Parse NAME[:TAG][@DIGEST] with Docker's defaults; one-line IsoinspectError if invalid
    (exit 1 from pull/push, as `docker pull Busybox`)."""
    name, at, digest = ref.partition("@")
    if at and not _DIGEST.match(digest):
        raise IsoinspectError(f"invalid reference format: {ref!r} (a digest is sha256:<64 hex>)")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, _, tag = name.rpartition(":")
    elif not at:
        tag = "latest"
    if not name:
        raise IsoinspectError(f"invalid reference format: {ref!r}")
    domain, path = split_domain(name)
    if _HEX64.match(path.removeprefix("library/")):
        raise IsoinspectError(f"invalid repository name {ref!r}: a 64-hex name would read as an "
                         "image id")
    validate_ref(f"{domain}/{path}:{tag or 'latest'}")
    return Reference(domain, path, tag, digest)


def api_base(ref: Reference) -> str:
    """The HOST[:PORT] to talk to for ``ref``: its endpoint, or the docker.io mirror."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if ref.domain == DOCKER_HUB and mirror:
        return mirror.removeprefix("https://").removeprefix("http://").rstrip("/")
    return ref.endpoint


def server_key(server: str | None) -> str:
    """The credentials key of a `login` SERVER: 'HOST[:PORT]', or Docker Hub's URL key."""
    server = (server or "").strip()
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host or host in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API):
        return DOCKER_HUB_AUTH_KEY
    return host.lower()


def key_endpoint(key: str) -> str:
    """The API host behind a credentials key (Docker Hub's key is a URL)."""
    return DOCKER_HUB_API if key == DOCKER_HUB_AUTH_KEY else key


def reference_key(ref: Reference) -> str:
    """The credentials key a pull/push of ``ref`` uses."""
    return DOCKER_HUB_AUTH_KEY if ref.domain == DOCKER_HUB else ref.domain
