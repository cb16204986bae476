"""`bench startup --image IMG -- CMD`: the user's own image and command, in every target that
can run an image (hyperfine's core use, side by side across runtimes).

The image comes from the user's isoinspect store (pull, load, build) and reaches each kind of
target in its own format, from one source, so every target runs the same files:

* isoinspect (CLI, library, warm pool): the store's ``save`` archive (no tags) loaded into
  the target's private store, run by its id;
* runc, crun, runsc: the image's layers merged by the kernel (a read-only overlay mounted in
  a private mount namespace of a short-lived ``unshare``, so no mount is ever left on the
  host) and copied once into a plain root file system, which each bundle copies;
* docker: the same archive through ``docker load``, tagged ``isoinspect-bench-<pid>-image``
  and untagged at clean-up (an image the daemon already had under other tags stays).

``command`` is what the user typed after ``--`` (the image's Cmd when empty) and goes to
targets that apply the image's entrypoint themselves (``run``, ``docker run``); ``argv`` is
the entrypoint + command resolved once, for OCI bundles and the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError, UsageError


@dataclass(frozen=True)
class UserImage:
    """The user's image and command, resolved against their store."""

    ref: str                     # as the user typed it
    image_id: str                # hex config digest (the same in every store it is loaded into)
    command: tuple[str, ...]     # after `--` (empty: the image's Cmd)
    argv: tuple[str, ...]        # entrypoint + (command or Cmd)
    env: tuple[str, ...]
    cwd: str
    layers: tuple[str, ...]      # unpacked layer dirs in the user's store, top first
    store_root: str | None       # the user's isoinspect root (None: the default one)
    user: str = ""               # the image's User ("" = root), as `run` takes it

    def label(self) -> str:
        return f"{self.ref} ({' '.join(self.argv)})"


def resolve(ref: str, command: list[str], store_root: str | None = None) -> UserImage:
    """Look ``ref`` up in the user's store; NotFound (one line, 125 like `docker run`) when it
    is not there, UsageError when there is nothing to run."""
    from isoinspect.runtime.runtime import Runtime

    store = Runtime(store_root).images
    image_id = store.resolve(ref)
    info = store.start_info(image_id)
    argv = list(info["entrypoint"]) + (list(command) or list(info["cmd"]))
    if not argv:
        raise UsageError(f"image {ref!r} has no command: give one after --")
    return UserImage(ref=ref, image_id=image_id, command=tuple(command), argv=tuple(argv),
                     env=tuple(info["env"]), cwd=info["workdir"] or "/",
                     layers=tuple(info["layers"]), store_root=store_root,
                     user=info.get("user") or "")


def process_user(image: UserImage, root: str) -> tuple[int, int, tuple[int, ...]]:
    """(uid, gid, supplementary gids) of the image's User, from the passwd and group files
    of its root file system ``root`` (resolved inside it: they come from the image), by the
    rules `run` follows (runtime/users.py)."""
    from isoinspect.runtime.scoped_path import resolve_in_dir
    from isoinspect.runtime.users import resolve_user

    files = (resolve_in_dir(root, "/etc/passwd"), resolve_in_dir(root, "/etc/group"))
    uid, gid, groups, _ = resolve_user(image.user, files=files)
    return uid, gid, tuple(groups)


def archive(image: UserImage, workdir: str) -> str:
    """The image as a docker-save tar without tags (made once per workdir); its path."""
    path = os.path.join(workdir, "user-image.tar")
    if not os.path.exists(path):
        from isoinspect.runtime import image_archive
        from isoinspect.runtime.runtime import Runtime

        image_archive.save(Runtime(image.store_root).images, [image.image_id], path)
    return path


def load_into(image: UserImage, root: str, workdir: str) -> str:
    """Load the image into the isoinspect store at ``root`` (once); the id to run."""
    from isoinspect.runtime import image_archive
    from isoinspect.runtime.runtime import Runtime

    store = Runtime(root).images
    if not store.has_image(image.image_id):
        image_archive.load(store, archive(image, workdir))
    return image.image_id


def rootfs(image: UserImage, workdir: str) -> str:
    """The image's merged root file system as a plain directory (made once per workdir)."""
    target = os.path.join(workdir, "user-rootfs")
    done = target + ".ready"
    if os.path.exists(done):
        return target
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    empty = os.path.join(workdir, "user-rootfs.empty")
    merged = os.path.join(workdir, "user-rootfs.merged")
    os.makedirs(empty, exist_ok=True)
    os.makedirs(merged, exist_ok=True)
    # overlayfs with lower dirs only is read-only and needs two of them: the empty one is last
    lowers = ":".join([*image.layers, empty])
    script = 'mount -t overlay overlay -o "lowerdir=$1" "$2" && cp -a "$2/." "$3/"'
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                             "sh", lowers, merged, target], capture_output=True, text=True)
    os.rmdir(merged)
    os.rmdir(empty)
    if result.returncode != 0:
        raise IsoinspectError(f"cannot make a root file system of {image.ref}: "
                              f"{result.stderr.strip()[-300:]}")
    with open(done, "w"):
        pass
    return target


def docker_tag() -> str:
    return f"isoinspect-bench-{os.getpid()}-image:latest"


def docker_load(image: UserImage, docker: str, workdir: str) -> str:
    """``docker load`` the archive and tag it (docker_tag()); the tag."""
    tag = docker_tag()
    for argv in ([docker, "load", "-q", "-i", archive(image, workdir)],
                 [docker, "tag", f"sha256:{image.image_id}", tag]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise IsoinspectError(f"{' '.join(argv[:2])} failed: "
                                  f"{result.stderr.strip()[-300:]}")
    return tag


def docker_unload(docker: str) -> None:
    """Remove our tag (the image goes too unless the daemon knows it by another name)."""
    subprocess.run([docker, "rmi", docker_tag()], capture_output=True, timeout=120)


def host_argv(image: UserImage) -> list[str]:
    """The command for the host target: argv[0] found on the host's PATH (UsageError if not)."""
    program = image.argv[0]
    found = program if "/" in program else shutil.which(program)
    if not found or not os.access(found, os.X_OK):
        raise UsageError(f"{program!r} is not an executable on this host (--targets host "
                         "runs the command on the host, not in the image)")
    return [found, *image.argv[1:]]
