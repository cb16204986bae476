"""The warm pool's waiting program (runtime/zygote_stub.c): its cached build, sealed in a memfd.

Built like the ``run -d`` monitor (runtime/static_program.py): at set-up by scripts/setup.sh,
else on the first pool's ``open()``. Without gcc the zygotes wait in Python (slower hand-off:
their interpreter's exec is then on the start's path), silently.

    python -m isoinspect.runtime.zygote_program build     # prints the binary's path
"""

from __future__ import annotations

import os
import sys

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.static_program import StaticProgram, build_main

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote_stub.c")
BINARY_NAME = "isoinspect-zygote"


def _check(binary: str) -> None:
    """The fresh binary runs and refuses what is not a zygote's command line (exit 127)."""
    import subprocess

    code = subprocess.run([binary], capture_output=True, timeout=30).returncode
    if code != 127:
        raise IsoinspectError(f"the zygote program built as {binary} does not run (exit {code})")


ZYGOTE = StaticProgram("zygote", SOURCE, BINARY_NAME, _check)


def sealed_zygote_program(cache_dir: str | None = None) -> int:
    """A sealed, close-on-exec memfd of the built program (one per pool, shared by its
    zygotes: nobody can write it); -1 when it cannot be built or sealed here."""
    from isoinspect.runtime.linux import sealed_exec

    if not sealed_exec.supported():
        return -1
    try:
        with open(ZYGOTE.ensure_built(cache_dir), "rb") as handle:
            image = handle.read()
        return sealed_exec.sealed_program(image, BINARY_NAME)
    except Exception:  # noqa: BLE001 - gcc missing, a failed build, memfd refused: Python waits
        return -1


def main(argv: list[str] | None = None) -> int:
    return build_main(ZYGOTE, "isoinspect.runtime.zygote_program", "the warm pool", argv)


if __name__ == "__main__":
    sys.exit(main())
