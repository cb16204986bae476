"""The one choke point for cgroupfs file I/O, shared by the v1 and v2 drivers.

Semantics (after runc's fscommon):
- reading a file that does not exist returns None: the controller is not enabled (or not
  mounted) there, which is not an error;
- every other failure raises OSError whose message names the file (and the value written);
- a value is written with a single write(2), as the kernel parses one value per write.

Only ``os``, ``errno`` and ``time`` are imported: this module is on the container start path.
"""

from __future__ import annotations

import errno
import os
import time

# v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE (e.g. 9223372036854771712); anything this
# large is treated as unlimited and reported as -1 like "max" on v2.
_UNLIMITED_FLOOR = 1 << 62


def _fail(err: OSError, what: str, path: str) -> OSError:
    detail = os.strerror(err.errno) if err.errno else str(err)
    if err.errno == errno.ENOENT:
        detail += " (controller not enabled?)"
    return OSError(err.errno, f"cgroup: {what} {path}: {detail}", path)


def write_value(directory: str, name: str, value: str | int) -> None:
    """Write one value to ``directory/name``; raise OSError naming the file on failure."""
    path = directory + "/" + name
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as err:
        raise _fail(err, f"cannot write {value!r} to", path) from None
    try:
        os.write(fd, data)
    except OSError as err:
        raise _fail(err, f"cannot write {value!r} to", path) from None
    finally:
        os.close(fd)


def write_if_present(directory: str, name: str, value: str | int) -> bool:
    """Write like write_value, but return False (writing nothing) if the file does not exist."""
    try:
        write_value(directory, name, value)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def write_first_present(directory: str, names: tuple[str, ...], value: str | int,
                        what: str) -> None:
    """Write ``value`` to the first of ``names`` that exists (files that depend on the kernel's
    configuration, e.g. a BFQ or a CFQ weight); ENOENT naming ``what`` if none does."""
    for name in names:
        if write_if_present(directory, name, value):
            return
    raise OSError(errno.ENOENT, f"cgroup: {what} is not supported here: no "
                  f"{' or '.join(names)} in {directory}")


def write_fields(directory: str, pairs) -> None:
    """write_value for each (name, value) pair whose value is not None, in order."""
    for name, value in pairs:
        if value is not None:
            write_value(directory, name, value)


def has_file(directory: str, name: str) -> bool:
    return os.path.exists(directory + "/" + name)


def read_value(directory: str, name: str) -> str | None:
    """Return the stripped text of ``directory/name``, or None if the file does not exist."""
    path = directory + "/" + name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _fail(err, "cannot read", path) from None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as err:
        raise _fail(err, "cannot read", path) from None
    finally:
        os.close(fd)
    return b"".join(chunks).decode().strip()


def parse_int(text: str, path: str = "") -> int:
    """Parse a cgroup integer: "max" and v1's near-2**63 "unlimited" values become -1."""
    if text == "max":
        return -1
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"cgroup: {path or 'value'}: expected an integer, got {text!r}") from None
    return -1 if value >= _UNLIMITED_FLOOR else value


def read_int(directory: str, name: str) -> int | None:
    """Read a single-integer file ("max" -> -1); None if the file does not exist."""
    text = read_value(directory, name)
    if text is None:
        return None
    return parse_int(text, directory + "/" + name)


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_keyed(directory: str, name: str) -> dict[str, int | float | str] | None:
    """Read a flat keyed file ("key value" per line: memory.stat, cpu.stat, memory.events,
    pids.events, memory.oom_control, cgroup.events); None if the file does not exist."""
    text = read_value(directory, name)
    if text is None:
        return None
    result: dict[str, int | float | str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            result[key] = _number(value.strip())
    return result


def read_nested(directory: str, name: str) -> dict[str, dict[str, int | float | str]] | None:
    """Read a nested keyed file ("key sub=value sub=value" per line: io.stat, io.max,
    memory.pressure); None if the file does not exist."""
    text = read_value(directory, name)
    if text is None:
        return None
    result: dict[str, dict[str, int | float | str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        entry: dict[str, int | float | str] = {}
        for field in fields[1:]:
            sub, _, value = field.partition("=")
            entry[sub] = _number(value)
        result[fields[0]] = entry
    return result


def read_pids(directory: str, name: str = "cgroup.procs") -> list[int] | None:
    """Read a pid list file (cgroup.procs, tasks); None if the file does not exist."""
    text = read_value(directory, name)
    if text is None:
        return None
    return [int(line) for line in text.split()]


def make_dir(path: str) -> bool:
    """mkdir -p; return True if the last component was created now."""
    try:
        os.mkdir(path, 0o755)
        return True
    except FileExistsError:
        return False
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path:
            raise
        make_dir(parent)
    except OSError as err:
        raise _fail(err, "cannot create", path) from None
    return make_dir(path)


def remove_dir(path: str, timeout: float = 1.0) -> bool:
    """rmdir a cgroup, retrying on EBUSY (exiting tasks) for up to ``timeout`` seconds.

    Return True if removed, False if it was already gone. A fake tree from a test holds the
    recorded control files, which cgroupfs would not: they are removed first if present.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return False
        except OSError as err:
            if err.errno == errno.ENOTEMPTY and _remove_plain_files(path):
                continue
            if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise _fail(err, "cannot remove", path) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _remove_plain_files(path: str) -> bool:
    """In a fake (test) tree only: unlink the recorded control files of a cgroup directory.

    cgroupfs never fails rmdir with ENOTEMPTY (a child cgroup gives EBUSY), so this runs only on
    ordinary file systems, and only in a directory that looks like a cgroup (has cgroup.procs)
    and has no subdirectory.
    """
    with os.scandir(path) as entries:
        items = list(entries)
    if not any(e.name == "cgroup.procs" for e in items) or any(
            e.is_dir(follow_symlinks=False) for e in items):
        return False
    for entry in items:
        os.unlink(entry.path)
    return True


def read_fields(directory: str, pairs) -> dict[str, str | None] | None:
    """{key: read_value(name)} for (key, name) pairs; None if none of the files exists."""
    result = {key: read_value(directory, name) for key, name in pairs}
    return result if any(value is not None for value in result.values()) else None


def list_dirs(path: str) -> list[str]:
    """Names of the subdirectories (child cgroups) of ``path``; [] if it does not exist."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def wait_for(check, timeout: float, what: str) -> None:
    """Poll ``check()`` until it is true; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"cgroup: timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def sum_by_key(entries, keys) -> dict[str, int]:
    """Sum numeric fields named in ``keys`` over an iterable of dicts (per-device stats)."""
    totals = {key: 0 for key in keys}
    for entry in entries:
        for key in keys:
            value = entry.get(key)
            if isinstance(value, int):
                totals[key] += value
    return totals
