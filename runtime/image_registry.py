"""``push`` / ``pull`` over the OCI distribution API (HTTP; basic auth).

A reference names its registry by its first component when that has a '.' or ':' or is
``localhost`` (``127.0.0.1:5000/team/app:1``). Push: for each blob a HEAD first (a blob the
registry has is not sent again), then a chunked upload (POST, PATCH with Content-Range, PUT
?digest=); then the manifest. Layers travel uncompressed (``application/vnd.oci.image.layer.v1
.tar``), so a blob's digest is its diff_id. Pull accepts OCI and Docker schema 2 manifests (and
indexes: linux/amd64), gzip or plain layers; every blob is verified against its digest and
each layer against the config's diff_id before it is stored; a failure keeps nothing.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import urllib.parse

from isoinspect.runtime import digests, layers
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.image_archive import (MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
                                               MT_OCI_MANIFEST, oci_manifest)
from isoinspect.runtime.images import (ImageStore, LayerBatch, normalize_ref, start_settings,
                                       validate_ref)

ACCEPT = ", ".join([MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_DOCKER_LIST])


class RegistryError(IsoinspectError):
    pass


def parse_ref(ref: str) -> tuple[str, str, str]:
    """'127.0.0.1:5000/a/b:t' -> ('127.0.0.1:5000', 'a/b', 't')."""
    name = validate_ref(ref)
    first, sep, rest = name.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        raise IsoinspectError(f"{ref!r} names no registry: use HOST[:PORT]/NAME[:TAG] "
                              "(there is no default registry here)")
    repo, _, tag = rest.rpartition(":")
    return first, repo, tag


class Client:
    def __init__(self, host: str, credentials: tuple | None = None, timeout: float = 30) -> None:
        self.host = host
        self.timeout = timeout
        self.auth = None
        if credentials:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self.auth = f"Basic {token}"
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
        return self.conn

    def request(self, method: str, url: str, body=None, headers: dict | None = None,
                ok: tuple = (200,), stream: bool = False):
        headers = dict(headers or {})
        if self.auth:
            headers["Authorization"] = self.auth
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, url, body=body, headers=headers)
                response = conn.getresponse()
                break
            except (ConnectionRefusedError, socket.gaierror, socket.timeout) as exc:
                self.close()
                raise RegistryError(f"registry {self.host} is unreachable: {exc}") from None
            except (http.client.HTTPException, ConnectionError, OSError) as exc:
                self.close()
                if attempt or hasattr(body, "read"):
                    raise RegistryError(f"registry {self.host}: {exc}") from None
        if response.status == 401:
            response.read()
            raise RegistryError(f"registry {self.host}: authentication required or refused "
                                "(use --username/--password)")
        if response.status not in ok:
            text = response.read()[:400].decode(errors="replace")
            raise RegistryError(f"registry {self.host}: {method} {url} -> {response.status} "
                                f"{response.reason}: {text.strip()}")
        if stream:
            return response
        data = response.read()
        return response, data

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


def push(store: ImageStore, ref: str, credentials: tuple | None = None,
         chunk_size: int = 8 << 20) -> list[str]:
    host, repo, tag = parse_ref(ref)
    image_id = store.resolve(ref)
    client = Client(host, credentials)
    lines = []
    try:
        client.request("GET", "/v2/", ok=(200,))
        manifest_raw, config = oci_manifest(store, image_id)
        for diff in config["rootfs"]["diff_ids"]:
            short = diff.partition(":")[2][:12]
            if client.has_blob(repo, diff):
                lines.append(f"{short}: Layer already exists")
                continue
            client.upload(repo, diff, path=store.layer_tar(diff), chunk_size=chunk_size)
            lines.append(f"{short}: Pushed")
        config_digest = f"sha256:{image_id}"
        if not client.has_blob(repo, config_digest):
            client.upload(repo, config_digest, data=store.config_bytes(image_id),
                          chunk_size=chunk_size)
        response, _ = client.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest_raw,
                                     headers={"Content-Type": MT_OCI_MANIFEST}, ok=(201,))
        digest = response.getheader("Docker-Content-Digest") or \
            f"sha256:{hashlib.sha256(manifest_raw).hexdigest()}"
        lines.append(f"{tag}: digest: {digest} size: {len(manifest_raw)}")
    finally:
        client.close()
    return lines


def _fetch_json(client: Client, url: str, digest: str | None = None) -> tuple[bytes, dict]:
    response, data = client.request("GET", url, headers={"Accept": ACCEPT})
    if digest and f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise RegistryError(f"{url}: content does not match digest {digest}")
    try:
        return data, json.loads(data)
    except ValueError:
        raise RegistryError(f"{url}: not JSON") from None


def _download(client: Client, repo: str, digest: str, target: str) -> None:
    response = client.request("GET", f"/v2/{repo}/blobs/{digest}", stream=True)
    sha = hashlib.sha256()
    with open(target, "wb") as out:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            sha.update(chunk)
            out.write(chunk)
    if f"sha256:{sha.hexdigest()}" != digest:
        raise RegistryError(f"blob {digest} is corrupt: its content has digest "
                            f"sha256:{sha.hexdigest()}; nothing was stored")


def _is_linux_amd64(descriptor: object) -> bool:
    platform = descriptor.get("platform") if isinstance(descriptor, dict) else None
    platform = platform if isinstance(platform, dict) else {}
    return platform.get("architecture", "amd64") == "amd64" and \
        platform.get("os", "linux") == "linux"


def pull(store: ImageStore, ref: str, credentials: tuple | None = None) -> list[str]:
    host, repo, tag = parse_ref(ref)
    name = normalize_ref(ref)
    client = Client(host, credentials)
    lines = []
    work = None
    try:
        manifest_raw, manifest = _fetch_json(client, f"/v2/{repo}/manifests/{tag}")
        if isinstance(manifest, dict) and "manifests" in manifest:
            choice = next((m for m in manifest["manifests"] if _is_linux_amd64(m)), None)
            if choice is None:
                raise RegistryError(f"{ref}: no linux/amd64 image in the index")
            choice_digest = digests.check(choice.get("digest"), "manifest digest")
            manifest_raw, manifest = _fetch_json(client, f"/v2/{repo}/manifests/"
                                                 f"{choice_digest}", choice_digest)
        if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2 or \
                not isinstance(manifest.get("config"), dict) or \
                not isinstance(manifest.get("layers"), list):
            kind = manifest.get("mediaType", "schema 1?") if isinstance(manifest, dict) \
                else "not a JSON object"
            raise RegistryError(f"{ref}: unsupported manifest ({kind})")
        config_digest = digests.check(manifest["config"].get("digest"), "config digest")
        layer_digests = [digests.check(layer.get("digest") if isinstance(layer, dict) else None,
                                       "layer digest") for layer in manifest["layers"]]
        image_id = config_digest[7:]
        if store.has_image(image_id):  # the config is content-addressed: ours is the same
            config_raw = store.config_bytes(image_id)
            config = json.loads(config_raw)
        else:
            config_raw, config = _fetch_json(client, f"/v2/{repo}/blobs/{config_digest}",
                                             config_digest)
        diff_ids = digests.config_diff_ids(config)
        start_settings(config)
        if len(diff_ids) != len(layer_digests):
            raise RegistryError(f"{ref}: manifest and config disagree on the layer count")
        work = store.work_dir("pull")
        with LayerBatch(store) as batch:
            for index, (layer_digest, diff) in enumerate(zip(layer_digests, diff_ids)):
                short = layer_digest[7:19]
                if store.has_layer(diff):
                    lines.append(f"{short}: Already exists")
                    continue
                target = os.path.join(work, f"layer{index}")
                _download(client, repo, layer_digest, target)
                batch.add(target, expect=diff)
                lines.append(f"{short}: Pull complete")
            store.add_image(config_raw, [name])
        lines.append(f"Digest: sha256:{hashlib.sha256(manifest_raw).hexdigest()}")
        lines.append(f"Status: Downloaded image for {name} ({image_id[:12]})")
    finally:
        client.close()
        if work:
            shutil.rmtree(work, ignore_errors=True)
    return lines
