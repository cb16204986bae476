"""``push`` / ``pull`` over the OCI distribution API.

References follow Docker (registry_names: ``busybox`` is docker.io/library/busybox, pulled
from registry-1.docker.io); the connection, TLS and authentication (basic or the token flow)
are registry_client's. Push: for each blob a HEAD first (a blob the
registry has is not sent again), then a chunked upload (POST, PATCH with Content-Range, PUT
?digest=); then the manifest. Layers travel uncompressed (``application/vnd.oci.image.layer.v1
.tar``), so a blob's digest is its diff_id. Pull accepts OCI and Docker schema 2 manifests (and
indexes: linux/amd64), gzip or plain layers, by tag or by digest; every blob is verified
against its digest and each layer against the config's diff_id before it is stored; a
failure keeps nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Callable

from isoinspect.runtime import digests
from isoinspect.runtime.credentials import Credentials
from isoinspect.runtime.events import image_event
from isoinspect.runtime.image_archive import (MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
                                               MT_OCI_MANIFEST, oci_manifest)
from isoinspect.runtime.images import ImageStore, LayerBatch, start_settings
from isoinspect.runtime.registry_client import Client, RegistryError
from isoinspect.runtime.registry_names import Reference, api_base, parse_reference
from isoinspect.runtime.registry_tls import TlsSettings

__all__ = ["Client", "RegistryError", "push", "pull"]


class _ProgressLines(list):
    """The pull's output lines, each handed to ``progress`` (if any) as it is added."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        super().__init__()
        self.progress = progress

    def append(self, line: str) -> None:
        super().append(line)
        if self.progress is not None:
            self.progress(line)

ACCEPT = ", ".join([MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_DOCKER_LIST])


def push(store: ImageStore, ref: str, credentials: Credentials | tuple | None = None,
         chunk_size: int = 8 << 20, tls: TlsSettings | None = None) -> list[str]:
    reference = parse_reference(ref)
    if reference.digest or not reference.tag:
        raise RegistryError(f"cannot push {ref!r}: push names a tag, not a digest")
    repo, tag = reference.path, reference.tag
    image_id = store.resolve(reference.store_name)
    client = Client(reference.endpoint, credentials, tls=tls, repository=repo,
                    actions="pull,push")
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


def _manifest(client: Client, repo: str, reference: Reference) -> tuple[bytes, object]:
    try:
        return _fetch_json(client, f"/v2/{repo}/manifests/{reference.manifest_ref}",
                           reference.digest or None)
    except RegistryError as exc:
        if " -> 404 " in str(exc):
            raise RegistryError(f"manifest for {reference.familiar} not found: manifest "
                                "unknown") from None
        raise


def pull(store: ImageStore, ref: str, credentials: Credentials | tuple | None = None,
         tls: TlsSettings | None = None,
         progress: Callable[[str], None] | None = None) -> list[str]:
    """Pull ``ref`` into ``store``; return Docker's progress lines, each also given to
    ``progress`` as it happens (run's pull of a missing image shows them while it waits)."""
    reference = parse_reference(ref)
    repo, name = reference.path, reference.store_name
    client = Client(api_base(reference), credentials, tls=tls, repository=repo)
    lines = _ProgressLines(progress)
    work = None
    try:
        manifest_raw, manifest = _manifest(client, repo, reference)
        lines.append(f"{reference.tag or reference.digest}: Pulling from {repo}")
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
            up_to_date = bool(name) and store.tags().get(name) == image_id
            store.add_image(config_raw, [name] if name else [])
            if reference.digest:
                store.remember_digest(ref, image_id)
        image_event(store.roots, "pull", image_id, reference.familiar)
        lines.append(f"Digest: sha256:{hashlib.sha256(manifest_raw).hexdigest()}")
        lines.append(f"Status: Image is up to date for {reference.familiar}" if up_to_date else
                     f"Status: Downloaded image for {reference.familiar} ({image_id[:12]})")
    finally:
        client.close()
        if work:
            shutil.rmtree(work, ignore_errors=True)
    return lines
