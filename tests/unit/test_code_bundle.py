"""The launcher's code bundle: modules come from it, an edited module from its source."""

import os
import sys

import pytest

from isoinspect.cli import code_bundle

TOP = "isoinspect_bundle_probe"


@pytest.fixture
def tree(tmp_path):
    """A package ``TOP`` with a subpackage ``hot`` (bundled) holding two modules."""
    hot = tmp_path / TOP / "hot"
    hot.mkdir(parents=True)
    (tmp_path / TOP / "__init__.py").write_text("")
    (hot / "__init__.py").write_text("WHERE = 'package'\n")
    (hot / "one.py").write_text("VALUE = 1\n")
    (hot / "two.py").write_text("from . import one\nVALUE = one.VALUE + 1\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m == TOP or m.startswith(TOP + ".")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, code_bundle.BundleFinder)]


def _install(tree):
    code_bundle.build(str(tree), top=TOP, packages=("hot",))
    finder = code_bundle.install(str(tree))
    assert finder is not None and sys.meta_path[0] is finder
    return finder


def test_modules_come_from_the_bundle_with_their_real_file_names(tree):
    finder = _install(tree)
    from isoinspect_bundle_probe.hot import two

    assert two.VALUE == 2 and two.__loader__ is finder
    assert two.__file__ == str(tree / TOP / "hot" / "two.py")
    package = sys.modules[f"{TOP}.hot"]
    assert package.WHERE == "package" and package.__path__ == [str(tree / TOP / "hot")]


def test_a_module_edited_after_the_bundle_is_imported_from_its_source(tree):
    finder = _install(tree)
    (tree / TOP / "hot" / "one.py").write_text("VALUE = 41  # edited\n")
    from isoinspect_bundle_probe.hot import two

    assert two.VALUE == 42  # a stale bundle would give 2
    assert sys.modules[f"{TOP}.hot.one"].__loader__ is not finder
    assert two.__loader__ is finder


def test_a_closed_bundle_descriptor_falls_back_to_the_source(tree):
    finder = _install(tree)
    os.close(finder._fd)
    from isoinspect_bundle_probe.hot import one

    assert one.VALUE == 1


def test_a_bundle_of_another_format_is_ignored(tree):
    code_bundle.build(str(tree), top=TOP, packages=("hot",))
    path = tree / code_bundle.BUNDLE_NAME
    path.write_bytes(b"isoinspect-code-bundle 0 cpython-00\n" + path.read_bytes()[40:])
    assert code_bundle.install(str(tree)) is None
    assert code_bundle.install(str(tree / "missing")) is None


def test_the_launcher_serves_the_cli_from_the_bundle(tmp_path):
    """The real launcher, written into a scratch venv layout: its run path is bundled."""
    import subprocess

    from isoinspect.cli import launcher

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python3")
    script = launcher.write_launcher(str(venv))
    probe = ("import sys\n"
             "exec(open(sys.argv[1]).read().split('from isoinspect.cli.entry')[0])\n"
             "import isoinspect.runtime.runtime as r\n"
             "print(type(r.__loader__).__name__)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe, script],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "BundleFinder"


def test_a_detached_monitors_teardown_imports_from_the_bundle(tmp_path, monkeypatch):
    """Issue 20: `stop` waits for the monitor's teardown, a fresh Python: its modules come from
    the launcher's bundle, as the CLI's do, not each through a path search."""
    import subprocess

    import isoinspect
    from isoinspect.cli.launcher import link_tree
    from isoinspect.runtime.monitor_exit import cleanup_argv
    from isoinspect.runtime.runtime import Runtime

    src = link_tree(str(tmp_path / "venv"))  # the fast launcher's tree, and its bundle
    code_bundle.build(src)
    monkeypatch.setattr(isoinspect, "__file__", os.path.join(src, "isoinspect", "__init__.py"))
    argv = cleanup_argv(Runtime(str(tmp_path / "root")), "ab" * 32, 99, False)
    code = argv[argv.index("-c") + 1]
    assert code.endswith("sys.exit(main())")
    probe = code[:-len("sys.exit(main())")] + (
        "print(type(sys.modules['isoinspect.runtime.runtime'].__loader__).__name__)")
    done = subprocess.run([argv[0], argv[1], "-c", probe], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "BundleFinder"), done.stderr
