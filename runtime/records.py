"""Container records on disk: one directory per container, safe under concurrent commands.

  containers/<id>/state.bin   the ContainerState (marshal of its fields and a schema version:
                              fast to read and write on the start path)
  containers/<id>/state.bin.spare  its spare, swapped in by the next update
  containers/<id>/upper, work overlayfs upper and work dirs (the container's writes)
  containers/<id>/rootfs      mount point of the overlay, inside the container's mount ns only
  containers/<id>/container-frames.log  stdout and stderr of a detached or started container,
                              as timestamped records (runtime/log_format.py)
  containers/<id>/container.log  the same, from an older isoinspect (streams merged, no times)
  names/<name>                holds the id; created with O_EXCL so a name is taken exactly once

Records are replaced atomically, so a reader never sees half a record, and without needing
free space once written (runtime/rewritable.py): a container that fills the disk still gets its
exit code recorded, and `ps`, `rm -f` and `gc` work on a full disk.
"""

from __future__ import annotations

import marshal
import os

from isoinspect.runtime import rewritable
from isoinspect.runtime.container_state import ContainerState, decode, encode, upgrade_container
from isoinspect.runtime.fsutil import remove_tree
from isoinspect.runtime.errors import Conflict, IsoinspectError, NotFound
from isoinspect.runtime.roots import Roots

_NAME_FIRST = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | set("_.-")
_ADJECTIVES = ("brave", "calm", "eager", "fast", "keen", "lucid", "quiet", "sharp", "swift",
               "tidy", "vivid", "witty", "bold", "crisp", "nimble", "steady")
_NOUNS = ("otter", "falcon", "lynx", "heron", "badger", "marten", "osprey", "kestrel", "ibis",
          "gecko", "puffin", "wombat", "tapir", "okapi", "quokka", "serval")


LOG_FILE = "container-frames.log"  # see runtime/log_format.py
REMOVING_PREFIX = ".removing."  # containers/.removing.<id>.<pid>: being deleted by <pid>
KEPT_CREATED = "kept"  # the creator file of a container `create` left for `start`

NAME_MAX = 255  # a name is a file name under names/: Linux's NAME_MAX bytes


def validate_name(name: str) -> str:
    """Docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+, and no longer than a file name may be."""
    if len(name) < 2 or name[0] not in _NAME_FIRST or not set(name) <= _NAME_REST:
        raise IsoinspectError(f"invalid container name {name[:64]!r}: only "
                              "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters")
    if len(name) > NAME_MAX:
        raise IsoinspectError(f"invalid container name {name[:32]!r}...: {len(name)} "
                              f"characters, at most {NAME_MAX} are allowed")
    return name


