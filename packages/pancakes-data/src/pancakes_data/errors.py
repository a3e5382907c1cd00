"""The one family of user errors: what the user gave cannot be used.

Every package's user-facing problem (an unreadable file, a bad flag, an OUT that holds someone
else's files) is a :class:`UserError`: the command lines turn it into one line naming the problem
and the offending value, and exit code 2, in one place each; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A problem with the user's input or settings (one line, exit code 2, no traceback)."""
