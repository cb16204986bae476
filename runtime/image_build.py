"""``isoinspect build``: a Dockerfile (the common subset) to an image of the store.

Supported: FROM (an image of ours or ``scratch``; ARG before FROM), RUN, COPY, ADD (local files,
directories and tarballs), ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE, and
``.dockerignore``. Every instruction commits an image (untagged, with a ``parent``) and a cache
entry keyed on the parent image, the instruction after substitution, the build args a RUN sees
and, for COPY/ADD, the content of the sources; an unchanged rebuild only reads cache entries.
RUN executes in a container of our runtime; its upper dir becomes the step's layer.

Paths from the context and the Dockerfile never leave their root (as Docker's builder): COPY/ADD
sources are resolved inside the context as if it were ``/`` (a link pointing out of it lands
inside it; what .dockerignore removes is not there), ``../x`` is refused, destinations are
resolved inside the image's root, and the staging tree is written without following links.

A failed step leaves no image for that step, no container and no tag: only the steps that
succeeded before it stay, as cache (like Docker's intermediate images).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import sys
import tarfile
import time

from isoinspect.runtime import layers, scoped_path
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.images import DEFAULT_PATH_ENV, ImageStore, validate_ref

INSTRUCTIONS = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD",
                "ENTRYPOINT", "LABEL", "EXPOSE")


class BuildError(IsoinspectError):
    """A build failure, named by Dockerfile and line."""

    def __init__(self, where: str, message: str, exit_code: int = 1) -> None:
        super().__init__(f"{where}: {message}", exit_code=exit_code)


class Instruction:
    __slots__ = ("keyword", "args", "line", "where", "text")

    def __init__(self, keyword: str, args: str, line: int, where: str, text: str) -> None:
        self.keyword, self.args, self.line, self.where, self.text = \
            keyword, args, line, where, text


# -- parsing -------------------------------------------------------------------------------------

def parse_dockerfile(text: str, filename: str = "Dockerfile") -> list[Instruction]:
    """Split a Dockerfile into instructions (continuations joined, comments dropped)."""
    result: list[Instruction] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        raw = lines[index]
        start = index + 1
        index += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = [stripped]
        while parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1]
            while index < len(lines) and (not lines[index].strip()
                                          or lines[index].strip().startswith("#")):
                index += 1
            if index >= len(lines):
                break
            parts.append(lines[index].strip())
            index += 1
        joined = " ".join(p.strip() for p in parts).strip()
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        where = f"{filename}:{start}"
        if keyword not in INSTRUCTIONS:
            raise BuildError(where, f"unknown instruction: {keyword}")
        if not args.strip():
            raise BuildError(where, f"{keyword} requires at least one argument")
        result.append(Instruction(keyword, args.strip(), start, where, joined))
    if not result:
        raise BuildError(filename, "the Dockerfile is empty")
    first = next((i for i in result if i.keyword != "ARG"), None)
    if first is None or first.keyword != "FROM":
        where = first.where if first else filename
        raise BuildError(where, "the first instruction (after ARGs) must be FROM")
    return result


def expand(text: str, variables: dict, where: str) -> str:
    """Substitute $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alt}; \\$ is a literal $."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if c != "$" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        if text[i + 1] == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise BuildError(where, f"missing '}}' in {text!r}")
            body = text[i + 2:end]
            name, op, word = body, "", ""
            for candidate in (":-", ":+"):
                if candidate in body:
                    name, _, word = body.partition(candidate)
                    op = candidate
                    break
            value = variables.get(name)
            if op == ":-":
                value = value if value else expand(word, variables, where)
            elif op == ":+":
                value = expand(word, variables, where) if value else ""
            out.append(value or "")
            i = end + 1
            continue
        j = i + 1
        while j < len(text) and (text[j].isalnum() or text[j] == "_"):
            j += 1
        if j == i + 1:
            out.append(c)
            i += 1
            continue
        out.append(variables.get(text[i + 1:j], ""))
        i = j
    return "".join(out)


