"""Signal names and numbers, and the one parser of a signal given by a user.

``isoinspect kill -s`` (Docker's grammar) and ``isoinspect-runc kill`` (runc's) both accept a
number ("9"), a name with or without the SIG prefix in any case ("KILL", "SIGKILL", "sigterm")
and the real-time signals as Docker names them ("RTMIN", "RTMIN+3", "RTMAX-1"). A plain table,
not the ``signal`` module: that one imports ``enum`` (milliseconds on the start path).
Numbers are Linux's generic ones (x86, arm, arm64, riscv, s390, powerpc).
"""

from __future__ import annotations

SIGNAL_NUMBERS: dict[str, int] = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
    "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27,
    "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN = 34  # the kernel's 32 and 33 are kept by glibc's threads; C programs see 34 as RTMIN
SIGRTMAX = 64
SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGTERM = 1, 2, 3, 9, 15


def _realtime(name: str) -> int | None:
    for base, number in (("RTMIN", SIGRTMIN), ("RTMAX", SIGRTMAX)):
        if name == base:
            return number
        if name.startswith(base) and len(name) > len(base) + 1 and name[len(base)] in "+-":
            offset = name[len(base) + 1:]
            if not (offset.isascii() and offset.isdigit()):
                return None
            value = number + int(offset) if name[len(base)] == "+" else number - int(offset)
            return value if SIGRTMIN <= value <= SIGRTMAX else None
    return None


def parse_signal(text: str) -> int | None:
    """The signal number ``text`` names, or None if it names none (the caller words the error).

    "9" -> 9, "KILL"/"SIGKILL"/"sigkill" -> 9, "RTMIN+2" -> 36; "0" -> 0 (kill(2)'s "does it
    exist" probe, which runc passes on). Numbers above SIGRTMAX are not signals.
    """
    raw = str(text).strip()
    if raw.isascii() and raw.isdigit():
        number = int(raw)
        return number if number <= SIGRTMAX else None
    name = raw.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNAL_NUMBERS:
        return SIGNAL_NUMBERS[name]
    return _realtime(name)
