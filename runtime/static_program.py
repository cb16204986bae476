"""Small static C programs isoinspect compiles itself, cached by the hash of their source.

``bench overhead``'s workload (benches/overhead/program.py) and the ``run -d`` monitor
(runtime/monitor_program.py) are single C files built with ``gcc -static -O2`` once per source
version, at set-up (scripts/setup.sh) or on first use, into <cache>/<kind>/<sha256[:12]>/.
Static, so the same binary runs on the host and inside any image, and maps no shared library.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import write_atomic

DEFAULT_CACHE = "/var/cache/isoinspect"
CFLAGS = ("-static", "-O2", "-Wall")


class StaticProgram:
    """One C file and what its build is called. ``kind`` names the cache folder and errors;
    ``check`` (optional) runs the fresh binary and raises IsoinspectError if it disagrees with
    its Python side, before the binary is put in place. A plain class, not a dataclass: the
    ``run -d`` monitor imports this module on every start, and dataclasses (with inspect,
    typing) would cost it ~8 ms of CPU each time; subprocess and shutil wait for a build."""

    __slots__ = ("kind", "source", "binary_name", "check")

    def __init__(self, kind: str, source: str, binary_name: str,
                 check: Callable[[str], None] | None = None) -> None:
        self.kind, self.source, self.binary_name, self.check = kind, source, binary_name, check

    def read_source(self) -> bytes:
        with open(self.source, "rb") as handle:
            return handle.read()

    def source_hash(self, source: bytes | None = None) -> str:
        """The build's cache key (and the program's version, for records)."""
        return hashlib.sha256(self.read_source() if source is None else source).hexdigest()[:12]

    def cache_root(self, cache_dir: str | None = None) -> str:
        """``cache_dir``, else $ISOINSPECT_CACHE/<kind> (or $ISOINSPECT_CACHE_DIR/<kind>),
        else /var/cache/isoinspect/<kind>."""
        if cache_dir:
            return cache_dir
        base = (os.environ.get("ISOINSPECT_CACHE") or os.environ.get("ISOINSPECT_CACHE_DIR")
                or DEFAULT_CACHE)
        return os.path.join(base, self.kind)

    def binary_path(self, cache_dir: str | None = None, source: bytes | None = None) -> str:
        """Where the build of this source is (or will be): <cache>/<hash>/<binary_name>."""
        return os.path.join(self.cache_root(cache_dir), self.source_hash(source),
                            self.binary_name)

    def ensure_built(self, cache_dir: str | None = None) -> str:
        """Path of the static binary for this source, compiled once per source hash (built
        into a temporary file, then renamed: concurrent builders never see half a binary)."""
        source = self.read_source()
        binary = self.binary_path(cache_dir, source)
        if os.access(binary, os.X_OK):
            return binary
        directory = os.path.dirname(binary)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise IsoinspectError(f"cannot create the {self.kind} cache {directory}: "
                                  f"{exc.strerror}") from None
        # what was built, for reading
        write_atomic(os.path.join(directory, os.path.basename(self.source)), source)
        temp = temp_name(binary)
        try:
            self._compile(source, temp)
            os.chmod(temp, 0o755)
            if self.check is not None:
                self.check(temp)
            os.replace(temp, binary)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        return binary

    def _compile(self, source: bytes, output: str) -> None:
        """gcc from the exact bytes that were hashed, into ``output``."""
        import shutil
        import subprocess

        gcc = shutil.which("gcc")
        if gcc is None:
            raise IsoinspectError(f"building the {self.kind} program: gcc not found "
                                  "(install gcc and libc6-dev; scripts/setup.sh does)")
        result = subprocess.run([gcc, *CFLAGS, "-o", output, "-x", "c", "-"], input=source,
                                capture_output=True, timeout=300)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.decode(errors="replace").strip().splitlines()[-8:])
            raise IsoinspectError(f"building the {self.kind} program with gcc -static failed "
                                  f"(are gcc and libc6-dev, the static libc, installed?):\n{tail}")


def build_main(program: StaticProgram, module: str, what: str,
               argv: list[str] | None = None) -> int:
    """``python -m <module> build [--cache-dir DIR]``: build if needed, print the path
    (scripts/setup.sh builds every static program this way)."""
    import argparse

    from isoinspect.runtime.errors import report_error

    parser = argparse.ArgumentParser(prog=f"python -m {module}",
                                     description=f"Build the {program.kind} program of {what}.")
    parser.add_argument("command", choices=["build"], help="build (if needed), print the path")
    parser.add_argument("--cache-dir", help=f"instead of $ISOINSPECT_CACHE/{program.kind}")
    args = parser.parse_args(argv)
    try:
        print(program.ensure_built(args.cache_dir))
    except IsoinspectError as exc:
        return report_error(exc, parser.prog)
    return 0


def temp_name(path: str) -> str:
    """A name next to ``path`` no concurrent builder uses."""
    return f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
