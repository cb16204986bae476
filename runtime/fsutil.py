"""Small file-system helpers for the start/stop path, where importing shutil (and with it re,
fnmatch, bz2 and lzma: ~6 ms) would cost more than the work itself."""

from __future__ import annotations

import os


def remove_tree(path: str) -> None:
    """rm -rf without following symlinks; missing paths are fine."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
