"""Image commands: images, build, tag, rmi, history, save, load, push, pull, image inspect/prune.

Argument parsing only; each command calls runtime/images.py and the runtime/image_*.py modules.
"""

from __future__ import annotations

import json
import os
import sys
import time

import click

from isoinspect.cli.listing import emit, format_options
from isoinspect.cli.sizes import human_size
from isoinspect.runtime.errors import IsoinspectError, report_error


def _runtime(ctx: click.Context):
    from isoinspect.runtime.runtime import Runtime, require_root

    require_root()
    return Runtime(ctx.obj["root"])


def _require_root() -> None:
    """As runtime.require_root, without importing the runtime (loads, pulls stay light)."""
    if os.geteuid() != 0:
        raise IsoinspectError("isoinspect must run as root (layers keep file owners and "
                              "overlay whiteouts): try sudo", exit_code=1)


def _store(ctx: click.Context):
    from isoinspect.runtime.images import ImageStore
    from isoinspect.runtime.roots import Roots

    return ImageStore(Roots(ctx.obj["root"]))


def _ago(created: str) -> str:
    try:
        then = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except (ValueError, TypeError):
        return "N/A"
    seconds = max(0, int(time.time() - then))
    for unit, size in (("year", 31536000), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return f"{seconds} seconds ago"


@click.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only print image ids.")
@click.option("--ensure-base", is_flag=True,
              help="Create the built-in busybox:latest image if it is missing.")
@click.option("--ensure-debian", is_flag=True,
              help="Create debian:bookworm (debootstrap minbase, cached) if it is missing.")
@click.option("--with-tools", is_flag=True,
              help="With --ensure-debian: create debian:bookworm-tools instead (the same minbase "
                   "plus sysbench, fio and iperf3; its own cached tar).")
@format_options
@click.pass_context
def images_cmd(ctx: click.Context, quiet: bool, ensure_base: bool, ensure_debian: bool,
               with_tools: bool, fmt: str | None, as_json: bool) -> None:
    """List images."""
    store = _store(ctx)
    if with_tools and not ensure_debian:
        from isoinspect.runtime.errors import UsageError

        raise UsageError("--with-tools needs --ensure-debian")
    if ensure_base or ensure_debian:
        _require_root()
    if ensure_base:
        from isoinspect.runtime.base_image import ensure_base_image

        image_id, created = ensure_base_image(store)
        click.echo(f"busybox:latest {'created' if created else 'present'}: {image_id[:12]}",
                   err=True)
    if ensure_debian:
        from isoinspect.runtime.image_debian import PLAIN, WITH_TOOLS, ensure_debian_image

        variant = WITH_TOOLS if with_tools else PLAIN
        image_id, created = ensure_debian_image(store, log=lambda m: click.echo(m, err=True),
                                                variant=variant)
        click.echo(f"{variant.ref} {'created' if created else 'present'}: {image_id[:12]}",
                   err=True)
    images = store.list_images()
    if quiet:
        for image in images:
            click.echo(image["id"][:12])
        return
    rows = [{"ID": i["id"][:12], "Repository": i["repository"], "Tag": i["tag"],
             "CreatedAt": i["created"], "CreatedSince": _ago(i["created"]),
             "Size": human_size(i["size"])} for i in images]
    emit(rows, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
         {"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"}, fmt, as_json)


@click.command("build")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME:TAG", help="Name the image.")
@click.option("-f", "--file", "dockerfile", default=None, metavar="FILE",
              help="Dockerfile (default CONTEXT/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V",
              help="Set a build-time variable.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("-q", "--quiet", is_flag=True, help="Only print the image id.")
@click.option("--network", default="default", metavar="MODE", show_default=True,
              help="Network of RUN steps: default (bridge), none, host, or a network name. "
                   "Only host shares the host's network (and its 127.0.0.1).")
@click.argument("context")
@click.pass_context
def build_cmd(ctx: click.Context, tags: tuple, dockerfile: str | None, build_args: tuple,
              no_cache: bool, quiet: bool, network: str, context: str) -> None:
    """Build an image from a Dockerfile."""
    from isoinspect.runtime.image_build import Builder
    from isoinspect.runtime.spec import check_network

    network = "bridge" if network == "default" else network
    check_network(network)

    args = {}
    for item in build_args:
        key, eq, value = item.partition("=")
        if not eq:
            value = os.environ.get(key)
            if value is None:
                continue
        args[key] = value
    out = open(os.devnull, "w") if quiet else sys.stdout
    builder = Builder(_runtime(ctx), out=out, network=network)
    image_id = builder.build(context, dockerfile, list(tags), args, no_cache=no_cache)
    if quiet:
        click.echo(f"sha256:{image_id}")


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag_cmd(ctx: click.Context, source: str, target: str) -> None:
    """Give an image a new name."""
    store = _store(ctx)
    store.tag(store.resolve(source), target)


@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Remove even if a container uses it.")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rmi_cmd(ctx: click.Context, force: bool, images: tuple) -> None:
    """Remove images."""
    store = _store(ctx)
    failed = False
    for ref in images:
        try:
            for line in store.remove(ref, force=force):
                click.echo(line)
        except IsoinspectError as exc:
            report_error(exc)
            failed = True
    if failed:
        ctx.exit(1)


@click.command("history")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@format_options
@click.argument("image")
@click.pass_context
def history_cmd(ctx: click.Context, no_trunc: bool, fmt: str | None, as_json: bool,
                image: str) -> None:
    """Show the steps an image was made of."""
    store = _store(ctx)
    image_id = store.resolve(image)
    config = store.config(image_id)
    diff_ids = list(config["rootfs"]["diff_ids"])
    rows = []
    entries = list(config.get("history") or [])
    sizes = []
    layer_index = 0
    for entry in entries:
        if entry.get("empty_layer"):
            sizes.append("0B")
        else:
            diff = diff_ids[layer_index] if layer_index < len(diff_ids) else ""
            layer_index += 1
            try:
                sizes.append(human_size(os.stat(store.layer_tar(diff)).st_size))
            except (FileNotFoundError, ValueError):
                sizes.append("?")
    chain = [image_id]
    while store.parent(chain[-1]):
        chain.append(store.parent(chain[-1]))
    for index, entry in enumerate(reversed(entries)):
        created_by = entry.get("created_by", "")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        ident = chain[index][:12] if index < len(chain) else "<missing>"
        rows.append({"ID": ident, "CreatedAt": entry.get("created", ""),
                     "CreatedSince": _ago(entry.get("created", "")), "CreatedBy": created_by,
                     "Size": sizes[len(entries) - 1 - index],
                     "Comment": entry.get("comment", "")})
    emit(rows, "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}",
         {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY",
          "CreatedAt": "CREATED AT"}, fmt, as_json)


@click.command("save")
@click.option("-o", "--output", required=True, metavar="FILE", help="Tar file to write.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker",
              show_default=True, help="docker save format or OCI image layout.")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def save_cmd(ctx: click.Context, output: str, fmt: str, images: tuple) -> None:
    """Save images to a tar archive (docker save format or OCI layout)."""
    from isoinspect.runtime.image_archive import save

    save(_store(ctx), list(images), output, fmt)


@click.command("load")
@click.option("-i", "--input", "input_", default=None, metavar="FILE",
              help="Tar archive (docker save format or OCI layout; may be gzipped); "
                   "default or '-': stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the loaded images' names.")
@click.pass_context
def load_cmd(ctx: click.Context, input_: str | None, quiet: bool) -> None:
    """Load images from a tar archive or stdin (`isoinspect load < image.tar`)."""
    from isoinspect.runtime.image_archive import load, load_stream
    _require_root()
    if input_ is None or input_ == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise IsoinspectError("requested load from stdin, but stdin is empty "
                                  "(give -i FILE or pipe an archive in)")
        lines = load_stream(_store(ctx), sys.stdin.buffer)
    else:
        lines = load(_store(ctx), input_)
    for line in lines:
        if not quiet:
            click.echo(line)


def _credentials_path(ctx: click.Context) -> str:
    from isoinspect.runtime.credentials import AUTH_FILE
    from isoinspect.runtime.roots import Roots

    return Roots(ctx.obj["root"]).data(AUTH_FILE)


def _credentials(ctx: click.Context, image: str, username: str | None, password: str | None):
    """-u/-p ('-p -' reads stdin), else runtime/credentials.credentials_for's choice."""
    from isoinspect.runtime.credentials import PASSWORD_ENV, credentials_for

    if password is None:
        password = os.environ.get(PASSWORD_ENV)
    if password == "-":
        password = sys.stdin.readline().rstrip("\n")
    return credentials_for(_credentials_path(ctx), image, username, password)


def _tls(insecure: tuple):
    from isoinspect.runtime.registry_tls import TlsSettings

    return TlsSettings.from_env(insecure)


_insecure_option = click.option(
    "--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
    help="Allow unverified TLS or plain HTTP for this registry only (repeatable; also "
         "ISOINSPECT_INSECURE_REGISTRIES=a,b).")
_auth_options = [
    click.option("-u", "--username", default=None,
                 help="Registry user (default: what `login` stored)."),
    click.option("-p", "--password", default=None,
                 help="Password ('-' reads it from stdin; or ISOINSPECT_REGISTRY_PASSWORD)."),
    _insecure_option,
]


def _with_auth(func):
    for option in reversed(_auth_options):
        func = option(func)
    return func


@click.command("push")
@_with_auth
@click.option("--chunk-size", default=8 << 20, type=int, show_default=True,
              help="Upload blobs in PATCH chunks of this many bytes.")
@click.argument("image")
@click.pass_context
def push_cmd(ctx: click.Context, username, password, insecure, chunk_size, image: str) -> None:
    """Push an image to a registry ([HOST[:PORT]/]NAME[:TAG]; no host: docker.io)."""
    from isoinspect.runtime.image_registry import push

    for line in push(_store(ctx), image, _credentials(ctx, image, username, password),
                     chunk_size=chunk_size, tls=_tls(insecure)):
        click.echo(line)


@click.command("pull")
@_with_auth
@click.argument("image")
@click.pass_context
def pull_cmd(ctx: click.Context, username, password, insecure, image: str) -> None:
    """Pull an image from a registry ([HOST[:PORT]/]NAME[:TAG|@DIGEST]; no host: docker.io)."""
    from isoinspect.runtime.image_registry import pull
    _require_root()
    pull(_store(ctx), image, _credentials(ctx, image, username, password), tls=_tls(insecure),
         progress=click.echo)  # each line as it happens, as docker pull


@click.command("login")
@click.option("-u", "--username", default=None, help="Username.")
@click.option("-p", "--password", default=None, help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@_insecure_option
@click.argument("server", required=False)
@click.pass_context
def login_cmd(ctx: click.Context, username, password, password_stdin: bool, insecure,
              server: str | None) -> None:
    """Log in to a registry (default docker.io); the credentials are checked, then stored."""
    from isoinspect.runtime.credentials import Credentials, CredentialStore
    from isoinspect.runtime.errors import UsageError
    from isoinspect.runtime.registry_login import login

    if password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    if not username or password is None:
        if not sys.stdin.isatty():
            raise IsoinspectError("cannot perform an interactive login from a non TTY device",
                                  exit_code=1)
        username = username or click.prompt("Username")
        password = click.prompt("Password", hide_input=True) if password is None else password
    if not password:
        raise UsageError("password is empty")
    key = login(server, Credentials(username, password), _tls(insecure))
    CredentialStore(_credentials_path(ctx)).put(key, Credentials(username, password))
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False)
@click.pass_context
def logout_cmd(ctx: click.Context, server: str | None) -> None:
    """Remove the stored credentials of a registry (default docker.io)."""
    from isoinspect.runtime.credentials import CredentialStore
    from isoinspect.runtime.registry_names import server_key

    key = server_key(server)
    if CredentialStore(_credentials_path(ctx)).remove(key):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")


@click.group("image")
def image_group() -> None:
    """Manage images."""


@image_group.command("inspect")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def image_inspect(ctx: click.Context, images: tuple) -> None:
    """Show images' configuration as JSON."""
    store = _store(ctx)
    result = []
    for ref in images:
        image_id = store.resolve(ref)
        config = store.config(image_id)
        result.append({
            "Id": f"sha256:{image_id}",
            "RepoTags": store.tags_of(image_id),
            "Parent": f"sha256:{store.parent(image_id)}" if store.parent(image_id) else "",
            "Created": config.get("created", ""),
            "Architecture": config.get("architecture", ""),
            "Os": config.get("os", ""),
            "Config": config.get("config") or {},
            "Size": store.size(image_id),
            "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
            "GraphDriver": {"Name": "overlay", "Data": {
                "LowerDirs": [store.layer_dir(d) for d in reversed(
                    config["rootfs"]["diff_ids"])]}},
        })
    click.echo(json.dumps(result, indent=4))


@image_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove every image no container uses, tagged or not.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (accepted for Docker parity).")
@click.pass_context
def image_prune(ctx: click.Context, all_: bool, force: bool) -> None:
    """Remove unused images and layers."""
    for line in _store(ctx).prune(all_images=all_):
        click.echo(line)


image_group.add_command(images_cmd, "ls")
image_group.add_command(build_cmd, "build")
image_group.add_command(tag_cmd, "tag")
image_group.add_command(rmi_cmd, "rm")
image_group.add_command(history_cmd, "history")
image_group.add_command(save_cmd, "save")
image_group.add_command(load_cmd, "load")
image_group.add_command(push_cmd, "push")
image_group.add_command(pull_cmd, "pull")

commands = [images_cmd, build_cmd, tag_cmd, rmi_cmd, history_cmd, save_cmd, load_cmd,
            push_cmd, pull_cmd, login_cmd, logout_cmd, image_group]