def _json_or_shell(args: str, where: str) -> tuple[list[str], bool]:
    """Exec form (a JSON array of strings) or shell form."""
    if args.startswith("["):
        try:
            value = json.loads(args)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value, True
        if args.rstrip().endswith("]"):
            raise BuildError(where, f"invalid JSON array: {args}")
    return ["/bin/sh", "-c", args], False


def _pairs(args: str, where: str, keyword: str) -> list[tuple[str, str]]:
    """``K=V K2="V 2"`` or the legacy ``K V`` form."""
    import shlex

    try:
        words = shlex.split(args, posix=True)
    except ValueError as exc:
        raise BuildError(where, f"{keyword}: {exc}") from None
    if words and "=" not in words[0]:
        if len(words) < 2 and keyword == "ENV":
            raise BuildError(where, f"ENV {words[0]} needs a value (ENV KEY=VALUE)")
        return [(words[0], args.split(None, 1)[1] if len(words) > 1 else "")]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise BuildError(where, f"{keyword}: expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs


# -- .dockerignore ---------------------------------------------------------------------------------

class Ignore:
    def __init__(self, context: str) -> None:
        self.patterns: list[tuple[str, bool]] = []
        path = scoped_path.resolve_in_dir(context, ".dockerignore")
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return  # a link out of the context lands inside it; a FIFO would block
            with open(path) as handle:
                for line in handle:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    negate = line.startswith("!")
                    pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
                    self.patterns.append((pattern, negate))
        except FileNotFoundError:
            pass

    def __call__(self, rel: str) -> bool:
        ignored = False
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        for pattern, negate in self.patterns:
            pat = pattern.replace("**/", "*").replace("/**", "/*") if "**" in pattern \
                else pattern
            if any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
                ignored = not negate
        return ignored


# -- the builder -----------------------------------------------------------------------------------

def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _sha(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class Builder:
    """One build: the store, the runtime (for RUN) and the output stream."""

    def __init__(self, runtime, out=None, network: str = "bridge") -> None:
        self.runtime = runtime
        self.store: ImageStore = runtime.images
        self.out = out or sys.stdout
        self.network = network
        self.cached_steps = 0
        self.steps = 0

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def build(self, context: str, dockerfile: str | None = None, tags: list[str] = (),
              build_args: dict | None = None, no_cache: bool = False) -> str:
        tags = [validate_ref(t) for t in tags]
        context = os.path.realpath(context)
        if not os.path.isdir(context):
            raise IsoinspectError(f"build context {context!r} is not a directory")
        path = dockerfile or os.path.join(context, "Dockerfile")
        if dockerfile and not os.path.isabs(dockerfile) and not os.path.exists(dockerfile):
            path = os.path.join(context, dockerfile)
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError as exc:
            raise IsoinspectError(f"cannot read Dockerfile {path}: {exc.strerror}") from None
        instructions = parse_dockerfile(text, os.path.basename(path))
        self.context, self.ignore = context, Ignore(context)
        self.build_args = dict(build_args or {})
        self.no_cache = no_cache
        self.args: dict[str, str] = {}
        self.global_args: dict[str, str] = {}
        self.image_id = ""
        self.config: dict = {}
        total = len(instructions)
        for number, ins in enumerate(instructions, 1):
            self.say(f"Step {number}/{total} : {ins.text}")
            getattr(self, f"_do_{ins.keyword.lower()}")(ins)
            self.steps += 1
            if self.image_id:
                self.say(f" ---> {self.image_id[:12]}")
        if not self.image_id:
            raise BuildError(instructions[-1].where, "nothing to build from scratch")
        for tag in tags:
            self.store.tag(self.image_id, tag)
        self.say(f"Successfully built {self.image_id[:12]}")
        for tag in tags:
            self.say(f"Successfully tagged {tag}")
        return self.image_id

    # variables visible to substitution: ARGs, overridden by ENV of the image
    def _vars(self) -> dict:
        variables = dict(self.args)
        for item in (self.config.get("config") or {}).get("Env") or []:
            key, _, value = item.partition("=")
            variables[key] = value
        return variables

    def _expand(self, ins: Instruction, text: str | None = None) -> str:
        return expand(ins.args if text is None else text, self._vars(), ins.where)

    def _step(self, ins: Instruction, key_extra: object, make, layer_fn=None) -> None:
        """Reuse a cached step or run it: ``layer_fn()`` returns a layer tar path (or None),
        ``make(config)`` changes the config."""
        key = _sha(self.image_id or "scratch", ins.keyword, ins.args, key_extra)
        if not self.no_cache:
            cached = self.store.cache_get(key)
            if cached:
                self.say(" ---> Using cache")
                self.cached_steps += 1
                self.image_id, self.config = cached, self.store.config(cached)
                return
        tmpdir = None
        try:
            diff_id = None
            if layer_fn is not None:
                tmpdir = self._tmpdir()
                tar_path = layer_fn(tmpdir)
                if tar_path:
                    diff_id = self.store.add_layer_from_tar(tar_path, move=True)
            config = copy.deepcopy(self.config)
            make(config)
            created = _now()
            config["created"] = created
            history = {"created": created, "created_by": ins.text}
            if diff_id:
                config["rootfs"]["diff_ids"].append(diff_id)
            else:
                history["empty_layer"] = True
            config.setdefault("history", []).append(history)
            image_id = self.store.add_image(config, parent=self.image_id)
        finally:
            if tmpdir:
                shutil.rmtree(tmpdir, ignore_errors=True)
        self.store.cache_put(key, image_id)
        self.image_id, self.config = image_id, config

    def _tmpdir(self) -> str:
        return self.store.work_dir("build")

    # -- instructions ----------------------------------------------------------------------------

    def _do_arg(self, ins: Instruction) -> None:
        for key, default in _pairs(ins.args, ins.where, "ARG") if "=" in ins.args \
                else [(ins.args.strip(), None)]:
            if default is None:
                default = self.global_args.get(key)  # ARG NAME after FROM: the global value
            value = self.build_args.get(key, default)
            if value is not None:
                value = expand(value, self._vars(), ins.where)
            self.args[key] = value if value is not None else ""

    def _do_from(self, ins: Instruction) -> None:
        if self.image_id or self.config:
            raise BuildError(ins.where, "multi-stage builds (a second FROM) are not supported")
        words = self._expand(ins).split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise BuildError(ins.where, "FROM expects IMAGE [AS NAME]")
        # ARGs declared before FROM are only usable in FROM, unless declared again after it
        self.global_args, self.args = self.args, {}
        if words[0] == "scratch":
            self.config = {"architecture": "amd64", "os": "linux",
                           "config": {"Env": [DEFAULT_PATH_ENV]},
                           "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return
        try:
            self.image_id = self.store.resolve(words[0])
        except IsoinspectError:
            raise BuildError(ins.where, f"base image {words[0]!r} not found (build or load it "
                             "first; there is no Docker Hub here)") from None
        self.config = self.store.config(self.image_id)
        self.config.setdefault("config", {})
        self.config.setdefault("history", [])

    def _settings(self, config: dict) -> dict:
        return config.setdefault("config", {})

    def _do_env(self, ins: Instruction) -> None:
        pairs = [(k, expand(v, self._vars(), ins.where))
                 for k, v in _pairs(ins.args, ins.where, "ENV")]

        def make(config: dict) -> None:
            env = self._settings(config).get("Env") or []
            for key, value in pairs:
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            self._settings(config)["Env"] = env
        self._step(ins, pairs, make)

    def _do_label(self, ins: Instruction) -> None:
        pairs = [(k, expand(v, self._vars(), ins.where))
                 for k, v in _pairs(ins.args, ins.where, "LABEL")]

        def make(config: dict) -> None:
            labels = self._settings(config).get("Labels") or {}
            labels.update(pairs)
            self._settings(config)["Labels"] = labels
        self._step(ins, pairs, make)

    def _do_expose(self, ins: Instruction) -> None:
        ports = []
        for word in self._expand(ins).split():
            port, _, proto = word.partition("/")
            if not port.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                raise BuildError(ins.where, f"EXPOSE: invalid port {word!r}")
            ports.append(f"{port}/{proto or 'tcp'}")

        def make(config: dict) -> None:
            exposed = self._settings(config).get("ExposedPorts") or {}
            exposed.update({p: {} for p in ports})
            self._settings(config)["ExposedPorts"] = exposed
        self._step(ins, ports, make)

    def _do_user(self, ins: Instruction) -> None:
        user = self._expand(ins).strip()
        self._step(ins, user, lambda c: self._settings(c).__setitem__("User", user))

    def _do_cmd(self, ins: Instruction) -> None:
        argv, _ = _json_or_shell(ins.args, ins.where)
        self._step(ins, argv, lambda c: self._settings(c).__setitem__("Cmd", argv))

    def _do_entrypoint(self, ins: Instruction) -> None:
        argv, _ = _json_or_shell(ins.args, ins.where)

        def make(config: dict) -> None:
            self._settings(config)["Entrypoint"] = argv
            self._settings(config).pop("Cmd", None)  # as Docker: ENTRYPOINT resets CMD
        self._step(ins, argv, make)

    def _do_workdir(self, ins: Instruction) -> None:
        path = self._expand(ins).strip()
        current = self._settings(self.config).get("WorkingDir") or "/"
        path = os.path.normpath(os.path.join(current, path))

        def layer(tmp: str) -> str | None:
            view = self._image_view()
            where = view.resolve(path)  # Docker creates it where the image's links lead
            if view.kind(where) == "dir":
                return None
            tree = os.path.join(tmp, "tree")
            os.makedirs(tree)
            scoped_path.make_dirs(tree, where)
            tar_path = os.path.join(tmp, "layer.tar")
            layers.tar_from_dir(tree, tar_path)
            return tar_path
        self._step(ins, path, lambda c: self._settings(c).__setitem__("WorkingDir", path),
                   layer)

    def _image_view(self) -> scoped_path.LayeredView:
        """The current image's files (top layer first), read without following any link."""
        diff_ids = (self.config.get("rootfs") or {}).get("diff_ids") or []
        return scoped_path.LayeredView([self.store.layer_dir(d) for d in reversed(diff_ids)])

    # -- RUN ---------------------------------------------------------------------------------

    def _do_run(self, ins: Instruction) -> None:
        if not self.image_id:
            raise BuildError(ins.where, "RUN needs a base image with a shell (not scratch)")
        argv, _ = _json_or_shell(ins.args, ins.where)
        env_keys = {e.partition("=")[0] for e in self._settings(self.config).get("Env") or []}
        arg_env = [f"{k}={v}" for k, v in sorted(self.args.items()) if k not in env_keys]

        def layer(tmp: str) -> str | None:
            return self._run_container(ins, argv, arg_env, tmp)
        self._step(ins, arg_env, lambda c: None, layer)

    def _run_container(self, ins: Instruction, argv: list[str], arg_env: list[str],
                       tmp: str) -> str:
        """Run one RUN step; its upper dir becomes the layer. The output is streamed by this
        thread: no other thread may exist when the container is cloned (see build_run)."""
        from isoinspect.runtime.build_run import stream_until_exit
        from isoinspect.runtime.gc import BUILD_STEP_LABEL
        from isoinspect.runtime.spec import ContainerSpec

        settings = self._settings(self.config)
        spec = ContainerSpec(self.image_id, argv, env=arg_env,
                             workdir=settings.get("WorkingDir") or "/",
                             user=settings.get("User") or None, network=self.network,
                             remove=False, entrypoint=[], labels={BUILD_STEP_LABEL: "1"})
        rt = self.runtime
        read_fd, write_fd = os.pipe()
        devnull = os.open("/dev/null", os.O_RDONLY)
        record = None

        def show(text: str) -> None:
            self.out.write(text)
            self.out.flush()

        try:
            record = rt.create(spec)
            try:
                started = rt.start(record, stdio=(devnull, write_fd, write_fd))
            finally:
                os.close(write_fd)
                write_fd = -1
            tail = stream_until_exit(read_fd, started.pid, show)
            code = rt.wait_child(started)
            if code != 0:
                lines = tail.decode(errors="replace").rstrip().splitlines()[-20:]
                shown = "\n" + "\n".join(lines) if lines else ""
                raise BuildError(ins.where, f"RUN {ins.args!r} returned a non-zero code: "
                                 f"{code}{shown}")
            tar_path = os.path.join(tmp, "layer.tar")
            layers.tar_from_dir(rt.containers.dir(record.id, "upper"), tar_path,
                                skip_mountpoints=True)
            return tar_path
        except BuildError:
            raise
        except IsoinspectError as exc:
            raise BuildError(ins.where, f"RUN failed: {exc}") from None
        finally:
            if write_fd >= 0:
                os.close(write_fd)
            os.close(read_fd)
            os.close(devnull)
            if record is not None:
                try:
                    rt.remove(record.id, force=True)
                except IsoinspectError:
                    pass

    # -- COPY / ADD -------------------------------------------------------------------------------

    def _do_copy(self, ins: Instruction) -> None:
        self._copy(ins, add=False)

    def _do_add(self, ins: Instruction) -> None:
        self._copy(ins, add=True)

    def _copy(self, ins: Instruction, add: bool) -> None:
        args = ins.args
        chown = None
        words_text = args
        while words_text.startswith("--"):
            flag, _, words_text = words_text.partition(" ")
            words_text = words_text.strip()
            if flag.startswith("--chown="):
                owner = self._expand(ins, flag[8:])
                user, _, group = owner.partition(":")
                if not user.isdigit() or (group and not group.isdigit()):
                    raise BuildError(ins.where, f"--chown supports numeric ids only: {owner}")
                chown = (int(user), int(group or user))
            else:
                raise BuildError(ins.where, f"{ins.keyword}: unsupported flag {flag}")
        if words_text.startswith("["):
            words, _ = _json_or_shell(words_text, ins.where)
        else:
            words = words_text.split()
        words = [self._expand(ins, w) for w in words]
        if len(words) < 2:
            raise BuildError(ins.where, f"{ins.keyword} needs a source and a destination")
        sources, dest = words[:-1], words[-1]
        workdir = self._settings(self.config).get("WorkingDir") or "/"
        view = self._image_view()
        # Docker resolves the destination inside the image's root: its links are followed
        # there, never on the host.
        try:
            dest_abs = view.resolve(os.path.normpath(os.path.join(workdir, dest)))
        except scoped_path.TooManyLinks as exc:
            raise BuildError(ins.where, f"{ins.keyword} failed: {exc}") from None
        matched: list[tuple[str, str]] = []  # (path as named in the context, host path)
        for src in sources:
            if "://" in src:
                raise BuildError(ins.where, f"{ins.keyword}: URLs are not supported: {src}")
            rel = os.path.normpath(src.lstrip("/"))
            if rel == ".." or rel.startswith("../"):
                raise BuildError(ins.where, f"{ins.keyword} failed: forbidden path outside "
                                 f"the build context: {src}")
            try:
                found = [(name, self._context_path(name)) for name in self._glob(rel)]
            except scoped_path.TooManyLinks as exc:
                raise BuildError(ins.where, f"{ins.keyword} failed: {exc}") from None
            found = [(name, full) for name, full in found if full is not None]
            if not found:
                raise BuildError(ins.where, f"{ins.keyword} failed: {src!r} not found in the "
                                 f"build context {self.context}")
            matched += found
        into_dir = dest.endswith("/") or dest_abs == "/" or len(matched) > 1 or \
            view.kind(dest_abs) == "dir"
        digest = hashlib.sha256()
        for _, full in matched:
            self._hash_source(full, digest)
        dest_rel = dest_abs.lstrip("/")

        def layer(tmp: str) -> str:
            tree = os.path.join(tmp, "tree")
            os.makedirs(tree)
            kept_owners: set[str] = set()
            for rel, full in matched:
                if os.path.isdir(full):
                    self._copy_dir(full, tree, dest_rel)
                elif add and _is_archive(full):
                    target = scoped_path.make_dirs(tree, dest_rel)
                    with tarfile.open(full) as archive:
                        layers.extract_layer(archive, target)
                        if chown is None:
                            kept_owners.update(os.path.normpath(os.path.join(target, m.name))
                                               for m in archive.getmembers())
                else:
                    name = f"{dest_rel}/{os.path.basename(rel)}" if into_dir else dest_rel
                    _copy_entry(full, tree, name)
            _chown_tree(tree, chown or (0, 0), keep=kept_owners)
            tar_path = os.path.join(tmp, "layer.tar")
            layers.tar_from_dir(tree, tar_path)
            return tar_path
        self._step(ins, [[m[0] for m in matched], dest_abs, into_dir, chown,
                         digest.hexdigest()], lambda c: None, layer)

    def _context_path(self, rel: str) -> str | None:
        """The host path of a context entry, resolved inside the context as if it were the
        root (Docker's rule), or None when it is not in the context: missing, ignored, or
        reached through an ignored link."""
        host = scoped_path.host_readlink(self.context)

        def readlink(candidate: str) -> str | None:
            target = host(candidate)
            if target is not None and self.ignore(candidate):
                raise _NotInContext
            return target

        try:
            resolved = scoped_path.resolve(rel, readlink)
        except _NotInContext:
            return None
        if resolved and self.ignore(resolved):
            return None
        full = os.path.join(self.context, resolved) if resolved else self.context
        return full if os.path.lexists(full) else None

    def _glob(self, rel: str) -> list[str]:
        if rel == ".":
            return ["."]
        if not any(ch in rel for ch in "*?["):
            return [rel]
        found = []
        for dirpath, dirnames, filenames in os.walk(self.context):
            base = os.path.relpath(dirpath, self.context)
            for name in sorted(dirnames + filenames):
                cand = name if base == "." else f"{base}/{name}"
                if fnmatch.fnmatchcase(cand, rel) and not self.ignore(cand):
                    found.append(cand)
        return sorted(found)

    def _walk(self, top: str):
        """(path inside ``top``, host path) of every non-ignored entry under a context dir
        (links are entries, never followed)."""
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                if self.ignore(os.path.relpath(full, self.context)):
                    if name in dirnames:
                        dirnames.remove(name)
                    continue
                yield os.path.relpath(full, top), full

    def _hash_source(self, full: str, digest) -> None:
        entries = [(os.path.relpath(full, self.context), full)]
        if os.path.isdir(full):
            entries += list(self._walk(full))
        for crel, path in entries:
            st = os.lstat(path)
            digest.update(f"{crel}\0{st.st_mode}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)

    def _copy_dir(self, full: str, tree: str, dest_rel: str) -> None:
        """A context directory's entries into ``tree``/``dest_rel`` (nothing followed)."""
        shutil.copystat(full, scoped_path.make_dirs(tree, dest_rel))
        for inner, path in self._walk(full):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.copystat(path, scoped_path.make_dirs(tree, f"{dest_rel}/{inner}"))
            else:
                _copy_entry(path, tree, f"{dest_rel}/{inner}")


class _NotInContext(Exception):
    """A path reaches an entry .dockerignore removed from the context."""


def _copy_entry(src: str, tree: str, rel: str) -> None:
    """One non-directory context entry to ``tree``/``rel``, replacing what is there and never
    writing through a link: files by content, links as links, FIFOs and devices as nodes."""
    parent, name = os.path.split(rel.strip("/"))
    dst = os.path.join(scoped_path.make_dirs(tree, parent), name)
    scoped_path.clear_for_write(dst)
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        shutil.copy2(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(dst, st.st_mode, st.st_rdev)
        shutil.copystat(src, dst)
    # sockets are skipped, as Docker's context archive does


def _is_archive(path: str) -> bool:
    try:
        return os.path.isfile(path) and tarfile.is_tarfile(path)
    except OSError:
        return False


def _chown_tree(tree: str, owner: tuple[int, int], keep: set[str] = frozenset()) -> None:
    """COPY/ADD files belong to root (or --chown); a tarball's entries keep their owners."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.normpath(path) not in keep:
                os.chown(path, *owner, follow_symlinks=False)
