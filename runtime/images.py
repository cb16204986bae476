"""The image store: content-addressed layers, image configs and tags on disk.

Layout under the data dir:
  layers/<sha256 of the layer tar>/diff/   the unpacked layer, an overlayfs lower dir
  layers/<sha256 of the layer tar>/layer.tar
  images/<sha256 of config.json>/config.json   OCI image config (diff_ids list the layers)
  images/<id>/start.bin   what a container start needs, in marshal form (fast to load)
  tags/<name:tag with '/' as '%2F'>   the image id the tag points at

Only the start path (resolve + start_info) is used when running a container, and it reads two
small files; building, tagging and listing may import heavier modules lazily.
"""

from __future__ import annotations

import marshal
import os

from isoinspect.runtime.errors import IsoinspectError, NotFound
from isoinspect.runtime.roots import Roots

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def normalize_ref(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; a digest or tagged reference is kept."""
    if not ref or ref.strip() != ref or any(c in ref for c in " \t\n\\"):
        raise IsoinspectError(f"invalid reference format: {ref!r}")
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref += ":latest"
    return ref.lower() if ref.lower() == ref else _invalid(ref)


def _invalid(ref: str) -> str:
    raise IsoinspectError(f"invalid reference format: repository name must be lowercase: {ref!r}")


def _tag_file(ref: str) -> str:
    return ref.replace("/", "%2F")


class ImageStore:
    """Read and write images under ``roots.data_dir``."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots

    # -- start path -------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """Return the image id for a tag or an id (prefix); NotFound if there is none."""
        name = normalize_ref(ref)
        try:
            with open(self.roots.data("tags", _tag_file(name))) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            pass
        candidate = ref[7:] if ref.startswith("sha256:") else ref
        if len(candidate) >= 4 and all(c in "0123456789abcdef" for c in candidate):
            try:
                matches = [i for i in os.listdir(self.roots.data("images"))
                           if i.startswith(candidate)]
            except FileNotFoundError:
                matches = []
            if len(matches) == 1:
                return matches[0]
        hint = " (run `isoinspect images --ensure-base` to create it)" \
            if name == "busybox:latest" else ""
        raise NotFound(f"unable to find image {ref!r}{hint}")

    def start_info(self, image_id: str) -> dict:
        """Layers (top first, as overlay lower dirs), env, entrypoint, cmd, workdir, user."""
        try:
            with open(self.roots.data("images", image_id, "start.bin"), "rb") as handle:
                return marshal.load(handle)
        except FileNotFoundError:
            raise NotFound(f"image {image_id[:12]} is incomplete: no start information") from None

    # -- management (not on the start path) ----------------------------------------------------

    def layer_dir(self, diff_id: str) -> str:
        return self.roots.data("layers", diff_id.removeprefix("sha256:"), "diff")

    def add_layer_from_tar(self, tar_path: str) -> str:
        """Store an uncompressed layer tar, unpack it once, return its diff_id (sha256:...)."""
        from isoinspect.runtime import layers
        return layers.import_tar(self.roots, tar_path)

    def add_image(self, config: dict, tags: list[str]) -> str:
        """Write an OCI image config whose layers are already stored; tag it; return the id."""
        import hashlib
        import json

        raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        image_id = hashlib.sha256(raw).hexdigest()
        image_dir = self.roots.data("images", image_id)
        os.makedirs(image_dir, exist_ok=True)
        _atomic_write(os.path.join(image_dir, "config.json"), raw)
        _atomic_write(os.path.join(image_dir, "start.bin"),
                      marshal.dumps(self._start_info_from_config(config)))
        for tag in tags:
            self.tag(image_id, tag)
        return image_id

    def _start_info_from_config(self, config: dict) -> dict:
        settings = config.get("config") or {}
        layers = [self.layer_dir(d) for d in config["rootfs"]["diff_ids"]]
        for path in layers:
            if not os.path.isdir(path):
                raise IsoinspectError(f"layer {path} is missing from the store")
        return {
            "layers": list(reversed(layers)),
            "env": list(settings.get("Env") or [DEFAULT_PATH_ENV]),
            "entrypoint": list(settings.get("Entrypoint") or []),
            "cmd": list(settings.get("Cmd") or []),
            "workdir": settings.get("WorkingDir") or "/",
            "user": settings.get("User") or "",
        }

    def tag(self, image_id: str, ref: str) -> None:
        name = normalize_ref(ref)
        tags_dir = self.roots.data("tags")
        os.makedirs(tags_dir, exist_ok=True)
        _atomic_write(os.path.join(tags_dir, _tag_file(name)), image_id.encode())

    def config(self, image_id: str) -> dict:
        import json
        with open(self.roots.data("images", image_id, "config.json")) as handle:
            return json.load(handle)

    def list_images(self) -> list[dict]:
        """Every tag with its image id, creation time and size of its layers."""
        tags_dir = self.roots.data("tags")
        try:
            names = sorted(os.listdir(tags_dir))
        except FileNotFoundError:
            return []
        result = []
        for entry in names:
            if entry.startswith("."):
                continue
            with open(os.path.join(tags_dir, entry)) as handle:
                image_id = handle.read().strip()
            ref = entry.replace("%2F", "/")
            repo, _, tag = ref.rpartition(":")
            config = self.config(image_id)
            size = sum(_tar_size(self.roots, d) for d in config["rootfs"]["diff_ids"])
            result.append({"repository": repo, "tag": tag, "id": image_id,
                           "created": config.get("created", ""), "size": size})
        return result


def _tar_size(roots: Roots, diff_id: str) -> int:
    try:
        return os.stat(roots.data("layers", diff_id.removeprefix("sha256:"), "layer.tar")).st_size
    except FileNotFoundError:
        return 0


def _atomic_write(path: str, data: bytes) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
