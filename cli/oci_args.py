"""The command lines containerd's shim runs on every container, parsed without argparse.

``create``, ``start``, ``state``, ``kill`` and ``delete`` with runc's global options: argparse
(with the ``re``, ``enum`` and ``gettext`` it imports) costs ~8 ms of a command that should take
a few. ``parse`` answers None for anything else (help, another command, an unknown or
malformed flag): the caller then uses the argparse parser, which also gives the error messages.
"""

from __future__ import annotations

from types import SimpleNamespace

# option -> (attribute, takes a value)
GLOBAL = {"--root": ("root", True), "--log": ("log", True), "--log-format": ("log_format", True),
          "--systemd-cgroup": ("systemd_cgroup", False), "--debug": ("debug", False),
          "--criu": ("criu", True), "--rootless": ("rootless", True)}
COMMANDS = {
    "create": {"--bundle": ("bundle", True), "-b": ("bundle", True),
               "--pid-file": ("pid_file", True), "--console-socket": ("console_socket", True),
               "--no-pivot": ("no_pivot", False), "--no-new-keyring": ("no_new_keyring", False),
               "--preserve-fds": ("preserve_fds", True)},
    "start": {}, "state": {},
    "kill": {"--all": ("all", False), "-a": ("all", False)},
    "delete": {"--force": ("force", False), "-f": ("force", False)},
}
DEFAULTS = {"root": None, "log": None, "log_format": "text", "systemd_cgroup": False,
            "debug": False, "criu": None, "rootless": None, "version": False}
COMMAND_DEFAULTS = {"create": {"bundle": ".", "pid_file": None, "console_socket": None,
                               "no_pivot": False, "no_new_keyring": False, "preserve_fds": 0},
                    "kill": {"all": False, "signal": "SIGTERM"}, "delete": {"force": False}}


def parse(argv: list[str]) -> SimpleNamespace | None:
    """The namespace argparse would give for one of the hot command lines, or None."""
    values = dict(DEFAULTS)
    rest = _options(argv, GLOBAL, values)
    if rest is None or not rest or rest[0] not in COMMANDS:
        return None
    command = rest[0]
    values.update(COMMAND_DEFAULTS.get(command, {}), command=command)
    positional = _options(rest[1:], COMMANDS[command], values)
    if positional is None:
        return None
    wanted = 2 if command == "kill" else 1
    if not 1 <= len(positional) <= wanted or any(word.startswith("-") for word in positional):
        return None  # options after a positional, a missing id: argparse's business
    values["id"] = positional[0]
    if command == "kill" and len(positional) == 2:
        values["signal"] = positional[1]
    if command == "create":
        if not str(values["preserve_fds"]).isdigit():
            return None
        values["preserve_fds"] = int(values["preserve_fds"])
    if values["log_format"] not in ("text", "json"):
        return None
    return SimpleNamespace(**values)


def _options(argv: list[str], known: dict, values: dict) -> list[str] | None:
    """Consume ``known`` options (``--opt V``, ``--opt=V``, flags) up to the first other word;
    the remaining words, or None on an unknown or incomplete option."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return argv[index + 1:]
        if not word.startswith("-") or word == "-":
            break
        name, equals, value = word.partition("=")
        if name not in known:
            return None
        attribute, takes_value = known[name]
        if takes_value:
            if not equals:
                index += 1
                if index >= len(argv):
                    return None
                value = argv[index]
            values[attribute] = value
        elif equals:
            return None
        else:
            values[attribute] = True
        index += 1
    return argv[index:]
