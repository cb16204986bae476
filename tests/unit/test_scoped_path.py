"""scoped_path: links followed inside their root, never out of it (no root needed)."""

from __future__ import annotations

import os
import stat

import pytest

from isoinspect.runtime import scoped_path


def test_links_resolve_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "f").write_text("f")
    os.symlink("/real", root / "abs")
    os.symlink("../../../../real", root / "climb")
    os.symlink("/etc", root / "host")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    resolve = scoped_path.resolve_in_dir
    assert resolve(str(root), "abs/f") == str(root / "real" / "f")
    assert resolve(str(root), "climb/f") == str(root / "real" / "f")
    assert resolve(str(root), "host/passwd") == str(root / "etc" / "passwd")
    assert resolve(str(root), "../../etc/passwd") == str(root / "etc" / "passwd")
    assert resolve(str(root), ".") == str(root)
    with pytest.raises(scoped_path.TooManyLinks):
        resolve(str(root), "loop1/x")


def test_make_dirs_and_clear_replace_links_instead_of_following(tmp_path):
    tree, victim = tmp_path / "tree", tmp_path / "victim"
    tree.mkdir()
    victim.mkdir()
    os.symlink(str(victim), tree / "d")
    os.symlink(str(victim / "file"), tree / "f")
    made = scoped_path.make_dirs(str(tree), "d/sub")
    assert made == str(tree / "d" / "sub") and not os.path.islink(tree / "d")
    scoped_path.clear_for_write(str(tree / "f"))
    assert not os.path.lexists(tree / "f")
    assert os.listdir(victim) == []


def test_layered_view_follows_overlay_rules(tmp_path):
    top, low = tmp_path / "top", tmp_path / "low"
    (low / "etc").mkdir(parents=True)
    (low / "etc" / "gone").write_text("x")
    (low / "dir").mkdir()
    os.symlink(str(tmp_path), low / "escape")  # a link to the host path of the layers
    (top / "etc").mkdir(parents=True)
    os.mknod(top / "etc" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # whiteout
    os.symlink("../dir", top / "etc" / "up")
    view = scoped_path.LayeredView([str(top), str(low)])
    assert view.kind("/etc") == "dir" and view.kind("/etc/gone") is None
    assert view.resolve("/etc/up") == "/dir" and view.kind("/dir") == "dir"
    assert view.resolve("/escape/low/dir") == f"{tmp_path}/low/dir"  # inside the image
    assert view.kind(view.resolve("/escape/low/dir")) is None  # not the host's directory
