"""The exec stub's bytes are what its documented source assembles to, and its image is a
well-formed static ELF (runtime/linux/sealed_exec.py; tests/integration/test_security_exec.py
runs it for real)."""

from __future__ import annotations

import re
import struct
import subprocess

from isoinspect.runtime.linux import sealed_exec


def _listing() -> str:
    """The assembly in the module docstring, labels made local, GNU as syntax."""
    doc = sealed_exec.__doc__
    body = doc[doc.index("    _start:"):doc.index("    data:") + len("    data:")]
    lines = [".intel_syntax noprefix", ".text", ".globl _start"]
    for line in body.splitlines():
        code = line.split(";")[0].strip()
        if code:
            lines.append(re.sub(r"\b(scan|found|len|path|noargs)\b", r".L\1", code))
    return "\n".join(lines) + "\n"


def test_the_code_is_the_documented_source(tmp_path):
    source = tmp_path / "stub.S"
    source.write_text(_listing())
    subprocess.run(["as", "-o", str(tmp_path / "stub.o"), str(source)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "stub.o"),
                    str(tmp_path / "stub.bin")], check=True)
    assert (tmp_path / "stub.bin").read_bytes() == sealed_exec._CODE_X86_64


def test_the_image_is_one_loadable_segment_with_the_error_fd_and_messages():
    image = sealed_exec.stub_image(251)
    assert image[:4] == b"\x7fELF" and image[4] == 2  # 64-bit
    e_type, machine, _, entry, phoff = struct.unpack_from("<HHIQQ", image, 16)
    assert (e_type, machine, phoff) == (2, 62, 64)
    p_type, flags, offset, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", image,
                                                                          64)
    assert (p_type, flags, offset, filesz, memsz) == (1, 5, 0, len(image), len(image))
    assert entry == vaddr + 120
    data = 120 + len(sealed_exec._CODE_X86_64)
    assert struct.unpack_from("<I", image, data)[0] == 251
    assert b"no such file or directory" in image and b"exec format error" in image
