"""Text for a terminal: control characters in names a user chose made harmless before printing.

A class folder, a file or a run can be named with escape codes (`ESC [ 2 J` clears the screen,
`ESC ] 8` makes a link, a C1 `CSI` does the same in one byte on some terminals). Everything the
command line prints goes through `terminal_safe`, which writes each such character as a visible
escape (`\\x1b`) instead; newlines and tabs are the program's own layout and are kept.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates
# that make a terminal show text in another order than it was written.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with every control character but newline and tab written as `\\xNN` or `\\uNNNN`."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
