"""``save`` / ``load``: images as tar archives, in the ``docker save`` format or the OCI layout.

docker save format (what ``docker load`` reads): manifest.json ([{Config, RepoTags, Layers}]),
<image id>.json (the config), <diff_id>/layer.tar (uncompressed), repositories.
OCI image layout: oci-layout, index.json (one manifest per tag, named by the annotations
``org.opencontainers.image.ref.name`` and ``io.containerd.image.name``), blobs/sha256/<digest>.

Loading checks every digest (the config's, the manifest's, each layer's diff_id) before the
image is written; a mismatch stores nothing (layers are staged and renamed into place whole).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from isoinspect.runtime import digests, layers, safe_extract
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import AtomicFile
from isoinspect.runtime.images import (ImageStore, LayerBatch, normalize_ref, start_settings,
                                       validate_ref)

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def _resolve_all(store: ImageStore, refs: list[str]) -> list[tuple[str, list[str]]]:
    """[(image id, tags to record)], one entry per distinct image."""
    order: list[str] = []
    tags: dict[str, list[str]] = {}
    for ref in refs:
        image_id = store.resolve(ref)
        if image_id not in tags:
            order.append(image_id)
            tags[image_id] = []
        name = normalize_ref(ref)
        if name in store.tags():
            tags[image_id].append(name)
    return [(image_id, tags[image_id]) for image_id in order]


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def _add_dir(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    archive.addfile(info)


def _add_file(archive: tarfile.TarFile, name: str, path: str) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = os.path.getsize(path), 0o644, 0
    with open(path, "rb") as handle:
        archive.addfile(info, handle)


def oci_manifest(store: ImageStore, image_id: str) -> tuple[bytes, dict]:
    """The OCI manifest (bytes) of a stored image, layers uncompressed (digest = diff_id)."""
    raw = store.config_bytes(image_id)
    config = json.loads(raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": f"sha256:{image_id}",
                   "size": len(raw)},
        "layers": [{"mediaType": MT_OCI_LAYER, "digest": diff,
                    "size": os.path.getsize(store.layer_tar(diff))}
                   for diff in config["rootfs"]["diff_ids"]],
    }
    return json.dumps(manifest, separators=(",", ":")).encode(), config


def save(store: ImageStore, refs: list[str], output: str, fmt: str = "docker") -> None:
    images = _resolve_all(store, refs)
    with AtomicFile(output) as raw_out, tarfile.open(fileobj=raw_out, mode="w",
                                                     format=tarfile.PAX_FORMAT) as archive:
        if fmt == "oci":
            _save_oci(store, images, archive)
        else:
            _save_docker(store, images, archive)


def _save_docker(store: ImageStore, images: list, archive: tarfile.TarFile) -> None:
    manifest = []
    repositories: dict = {}
    written: set[str] = set()
    for image_id, tags in images:
        raw = store.config_bytes(image_id)
        config = json.loads(raw)
        _add_bytes(archive, f"{image_id}.json", raw)
        layer_paths = []
        for diff in config["rootfs"]["diff_ids"]:
            hexid = diff.removeprefix("sha256:")
            if hexid not in written:
                _add_dir(archive, hexid)
                _add_bytes(archive, f"{hexid}/VERSION", b"1.0")
                _add_file(archive, f"{hexid}/layer.tar", store.layer_tar(diff))
                written.add(hexid)
            layer_paths.append(f"{hexid}/layer.tar")
        manifest.append({"Config": f"{image_id}.json", "RepoTags": tags or None,
                         "Layers": layer_paths})
        for tag in tags:
            repo, _, name = tag.rpartition(":")
            if layer_paths:
                repositories.setdefault(repo, {})[name] = layer_paths[-1].split("/")[0]
    _add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    if repositories:
        _add_bytes(archive, "repositories", json.dumps(repositories).encode())


def _save_oci(store: ImageStore, images: list, archive: tarfile.TarFile) -> None:
    _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_dir(archive, "blobs")
    _add_dir(archive, "blobs/sha256")
    written: set[str] = set()
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}

    def blob(digest: str, data: bytes | None = None, path: str | None = None) -> None:
        hexid = digest.removeprefix("sha256:")
        if hexid in written:
            return
        written.add(hexid)
        if data is not None:
            _add_bytes(archive, f"blobs/sha256/{hexid}", data)
        else:
            _add_file(archive, f"blobs/sha256/{hexid}", path)

    for image_id, tags in images:
        manifest_raw, config = oci_manifest(store, image_id)
        manifest_digest = f"sha256:{hashlib.sha256(manifest_raw).hexdigest()}"
        blob(f"sha256:{image_id}", store.config_bytes(image_id))
        for diff in config["rootfs"]["diff_ids"]:
            blob(diff, path=store.layer_tar(diff))
        blob(manifest_digest, manifest_raw)
        descriptor = {"mediaType": MT_OCI_MANIFEST, "digest": manifest_digest,
                      "size": len(manifest_raw),
                      "platform": {"architecture": config.get("architecture", "amd64"),
                                   "os": config.get("os", "linux")}}
        for tag in tags or [None]:
            entry = dict(descriptor)
            if tag:
                entry["annotations"] = {"io.containerd.image.name": tag,
                                        "org.opencontainers.image.ref.name": tag}
            index["manifests"].append(entry)
    _add_bytes(archive, "index.json", json.dumps(index).encode())


# -- load ----------------------------------------------------------------------------------------

@dataclass
class _Image:
    """One image of an archive, checked and ready to store (nothing written yet)."""

    raw_config: bytes
    diff_ids: list[str]
    layer_files: list[str]
    tags: list[str]


def load_stream(store: ImageStore, stream: BinaryIO) -> list[str]:
    """``load`` of an archive read from a pipe (``isoinspect load < image.tar``).

    A tar is read twice (listed, then extracted), so the stream is first copied into the
    store's scratch space (same file system as the layers, removed afterwards).
    """
    spool_dir = store.work_dir("load-stdin")
    try:
        spool = os.path.join(spool_dir, "archive")
        with open(spool, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
            copied = out.tell()
        if not copied:
            raise IsoinspectError("requested load from stdin, but stdin is empty")
        return load(store, spool, label="stdin")
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


def load(store: ImageStore, path: str, label: str | None = None) -> list[str]:
    """Load every image of a docker-save or OCI-layout tar (plain or gzip); lines to print.

    The archive is unpacked with nothing leaving the scratch dir (safe_extract), every digest
    is checked and every image planned before the first layer is stored; a failure raises a
    one-line IsoinspectError and leaves nothing in the store.
    """
    work = store.work_dir("load")
    shown = label or path
    try:
        try:
            with tarfile.open(path, "r:*") as archive:
                safe_extract.extract(archive, work, safe_extract.ARCHIVE)
        except (tarfile.TarError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "could not be opened successfully" in reason:  # tarfile lists every method tried
                reason = "not a tar archive (plain, gzip, bzip2 or xz)"
            raise IsoinspectError(f"cannot read image archive {shown}: {reason}") from None
        except IsoinspectError as exc:
            raise IsoinspectError(f"image archive {shown}: {exc}; nothing was loaded") from None
        if os.path.isfile(os.path.join(work, "manifest.json")):
            images = _plan_docker(work)
        elif os.path.isfile(os.path.join(work, "index.json")):
            images = _plan_oci(work)
        else:
            raise IsoinspectError(f"{shown} is neither a docker save archive (manifest.json) "
                                  "nor an OCI image layout (index.json)")
        return _commit(store, images)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise IsoinspectError(f"{what} is not valid JSON: {exc}") from None


def _field(obj: object, key: str, kind: type, what: str):
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise IsoinspectError(f"{what}: {key!r} is missing or not a {kind.__name__}")
    return value


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise IsoinspectError(f"{what} is not a list of strings")
    return value


def _inside(work: str, rel: str) -> str:
    full = os.path.realpath(os.path.join(work, rel))
    if not full.startswith(os.path.realpath(work) + "/"):
        raise IsoinspectError(f"archive path {rel!r} escapes the archive")
    if not os.path.isfile(full):
        raise IsoinspectError(f"archive is missing {rel}")
    return full


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _image(raw_config: bytes, layer_files: list[str], tags: list[str], where: str) -> _Image:
    """Check a config (JSON, diff_ids) and the tags before anything is stored."""
    config = _json(raw_config, f"image config of {where}")
    diff_ids = digests.config_diff_ids(config)
    start_settings(config)
    if len(diff_ids) != len(layer_files):
        raise IsoinspectError(f"image config lists {len(diff_ids)} layers, the archive has "
                              f"{len(layer_files)}")
    checked = []
    for tag in tags:
        try:
            checked.append(validate_ref(tag))
        except IsoinspectError as exc:  # Docker: "invalid reference format"
            raise IsoinspectError(f"{exc} (a tag in {where}); nothing was loaded") from None
    return _Image(raw_config, diff_ids, layer_files, checked)


def _commit(store: ImageStore, images: list[_Image]) -> list[str]:
    """Store every layer (each verified against its diff_id, even one the store has), then
    the images; if a layer fails, the layers this load added are removed again."""
    imported: dict[str, str] = {}  # layer file -> diff_id it was stored as
    with LayerBatch(store) as batch:
        for image in images:
            for diff, layer_file in zip(image.diff_ids, image.layer_files):
                if layer_file in imported:  # one file for several layers: already verified
                    if imported[layer_file] != diff:
                        raise IsoinspectError(f"layer digest mismatch: expected {diff}, got "
                                              f"{imported[layer_file]}")
                    continue
                imported[layer_file] = batch.add(layer_file, expect=diff)
    lines = []
    for image in images:
        image_id = store.add_image(image.raw_config, image.tags)
        lines += [f"Loaded image: {tag}" for tag in image.tags] or \
            [f"Loaded image ID: sha256:{image_id}"]
    return lines


def _plan_docker(work: str) -> list[_Image]:
    manifest = _json(_read(os.path.join(work, "manifest.json")), "manifest.json")
    if not isinstance(manifest, list):
        raise IsoinspectError("manifest.json is not a list of images")
    images = []
    for entry in manifest:
        config_rel = _field(entry, "Config", str, "manifest.json")
        raw = _read(_inside(work, config_rel))
        expected = os.path.basename(config_rel).removesuffix(".json")
        if digests.is_hex64(expected) and expected != hashlib.sha256(raw).hexdigest():
            raise IsoinspectError(f"config {config_rel} does not match its digest")
        layer_files = [_inside(work, rel) for rel in
                       _strings(_field(entry, "Layers", list, "manifest.json"),
                                "manifest.json Layers")]
        tags = _strings(entry.get("RepoTags") or [], "manifest.json RepoTags")
        images.append(_image(raw, layer_files, tags, "manifest.json"))
    return images


def _read_blob(work: str, digest: object) -> str:
    return _inside(work, f"blobs/sha256/{digests.hex_of(digest)}")


def _verified(work: str, digest: object) -> bytes:
    data = _read(_read_blob(work, digest))
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise IsoinspectError(f"blob {digest} is corrupt (digest mismatch)")
    return data


def _architecture(descriptor: object) -> object:
    platform = descriptor.get("platform") if isinstance(descriptor, dict) else None
    return platform.get("architecture", "amd64") if isinstance(platform, dict) else "amd64"


def _plan_oci(work: str) -> list[_Image]:
    index = _json(_read(os.path.join(work, "index.json")), "index.json")
    images: list[_Image] = []

    def walk(descriptors: object, inherited: list[str], where: str) -> None:
        if not isinstance(descriptors, list) or not all(isinstance(d, dict)
                                                        for d in descriptors):
            raise IsoinspectError(f"{where}: manifests is not a list of descriptors")
        for desc in descriptors:
            annotations = desc.get("annotations") or {}
            if not isinstance(annotations, dict):
                raise IsoinspectError(f"{where}: annotations is not an object")
            name = annotations.get("io.containerd.image.name") or \
                annotations.get("org.opencontainers.image.ref.name")
            tags = _strings([name], f"{where}: image name") if name else list(inherited)
            digest = desc.get("digest")
            data = _json(_verified(work, digest), f"blob {digest}")
            if not isinstance(data, dict):
                raise IsoinspectError(f"blob {digest} is not a JSON object")
            if desc.get("mediaType") in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in data:
                chosen = [d for d in _field(data, "manifests", list, f"index {digest}")
                          if _architecture(d) == "amd64"]
                walk(chosen, tags, f"index {digest}")
                continue
            config = _field(data, "config", dict, f"manifest {digest}")
            raw_config = _verified(work, config.get("digest"))
            layer_files = []
            for layer in _field(data, "layers", list, f"manifest {digest}"):
                layer_digest = layer.get("digest") if isinstance(layer, dict) else None
                layer_path = _read_blob(work, layer_digest)
                if layers.digest_file(layer_path) != layer_digest[7:]:
                    raise IsoinspectError(f"blob {layer_digest} is corrupt")
                layer_files.append(layer_path)
            images.append(_image(raw_config, layer_files, tags, f"manifest {digest}"))

    walk(index.get("manifests") or [] if isinstance(index, dict) else None, [], "index.json")
    return images
