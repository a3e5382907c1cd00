"""The one family of user errors: what the user gave cannot be used.

Every package's user-facing problem (an unreadable file, a bad flag, an OUT that holds someone
else's files) is a :class:`UserError`: the command lines turn it into one line naming the problem
and the offending value, and exit code 2, in one place each; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import os
import sys

__all__ = ["SIGPIPE_EXIT", "UserError", "stdout_closed", "write_failure"]

_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}

# The shell's exit code for a process ended by SIGPIPE (128 + 13): what `cmd | head` expects.
SIGPIPE_EXIT = 141


class UserError(ValueError):
    """A problem with the user's input or settings (one line, exit code 2, no traceback)."""


def write_failure(exc: OSError) -> str | None:
    """One line for an ``OSError`` the machine raised while writing (a full disk, a read-only or
    forbidden folder), or None when it is something else (a bug: keep its traceback)."""
    reason = _WRITE_ERRORS.get(exc.errno)
    return None if reason is None else f"cannot write {exc.filename or 'the output'}: {reason}"


def stdout_closed() -> int:
    """After a ``BrokenPipeError`` on stdout (the reader of ``cmd | head`` has gone): point stdout
    at the null device, so the flush Python does at exit cannot raise a second time (its traceback
    is what the user would see), and return :data:`SIGPIPE_EXIT` for the command to exit with."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return SIGPIPE_EXIT
