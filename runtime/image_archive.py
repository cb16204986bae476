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

from isoinspect.runtime import layers
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.images import ImageStore, normalize_ref, validate_ref

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
    tmp = f"{output}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as raw_out, tarfile.open(fileobj=raw_out, mode="w",
                                                      format=tarfile.PAX_FORMAT) as archive:
            if fmt == "oci":
                _save_oci(store, images, archive)
            else:
                _save_docker(store, images, archive)
        os.replace(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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

def _safe_extract(archive: tarfile.TarFile, target: str) -> None:
    members = []
    for member in archive.getmembers():
        name = os.path.normpath(member.name.lstrip("/"))
        if name == ".." or name.startswith("../"):
            raise IsoinspectError(f"archive entry {member.name!r} escapes the archive")
        if not (member.isreg() or member.isdir() or member.issym()):
            continue
        members.append(member)
    archive.extractall(target, members=members)


def load(store: ImageStore, path: str) -> list[str]:
    """Load every image of a docker-save or OCI-layout tar (plain or gzip); lines to print."""
    work = store.work_dir("load")
    try:
        try:
            with tarfile.open(path, "r:*") as archive:
                _safe_extract(archive, work)
        except (tarfile.TarError, OSError) as exc:
            raise IsoinspectError(f"cannot read image archive {path}: {exc}") from None
        if os.path.isfile(os.path.join(work, "manifest.json")):
            return _load_docker(store, work)
        if os.path.isfile(os.path.join(work, "index.json")):
            return _load_oci(store, work)
        raise IsoinspectError(f"{path} is neither a docker save archive (manifest.json) nor "
                              "an OCI image layout (index.json)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _inside(work: str, rel: str) -> str:
    full = os.path.realpath(os.path.join(work, rel))
    if not full.startswith(os.path.realpath(work) + "/"):
        raise IsoinspectError(f"archive path {rel!r} escapes the archive")
    if not os.path.isfile(full):
        raise IsoinspectError(f"archive is missing {rel}")
    return full


def _commit(store: ImageStore, raw_config: bytes, layer_files: list[str],
            tags: list[str]) -> list[str]:
    config = json.loads(raw_config)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layer_files):
        raise IsoinspectError(f"image config lists {len(diff_ids)} layers, the archive has "
                              f"{len(layer_files)}")
    for diff, layer_file in zip(diff_ids, layer_files):
        if not store.has_layer(diff):
            store.add_layer_from_tar(layer_file, move=True, expect=diff)
    valid = []
    for tag in tags:
        try:
            valid.append(validate_ref(tag))
        except IsoinspectError:
            continue
    image_id = store.add_image(raw_config, valid)
    if valid:
        return [f"Loaded image: {tag}" for tag in valid]
    return [f"Loaded image ID: sha256:{image_id}"]


def _load_docker(store: ImageStore, work: str) -> list[str]:
    with open(os.path.join(work, "manifest.json")) as handle:
        manifest = json.load(handle)
    lines = []
    for entry in manifest:
        raw = open(_inside(work, entry["Config"]), "rb").read()
        expected = os.path.basename(entry["Config"]).removesuffix(".json")
        digest = hashlib.sha256(raw).hexdigest()
        if len(expected) == 64 and expected != digest:
            raise IsoinspectError(f"config {entry['Config']} does not match its digest")
        layer_files = [_inside(work, rel) for rel in entry["Layers"]]
        lines += _commit(store, raw, layer_files, list(entry.get("RepoTags") or []))
    return lines


def _read_blob(work: str, digest: str) -> str:
    algo, _, hexid = digest.partition(":")
    if algo != "sha256" or len(hexid) != 64:
        raise IsoinspectError(f"unsupported digest {digest}")
    return _inside(work, f"blobs/sha256/{hexid}")


def _verified(work: str, digest: str) -> bytes:
    data = open(_read_blob(work, digest), "rb").read()
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise IsoinspectError(f"blob {digest} is corrupt (digest mismatch)")
    return data


def _load_oci(store: ImageStore, work: str) -> list[str]:
    with open(os.path.join(work, "index.json")) as handle:
        index = json.load(handle)
    lines = []

    def walk(descriptors: list, inherited: list[str]) -> None:
        nonlocal lines
        for desc in descriptors:
            annotations = desc.get("annotations") or {}
            name = annotations.get("io.containerd.image.name") or \
                annotations.get("org.opencontainers.image.ref.name")
            tags = [name] if name else list(inherited)
            data = json.loads(_verified(work, desc["digest"]))
            if desc.get("mediaType") in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in data:
                walk([d for d in data["manifests"]
                      if (d.get("platform") or {}).get("architecture", "amd64") == "amd64"],
                     tags)
                continue
            raw_config = _verified(work, data["config"]["digest"])
            layer_files = []
            for layer in data["layers"]:
                layer_path = _read_blob(work, layer["digest"])
                if layers.digest_file(layer_path) != layer["digest"].partition(":")[2]:
                    raise IsoinspectError(f"blob {layer['digest']} is corrupt")
                layer_files.append(layer_path)
            lines += _commit(store, raw_config, layer_files, tags)

    walk(index.get("manifests") or [], [])
    return lines
