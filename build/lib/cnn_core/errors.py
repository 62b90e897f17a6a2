"""The errors `cnn_core` raises for bad input, each worded for the person who caused it.

A `UserError` is something the user can fix: its message says what is wrong, where, and how to
fix it, in one sentence. The CLI prints it on one line and exits with status 2; the dashboard shows
it as a message. Anything else that escapes is a bug (exit status 1).
"""

from __future__ import annotations

BUG = 1  # the exit status of anything unexpected
INTERRUPTED = 130  # Ctrl-C, as shells report it


class UserError(Exception):
    """A problem with the user's input, explained in one sentence."""

    exit_code = 2


class SpecError(UserError):
    """An architecture spec that is not valid JSON, not this format, or not a buildable network."""


class ConfigError(UserError):
    """A training configuration with an unknown key or an impossible value."""


class DataError(UserError):
    """A dataset source that is missing, empty, malformed or unreachable."""


class ImageError(UserError):
    """An image file that cannot be read safely (wrong format, truncated, too large)."""


def exit_code_of(exc: BaseException) -> int:
    """The exit status a command ends with when `exc` ends it, chosen by its type only: its own
    `exit_code` (a `UserError`'s 2), 130 for Ctrl-C, 2 for a file the system refused (a full
    disk, a read-only folder: not a bug) and 1 for anything else (a bug)."""
    code = getattr(type(exc), "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, OSError):
        return UserError.exit_code
    return BUG