class ContainerStore:
    """Create, find, update and delete container records under ``roots.data_dir``."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.base = roots.data("containers")
        self.names = roots.data("names")

    def dir(self, cid: str, *parts: str) -> str:
        return os.path.join(self.base, cid, *parts)

    def allocate(self, name: str | None) -> tuple[str, str]:
        """A fresh id and a reserved name (the given one, or a generated one)."""
        cid = os.urandom(32).hex()
        os.makedirs(self.names, exist_ok=True)
        if name is not None:
            self._reserve(validate_name(name), cid)
            return cid, name
        seed = os.urandom(3)
        for attempt in range(32):
            generated = f"{_ADJECTIVES[seed[0] % 16]}_{_NOUNS[seed[1] % 16]}"
            if attempt:
                generated += f"_{cid[attempt:attempt + 4]}"
            try:
                self._reserve(generated, cid)
                return cid, generated
            except Conflict:
                continue
        self._reserve(f"isoinspect_{cid[:12]}", cid)
        return cid, f"isoinspect_{cid[:12]}"

    def _reserve(self, name: str, cid: str) -> None:
        path = os.path.join(self.names, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            other = self._read_name(name) or "?"
            raise Conflict(f'the container name "{name}" is already in use by container '
                           f'"{other[:12]}"') from None
        try:
            os.write(fd, cid.encode())
        except BaseException:  # a full disk: an empty name file would hold the name
            os.unlink(path)
            raise
        finally:
            os.close(fd)

    def _read_name(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.names, name)) as handle:
                return handle.read().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def release_name(self, name: str, cid: str) -> None:
        """Free a name, but only if it still belongs to ``cid``."""
        if self._read_name(name) == cid:
            try:
                os.unlink(os.path.join(self.names, name))
            except FileNotFoundError:
                pass

    def mark_creator(self, cid: str) -> None:
        """Note which process is creating this container (first thing in its directory) or
        starting it again, so `gc` can tell a start in progress from one whose runtime was
        killed."""
        from isoinspect.runtime.process import start_ticks

        os.makedirs(self.dir(cid), exist_ok=True)
        with open(self.dir(cid, "creator"), "w") as handle:
            handle.write(f"{os.getpid()} {start_ticks(os.getpid())}")

    def keep_created(self, cid: str) -> None:
        """`create` is done: the container stays "created" until `start`, so the creator's
        exit is no crash for `gc` (creator_alive then answers None)."""
        with open(self.dir(cid, "creator"), "w") as handle:
            handle.write(KEPT_CREATED)

    def kept_created(self, cid: str) -> bool:
        """Was ``cid`` left "created" on purpose by `create`?"""
        try:
            with open(self.dir(cid, "creator")) as handle:
                return handle.read() == KEPT_CREATED
        except FileNotFoundError:
            return False

    def creator_alive(self, cid: str) -> bool | None:
        """Is the process that created ``cid`` still running? None if unknown."""
        from isoinspect.runtime.process import is_alive

        try:
            with open(self.dir(cid, "creator")) as handle:
                pid, ticks = handle.read().split()
        except (FileNotFoundError, ValueError):
            return None
        return is_alive(int(pid), int(ticks) if ticks.isdigit() else None)

    def monitor_lock(self, cid: str, blocking: bool = False) -> "MonitorLock":
        """The lock a container's monitor holds from clone until its exit code is saved."""
        return MonitorLock(self.dir(cid, "monitor.lock"), blocking)

    def save(self, state: ContainerState) -> None:
        """Replace the record atomically; once written, updates need no free space."""
        rewritable.write(self.dir(state.id), "state.bin", marshal.dumps(encode(state)))

    def load(self, cid: str) -> ContainerState:
        """The record of ``cid``; one written by an older isoinspect is converted."""
        try:
            values = marshal.loads(rewritable.read(self.dir(cid), "state.bin"))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no such container: {cid[:12]}") from None
        except (EOFError, ValueError, TypeError):
            raise IsoinspectError(f"container {cid[:12]} has a corrupt record") from None
        if not isinstance(values, dict):
            raise IsoinspectError(f"container {cid[:12]} has a corrupt record")
        return decode(ContainerState, values, f"container {cid[:12]}", upgrade_container)

    def ids(self) -> list[str]:
        try:
            return [e for e in os.listdir(self.base) if len(e) == 64]
        except FileNotFoundError:
            return []

    def lookup(self, ref: str) -> str:
        """Container id for a full id, a name or a unique id prefix; NotFound otherwise."""
        if not ref:
            raise NotFound("no such container: ''")
        if len(ref) == 64 and os.path.isdir(self.dir(ref)):
            return ref
        by_name = self._read_name(ref) if "/" not in ref and not ref.startswith(".") else None
        if by_name and os.path.isdir(self.dir(by_name)):
            return by_name
        matches = [cid for cid in self.ids() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise IsoinspectError(f"multiple containers match {ref!r}: use more characters")
        raise NotFound(f"no such container: {ref}")

    def delete(self, state: ContainerState, announce=None) -> bool:
        """Remove a container's directory and free its name; ``announce()`` (Docker's destroy
        event) once it is ours to remove. The directory is renamed to a private name first, so
        of two removers (`rm -f` and a --rm monitor) one does it and announces it; the other
        waits for it to be done (so `rm -f` returns after the destroy, as Docker's) and gets
        False."""
        gone = os.path.join(self.base, f"{REMOVING_PREFIX}{state.id}.{os.getpid()}")
        try:
            os.rename(self.dir(state.id), gone)
        except FileNotFoundError:
            self.wait_removed(state.id)
            return False
        self.release_name(state.name, state.id)
        if announce is not None:
            announce()
        remove_tree(gone)
        return True

    def wait_removed(self, cid: str, timeout: float = 10.0) -> None:
        """Until another command's removal of ``cid`` (announced first) is done."""
        import time

        deadline = time.monotonic() + timeout
        prefix = f"{REMOVING_PREFIX}{cid}."
        while time.monotonic() < deadline and any(
                entry.startswith(prefix) for entry in os.listdir(self.base)):
            time.sleep(0.005)

    def collect_removing(self) -> list[str]:
        """Directories a remover renamed and died before emptying (for `gc`)."""
        from isoinspect.runtime.process import is_alive

        done = []
        for entry in os.listdir(self.base) if os.path.isdir(self.base) else []:
            pid = entry.rpartition(".")[2]
            if entry.startswith(REMOVING_PREFIX) and pid.isdigit() and not is_alive(int(pid), None):
                remove_tree(os.path.join(self.base, entry))
                done.append(f"removed the rest of container {entry.split('.')[1][:12]}")
        return done


class MonitorLock:
    """flock on containers/<id>/monitor.lock.

    The monitor (the foreground CLI, or the detached monitor process) takes it exclusively
    before cloning the container and drops it once the exit code is saved; the kernel drops it
    if the monitor dies. A reader that finds the container's process gone takes it (blocking) to
    learn whether the monitor is still writing the exit code or died without doing so.
    """

    def __init__(self, path: str, blocking: bool) -> None:
        self.path, self.blocking, self.fd = path, blocking, -1

    @classmethod
    def inherited(cls, path: str, fd: int) -> "MonitorLock":
        """The lock held through ``fd``, received across exec from the monitor that took it."""
        lock = cls(path, False)
        lock.fd = fd
        return lock

    def __enter__(self) -> "MonitorLock":
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.blocking else
                        fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:  # held (BlockingIOError): no fd left behind
            os.close(self.fd)
            self.fd = -1
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
