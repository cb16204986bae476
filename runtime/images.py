"""The image store: content-addressed layers, image configs and tags on disk.

Layout under the data dir:
  layers/<sha256 of the uncompressed layer tar (diff_id)>/diff/   the unpacked layer, an
      overlayfs lower dir; OCI whiteouts are stored as overlay whiteouts (char device 0:0,
      opaque dirs with trusted.overlay.opaque=y)
  layers/<diff_id>/layer.tar   the layer as exported (OCI .wh. entries), for save and push
  images/<sha256 of config.json>/config.json   OCI image config (diff_ids list the layers)
  images/<id>/start.bin   what a container start needs, in marshal form (fast to load)
  images/<id>/parent   the image this one was built on (build steps), if any
  tags/<name:tag with '/' as '%2F'>   the image id the tag points at
  cache/<sha256 of parent + instruction + content>   image id of a cached build step
  blobs/<sha256 of a compressed registry blob>   the diff_id it decompresses to

Only the start path (resolve + start_info) is used when running a container, and it reads two
small files; building, tagging and listing may import heavier modules lazily.
"""

from __future__ import annotations

import marshal
import os

from isoinspect.runtime import digests
from isoinspect.runtime.errors import ImageNotFound, IsoinspectError, NotFound
from isoinspect.runtime.events import image_event
from isoinspect.runtime.fsutil import write_atomic
from isoinspect.runtime.roots import Roots

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


DOCKER_HUB = "docker.io"  # the registry of a name without a host, as in Docker
_HUB_PREFIXES = ("docker.io/", "index.docker.io/")


