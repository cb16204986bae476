"""Exec a container's command through a sealed in-memory stub (the CVE-2019-5736 class).

Every process that starts a container's command is this runtime's Python, so until its execve
``/proc/<pid>/exe`` is the host's interpreter file. If the command the container names is a
script starting ``#!/proc/self/exe``, the kernel resolves that interpreter in the exec'ing
process: the host interpreter then runs *as the container's process*, dumpable again, and any
process of the container can open it through ``/proc/<pid>/exe`` and, once no process runs
it, open that descriptor for writing and replace the host's python (runc's CVE-2019-5736).
Making the process non-dumpable does not cover this: exec resets the flag for the new image.

So the last step goes through a stub: a static x86-64 program of under 1 KiB written here into a
memfd that is sealed (no write, grow, shrink or further seals) before it runs. Python
fexecve()s the stub with ``[path, *argv]``; the stub marks the error pipe close-on-exec,
execve()s ``path`` with ``argv`` and, if that fails, writes ``exec: "<path>": <reason>`` to the
error pipe and exits 127 (ENOENT) or 126. ``/proc/self/exe`` during that last execve is the
sealed memfd: a ``#!/proc/self/exe`` script runs the stub again, which finds fewer arguments
each round and ends with exit 127; a descriptor to it can never be written.
This is runc 1.2-rc's "runc-dmz" idea (a tiny binary between the runtime and the container);
runc itself now seals its own binary (memfd, or a private read-only overlayfs), which for a
Python runtime would mean starting a second interpreter per container: ~10-20 ms.

The machine code below was assembled from this source (GNU as, ``.intel_syntax noprefix``);
``data`` is appended by ``stub_image`` right after the code::

    _start: mov rbx, [rsp]              ; argc
            cmp rbx, 2
            jb  noargs                  ; no path and argv[0]: exit 127
            lea r9, [rip + data]
            mov edi, [r9]               ; fcntl(err_fd, F_SETFD, FD_CLOEXEC)
            mov esi, 2
            mov edx, 1
            mov eax, 72
            syscall
            mov rdi, [rsp + 8]          ; execve(argv[0], argv + 1, envp)
            lea rsi, [rsp + 16]
            lea rdx, [rsp + rbx*8 + 16]
            mov eax, 59
            syscall
            neg eax                     ; errno
            lea r8, [r9 + 16]           ; the table: errno, exit code, length, offset
    scan:   movzx ecx, byte ptr [r8]
            test ecx, ecx               ; errno 0 ends the table: the default entry
            jz  found
            cmp ecx, eax
            je  found
            add r8, 8
            jmp scan
    found:  mov edi, [r9]               ; write(err_fd, prefix)
            mov esi, [r9 + 4]
            add rsi, r9
            mov edx, [r9 + 8]
            mov eax, 1
            syscall
            mov rsi, [rsp + 8]          ; write(err_fd, path, strlen(path))
            xor edx, edx
    len:    cmp byte ptr [rsi + rdx], 0
            je  path
            inc rdx
            jmp len
    path:   mov edi, [r9]
            mov eax, 1
            syscall
            mov edi, [r9]               ; write(err_fd, the entry's text)
            mov esi, [r8 + 4]
            add rsi, r9
            movzx edx, word ptr [r8 + 2]
            mov eax, 1
            syscall
            movzx edi, byte ptr [r8 + 1]    ; exit_group(the entry's code)
            mov eax, 231
            syscall
    noargs: mov edi, 127
            mov eax, 231
            syscall
            .p2align 3
    data:
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

STUB_NAME = "isoinspect-exec"
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126

_CODE_X86_64 = bytes.fromhex(
    "488b1c244883fb020f829c0000004c8d0da3000000418b39be02000000ba01000000b848000000"
    "0f05488b7c2408488d742410488d54dc10b83b0000000f05f7d84d8d4110410fb60885c9740a39"
    "c174064983c008ebee418b39418b71044c01ce418b5108b8010000000f05488b74240831d2803c"
    "1600740548ffc2ebf5418b39b8010000000f05418b39418b70044c01ce410fb75002b801000000"
    "0f05410fb67801b8e70000000f05bf7f000000b8e70000000f056690")
_LOAD_ADDRESS = 0x400000
_ELF_HEADER = 64
_PROGRAM_HEADER = 56
# errnos the stub names (anything else: "exec failed"), as Docker/runc word them.
_NAMED_ERRNOS = (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP,
                 errno.ETXTBSY, errno.E2BIG, errno.ENOMEM, errno.EPERM, errno.EISDIR,
                 errno.ENAMETOOLONG, errno.ELIBBAD)

MFD_CLOEXEC = 0x1
MFD_ALLOW_SEALING = 0x2
MFD_EXEC = 0x10  # Linux 6.3+: say so explicitly where vm.memfd_noexec=1
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_EXEC = 1, 2, 4, 8, 0x20
F_ADD_SEALS = 1033


def supported() -> bool:
    """The stub is x86-64 code; elsewhere ``exec_via_stub`` is not used (see child.py)."""
    return os.uname().machine == "x86_64"


def stub_image(err_fd: int) -> bytes:
    """The stub as a complete static ELF executable reporting failures on ``err_fd``."""
    strings = bytearray()
    entries = []

    def add(text: str) -> tuple[int, int]:
        raw = text.encode()
        offset = len(strings)
        strings.extend(raw)
        return offset, len(raw)

    prefix = add('exec: "')
    for number in _NAMED_ERRNOS:
        code = EXIT_NOT_FOUND if number == errno.ENOENT else EXIT_NOT_EXECUTABLE
        entries.append((number, code, *add(f'": {os.strerror(number).lower()}')))
    entries.append((0, EXIT_NOT_EXECUTABLE, *add('": exec failed')))
    table_size = 8 * len(entries)
    base = 16 + table_size  # strings follow the header and the table, offsets from ``data``
    data = struct.pack("<IIII", err_fd, base + prefix[0], prefix[1], 0)
    for number, code, offset, length in entries:
        data += struct.pack("<BBHI", number, code, length, base + offset)
    body = _CODE_X86_64 + data + bytes(strings)
    size = _ELF_HEADER + _PROGRAM_HEADER + len(body)
    header = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, bytes(7),
                         2, 62, 1, _LOAD_ADDRESS + _ELF_HEADER + _PROGRAM_HEADER,
                         _ELF_HEADER, 0, 0, _ELF_HEADER, _PROGRAM_HEADER, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, _LOAD_ADDRESS, _LOAD_ADDRESS, size, size,
                          0x1000)
    return header + program + body


def sealed_stub(err_fd: int) -> int:
    """A close-on-exec memfd holding the stub, sealed against any change, ready to fexecve."""
    return sealed_program(stub_image(err_fd), STUB_NAME)


def sealed_program(image: bytes, name: str) -> int:
    """A close-on-exec memfd holding the executable ``image``, sealed against any change:
    a process running it can never have its program rewritten (also the warm pool's
    runtime/zygote_stub.c)."""
    try:
        fd = os.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # kernels before 6.3 do not know MFD_EXEC
            raise
        fd = os.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)
    try:
        view = memoryview(image)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.EIO, f"short write to the sealed program {name}")
            view = view[written:]
        os.fchmod(fd, 0o555)  # whatever user the command runs as must be able to exec it
        seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
        try:
            fcntl.fcntl(fd, F_ADD_SEALS, seals | F_SEAL_EXEC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # F_SEAL_EXEC is Linux 6.3+
                raise
            fcntl.fcntl(fd, F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exec_via_stub(stub_fd: int, err_fd: int, path: str, argv: list[str],
                  env: dict[str, str]) -> None:
    """fexecve the stub to exec ``path``; raises OSError only if the stub could not start."""
    os.set_inheritable(err_fd, True)  # the stub reports on it, then marks it close-on-exec
    try:
        os.execve(stub_fd, [path, *argv], env)
    finally:
        os.set_inheritable(err_fd, False)
