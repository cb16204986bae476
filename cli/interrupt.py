"""Commands that follow a stream until Ctrl-C end the way docker's do (runtime/errors.py
die_of_interrupt), not with the CLI's "interrupted" line."""

from __future__ import annotations

import functools

from isoinspect.runtime.errors import die_of_interrupt


def ends_on_interrupt(func):
    """Wrap a click callback (innermost decorator): KeyboardInterrupt -> die by SIGINT."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            die_of_interrupt()

    return wrapper