def normalize_ref(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; a digest or tagged reference is kept.

    The store keeps Docker's familiar names: 'docker.io/library/busybox', 'library/busybox'
    and 'busybox' are one image, stored and found as 'busybox:latest' (as Docker shows them),
    so a local image is found whichever spelling `run` or `pull` was given.
    """
    if not ref or ref.strip() != ref or any(c in ref for c in " \t\n\\"):
        raise IsoinspectError(f"invalid reference format: {ref!r}")
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref += ":latest"
    if ref.startswith(_HUB_PREFIXES):
        ref = ref.partition("/")[2]
    if ref.startswith("library/") and ref.count("/") == 1:
        ref = ref[8:]
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
        if "@" in name:  # NAME@sha256:... as pulled (a digest is no tag: kept apart)
            image_id = self._by_digest(name)
            if image_id:
                return image_id
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
        raise ImageNotFound(f"unable to find image {ref!r}{hint}", ref)

    def _by_digest(self, name: str) -> str | None:
        try:
            with open(self.roots.data("digests", _tag_file(name))) as handle:
                image_id = handle.read().strip()
        except FileNotFoundError:
            return None
        return image_id if self.has_image(image_id) else None  # its image may be gone

    def remember_digest(self, ref: str, image_id: str) -> None:
        """``pull NAME@sha256:...``: the image that reference names, so `run` finds it by the
        same words (Docker's RepoDigests), without making it a tag `images` would list."""
        os.makedirs(self.roots.data("digests"), exist_ok=True)
        write_atomic(self.roots.data("digests", _tag_file(normalize_ref(ref))),
                     image_id.encode())

    def start_info(self, image_id: str) -> dict:
        """Layers (top first, as overlay lower dirs), env, entrypoint, cmd, workdir, user."""
        try:
            with open(self.roots.data("images", image_id, "start.bin"), "rb") as handle:
                info = marshal.load(handle)
        except FileNotFoundError:
            raise NotFound(f"image {image_id[:12]} is incomplete: no start information") from None
        if "layer_ids" not in info:  # written by an older version: derive it again
            info = self._start_info_from_config(self.config(image_id))
            write_atomic(self.roots.data("images", image_id, "start.bin"), marshal.dumps(info))
        # Layer paths are resolved against this store, so a store can be moved or copied.
        info["layers"] = [self.roots.data("layers", layer, "diff") for layer in info["layer_ids"]]
        return info

    # -- management (not on the start path) ----------------------------------------------------

    def layer_dir(self, diff_id: str) -> str:
        """The unpacked layer; ``diff_id`` is checked first (it may come from a config)."""
        return self.roots.data("layers", digests.hex_of(diff_id, "diffID"), "diff")

    def layer_tar(self, diff_id: str) -> str:
        return self.roots.data("layers", digests.hex_of(diff_id, "diffID"), "layer.tar")

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isdir(self.layer_dir(diff_id))

    def has_image(self, image_id: str) -> bool:
        if not digests.is_hex64(image_id.removeprefix("sha256:")):
            return False
        return os.path.isfile(self.roots.data("images", image_id.removeprefix("sha256:"),
                                              "start.bin"))

    def add_layer_from_tar(self, tar_path: str, move: bool = False,
                           expect: str | None = None) -> str:
        """Store an uncompressed layer tar, unpack it once, return its diff_id (sha256:...)."""
        from isoinspect.runtime import layers
        return layers.import_tar(self.roots, tar_path, move=move, expect=expect)

    def add_image(self, config: dict | bytes, tags: list[str] = (), parent: str = "") -> str:
        """Write an OCI image config whose layers are already stored; tag it; return the id.

        ``config`` may be the exact bytes of a config (as loaded or pulled), so the id stays
        the digest Docker and registries know it by.
        """
        import hashlib
        import json

        if isinstance(config, (bytes, bytearray)):
            raw = bytes(config)
            config = json.loads(raw)
        else:
            raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        for tag in tags:
            validate_ref(tag)
        image_id = hashlib.sha256(raw).hexdigest()
        image_dir = self.roots.data("images", image_id)
        info = marshal.dumps(self._start_info_from_config(config))
        if not self.has_image(image_id):
            staging = self.roots.data("images", f".staging-{image_id}-{os.getpid()}")
            os.makedirs(staging, exist_ok=True)
            write_atomic(os.path.join(staging, "config.json"), raw)
            if parent:
                write_atomic(os.path.join(staging, "parent"), parent.encode())
            write_atomic(os.path.join(staging, "start.bin"), info)
            try:
                os.rename(staging, image_dir)
            except OSError:
                import shutil
                shutil.rmtree(staging, ignore_errors=True)
                if not self.has_image(image_id):
                    raise
        for tag in tags:
            self.tag(image_id, tag)
        return image_id

    def _start_info_from_config(self, config: dict) -> dict:
        info = start_settings(config)
        for layer in info["layer_ids"]:
            if not os.path.isdir(self.roots.data("layers", layer, "diff")):
                raise IsoinspectError(f"layer sha256:{layer} is missing from the store")
        return info

    def tag(self, image_id: str, ref: str) -> None:
        name = validate_ref(ref)
        image_id = image_id.removeprefix("sha256:")
        if not self.has_image(image_id):
            raise NotFound(f"no such image: {image_id[:12]}")
        tags_dir = self.roots.data("tags")
        os.makedirs(tags_dir, exist_ok=True)
        write_atomic(os.path.join(tags_dir, _tag_file(name)), image_id.encode())
        image_event(self.roots, "tag", image_id, name)

    def untag(self, ref: str) -> bool:
        try:
            os.unlink(self.roots.data("tags", _tag_file(normalize_ref(ref))))
            return True
        except FileNotFoundError:
            return False

    def tags(self) -> dict[str, str]:
        """Every tag -> image id."""
        tags_dir = self.roots.data("tags")
        try:
            names = sorted(os.listdir(tags_dir))
        except FileNotFoundError:
            return {}
        result = {}
        for entry in names:
            if entry.startswith(".") or ".tmp" in entry:
                continue
            try:
                with open(os.path.join(tags_dir, entry)) as handle:
                    result[entry.replace("%2F", "/")] = handle.read().strip()
            except FileNotFoundError:
                continue
        return result

    def tags_of(self, image_id: str) -> list[str]:
        return [ref for ref, iid in self.tags().items() if iid == image_id]

    def image_ids(self) -> list[str]:
        try:
            return [e for e in os.listdir(self.roots.data("images"))
                    if len(e) == 64 and self.has_image(e)]
        except FileNotFoundError:
            return []

    def config_bytes(self, image_id: str) -> bytes:
        try:
            with open(self.roots.data("images", image_id.removeprefix("sha256:"),
                                      "config.json"), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise NotFound(f"no such image: {image_id[:12]}") from None

    def config(self, image_id: str) -> dict:
        import json
        return json.loads(self.config_bytes(image_id))

    def parent(self, image_id: str) -> str:
        try:
            with open(self.roots.data("images", image_id, "parent")) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return ""

    def size(self, image_id: str) -> int:
        return sum(_tar_size(self.roots, d) for d in self.config(image_id)["rootfs"]["diff_ids"])

    def list_images(self) -> list[dict]:
        """Every tag with its image id, creation time and size of its layers."""
        result = []
        for ref, image_id in self.tags().items():
            repo, _, tag = ref.rpartition(":")
            try:
                config = self.config(image_id)
            except NotFound:
                continue
            size = sum(_tar_size(self.roots, d) for d in config["rootfs"]["diff_ids"])
            result.append({"repository": repo, "tag": tag, "id": image_id,
                           "created": config.get("created", ""), "size": size})
        return result

    def work_dir(self, kind: str) -> str:
        """A scratch dir under tmp/ for a build step, load or pull (``<kind>-<pid>-<rand>``).

        What dead processes left is swept first, so a killed build or pull leaves nothing
        behind for long (``gc`` sweeps it too).
        """
        self.collect_stale()
        base = self.roots.data("tmp")
        os.makedirs(base, exist_ok=True)
        path = os.path.join(base, f"{kind}-{os.getpid()}-{os.urandom(4).hex()}")
        os.mkdir(path, 0o700)
        return path

    def collect_stale(self) -> list[str]:
        """Remove scratch dirs (tmp/), staging layer and image dirs and half-written files of
        processes that are gone (their pid is in the name); one line per thing removed.

        Left by a load, pull or build killed midway (a killed pull of a large image leaves its
        downloaded layers here). Entries of a live process are kept: it may still use them.
        """
        import shutil

        done = []
        for sub in ("tmp", "layers", "images", "tags", "cache"):
            parent = self.roots.data(sub)
            try:
                entries = os.listdir(parent)
            except FileNotFoundError:
                continue
            for entry in entries:
                pid = _entry_pid(sub, entry)
                if pid is None or pid == os.getpid() or (pid and os.path.exists(f"/proc/{pid}")):
                    continue
                path = os.path.join(parent, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                owner = f"dead process {pid}" if pid else "an interrupted removal"
                done.append(f"removed {sub}/{entry} (left by {owner})")
        return done

    # -- build cache ---------------------------------------------------------------------------

    def cache_get(self, key: str) -> str | None:
        try:
            with open(self.roots.data("cache", key)) as handle:
                image_id = handle.read().strip()
        except FileNotFoundError:
            return None
        return image_id if self.has_image(image_id) else None

    def cache_put(self, key: str, image_id: str) -> None:
        os.makedirs(self.roots.data("cache"), exist_ok=True)
        write_atomic(self.roots.data("cache", key), image_id.encode())

    # -- removal -------------------------------------------------------------------------------

    def users(self, image_id: str) -> list[str]:
        """Ids of containers (any state) created from the image."""
        from isoinspect.runtime.records import ContainerStore

        containers = ContainerStore(self.roots)
        found = []
        for cid in containers.ids():
            try:
                if containers.load(cid).image_id == image_id:
                    found.append(cid)
            except IsoinspectError:
                continue
        return found

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """``rmi``: untag ``ref``; delete the image once no tag points at it. Lines to print."""
        image_id = self.resolve(ref)
        by_tag = normalize_ref(ref) in self.tags()
        users = self.users(image_id)
        if users and not force:
            raise IsoinspectError(f"conflict: unable to remove image {ref} (must be forced): "
                                  f"container {users[0][:12]} is using it")
        done = []
        if by_tag:
            self.untag(ref)
            image_event(self.roots, "untag", image_id, normalize_ref(ref))
            done.append(f"Untagged: {normalize_ref(ref)}")
            if self.tags_of(image_id):
                return done
        else:
            tags = self.tags_of(image_id)
            if len(tags) > 1 and not force:
                raise IsoinspectError(f"conflict: unable to delete {image_id[:12]} (must be "
                                      "forced): image is referenced in multiple repositories")
            for tag in tags:
                self.untag(tag)
                image_event(self.roots, "untag", image_id, tag)
                done.append(f"Untagged: {tag}")
        if users:
            return done  # forced: untagged, but its layers stay while containers use them
        if any(self.parent(other) == image_id for other in self.image_ids()):
            return done  # still the base of another image's build step: kept as cache
        self._delete_image(image_id)
        image_event(self.roots, "delete", image_id, normalize_ref(ref))
        done.append(f"Deleted: sha256:{image_id}")
        done += self.collect_layers()
        return done

    def _delete_image(self, image_id: str) -> None:
        import shutil

        path = self.roots.data("images", image_id)
        trash = self.roots.data("images", f".staging-deleted-{image_id}-{os.getpid()}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)
        cache = self.roots.data("cache")
        try:
            for key in os.listdir(cache):
                try:
                    with open(os.path.join(cache, key)) as handle:
                        if handle.read().strip() == image_id:
                            os.unlink(os.path.join(cache, key))
                except FileNotFoundError:
                    pass
        except FileNotFoundError:
            pass

    def prune(self, all_images: bool = False) -> list[str]:
        """Delete dangling images: untagged and not the base of a kept image (build steps of
        tagged images stay, as cache). With ``all_images``, as ``docker image prune -a``: every
        image no container uses, tagged or not. Then the layers no image references."""
        in_use = {image_id for image_id in self.image_ids() if self.users(image_id)}
        roots = in_use if all_images else in_use | set(self.tags().values())
        keep: set[str] = set()
        for image_id in roots:
            current = image_id
            while current and current not in keep:
                keep.add(current)
                current = self.parent(current)
        done = []
        for image_id in self.image_ids():
            if image_id in keep:
                continue
            for tag in self.tags_of(image_id):
                self.untag(tag)
                done.append(f"Untagged: {tag}")
            self._delete_image(image_id)
            done.append(f"Deleted: sha256:{image_id}")
        return done + self.collect_layers()

    def remove_layer(self, diff_id: str) -> bool:
        """Delete a layer (renamed away first, so it is never seen half deleted)."""
        import shutil

        hexid = digests.hex_of(diff_id if diff_id.startswith("sha256:") else
                               f"sha256:{diff_id}", "diffID")
        trash = self.roots.data("layers", f".staging-deleted-{hexid}")
        try:
            os.rename(self.roots.data("layers", hexid), trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def collect_layers(self) -> list[str]:
        """Delete layers that no image config references."""
        used: set[str] = set()
        for image_id in self.image_ids():
            try:
                used.update(d.removeprefix("sha256:")
                            for d in self.config(image_id)["rootfs"]["diff_ids"])
            except (NotFound, KeyError, ValueError):
                continue
        done = []
        base = self.roots.data("layers")
        try:
            entries = os.listdir(base)
        except FileNotFoundError:
            return done
        for entry in entries:
            if len(entry) == 64 and entry not in used and self.remove_layer(entry):
                done.append(f"Deleted layer: sha256:{entry}")
        blobs = self.roots.data("blobs")
        try:
            for entry in os.listdir(blobs):
                with open(os.path.join(blobs, entry)) as handle:
                    if handle.read().strip().removeprefix("sha256:") not in used:
                        os.unlink(os.path.join(blobs, entry))
        except FileNotFoundError:
            pass
        return done


class LayerBatch:
    """Layers stored for one load or pull: if it fails, those it added are removed again, so
    a refused image leaves nothing (layers the store had before are kept).

    ``with LayerBatch(store) as batch: batch.add(tar, expect=diff_id)``
    """

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.added: list[str] = []

    def add(self, tar_path: str, expect: str) -> str:
        """Store (move) a layer tar verified against ``expect``, even if the store has it."""
        existed = self.store.has_layer(expect)
        diff_id = self.store.add_layer_from_tar(tar_path, move=True, expect=expect)
        if not existed:
            self.added.append(diff_id)
        return diff_id

    def __enter__(self) -> LayerBatch:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            for diff_id in self.added:
                self.store.remove_layer(diff_id)


def start_settings(config: object) -> dict:
    """What a container start needs from an image config, checked (a config may come from an
    archive or a registry): layer ids top first, env, entrypoint, cmd, workdir, user."""
    diff_ids = digests.config_diff_ids(config)
    settings = config.get("config") or {}
    if not isinstance(settings, dict):
        raise IsoinspectError("image config: 'config' is not an object")

    def strings(key: str, default: list[str]) -> list[str]:
        value = settings.get(key) or default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise IsoinspectError(f"image config: {key} is not a list of strings")
        return list(value)

    def text(key: str, default: str) -> str:
        value = settings.get(key) or default
        if not isinstance(value, str):
            raise IsoinspectError(f"image config: {key} is not a string")
        return value

    return {
        "layer_ids": [d.removeprefix("sha256:") for d in reversed(diff_ids)],
        "env": strings("Env", [DEFAULT_PATH_ENV]),
        "entrypoint": strings("Entrypoint", []),
        "cmd": strings("Cmd", []),
        "workdir": text("WorkingDir", "/"),
        "user": text("User", ""),
    }


_REF_RE = None


def validate_ref(ref: str) -> str:
    """Check a reference against Docker's grammar (name[:tag]); return it normalized."""
    global _REF_RE
    import re

    if _REF_RE is None:
        component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
        host = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?"
        _REF_RE = re.compile(rf"^{host}{component}(?:/{component})*(?::[\w][\w.-]{{0,127}})?$")
    name = normalize_ref(ref)
    if "@" in ref or not _REF_RE.match(name):
        raise IsoinspectError(f"invalid reference format: {ref!r} is not a valid name:tag")
    return name


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/a/b:tag' -> ('host:5000/a/b', 'tag')."""
    name = normalize_ref(ref)
    repo, _, tag = name.rpartition(":")
    return repo, tag


def _tar_size(roots: Roots, diff_id: str) -> int:
    try:
        return os.stat(roots.data("layers", diff_id.removeprefix("sha256:"), "layer.tar")).st_size
    except FileNotFoundError:
        return 0


def _entry_pid(sub: str, entry: str) -> int | None:
    """The pid that made a scratch entry of ``sub``; 0 for trash of a removal (nobody's);
    None for an entry of the store itself."""
    parts = entry.split("-")
    if sub == "tmp":  # <kind>-<pid>-<rand>
        field = parts[-2] if len(parts) >= 3 else ""
    elif not entry.startswith(".staging-"):
        fields = entry.split(".")  # NAME.<pid>.<rand>.tmp of fsutil.write_atomic
        if len(fields) < 4 or fields[-1] != "tmp":
            return None
        field = fields[-3]
    elif sub == "layers":  # .staging-<pid>-<rand>, or .staging-deleted-<id> (trash)
        if parts[1] == "deleted":
            return 0
        field = parts[1]
    else:  # images: .staging-<id>-<pid>, .staging-deleted-<id>-<pid>
        field = parts[-1]
    return int(field) if field.isdigit() and len(field) < 12 else None

