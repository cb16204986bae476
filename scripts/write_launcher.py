"""Replace pip's ``<venv>/bin/isoinspect`` console script with isoinspect's fast launcher.

Usage: ``<venv>/bin/python scripts/write_launcher.py <venv_dir>`` (run by scripts/setup.sh after
every set-up, because ``pip install`` rewrites the console script).

The launcher itself is owned by the CLI package:
``isoinspect.cli.launcher.write_launcher(venv_dir)`` writes it.

TODO(lead): provide ``isoinspect.cli.launcher.write_launcher(venv_dir)``. Until that module
exists, pip's console script is kept and this helper says so. It prints one short word/phrase for
the set-up summary on stdout; notes go to stderr.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} VENV_DIR", file=sys.stderr)
        return 2
    venv_dir = Path(argv[1]).resolve()
    try:
        spec = importlib.util.find_spec("isoinspect.cli.launcher")
    except ModuleNotFoundError:  # isoinspect or isoinspect.cli not importable at all
        spec = None
    if spec is None:
        print("setup: NOTE: isoinspect.cli.launcher not there yet; keeping pip's console script",
              file=sys.stderr)
        print("pip script (launcher module not there yet)")
        return 0
    launcher = importlib.import_module("isoinspect.cli.launcher")
    write = getattr(launcher, "write_launcher", None)
    if write is None:
        print("setup: NOTE: isoinspect.cli.launcher has no write_launcher(); keeping pip's script",
              file=sys.stderr)
        print("pip script (no write_launcher)")
        return 0
    script = write(str(venv_dir))
    print(f"fast launcher written ({script})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
