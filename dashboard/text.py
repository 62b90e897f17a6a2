"""Text a user controls (run, class and file names, messages), shown as text; and the icons
every page uses for a run's state, and how an error is shown. Streamlit only. (Durations are
written by `cnn_core.progress.format_seconds`.)
"""

from __future__ import annotations

import html
import re

import streamlit as st

from cnn_core.errors import UserError

STATE_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/sync:",
    "completed": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "diverged": ":material/trending_up:",
    "failed": ":material/error:",
    "interrupted": ":material/pause_circle:",
}
# What Markdown (GitHub's, with Streamlit's math and colour directives) can read as syntax in a
# line of text: emphasis, code, links and images, HTML and entities, math, tables, headings.
_MARKUP = re.compile(r"[\\`*_\[\]<>!$~|#{}&]")
# Bare web and e-mail addresses become links after escapes are resolved (measured in Chromium:
# "https\://x" is still a link), so an invisible WORD JOINER goes where GitHub's rule for them
# would match: before "://", between "www" and ".", before "@".
_ADDRESS = re.compile(r"(?=://)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """`text` for a Markdown-rendering call (st.error, st.caption, a label...), shown literally.

    Streamlit renders Markdown in messages, captions and labels, so a run, class or file name
    like `[x](https://...)` became a link and `![i](https://...)` made the browser fetch a URL.
    Each character Markdown could read as syntax is backslash-escaped (CommonMark: an escaped
    punctuation character is always literal) and addresses are broken up invisibly; the rest,
    "." and ":" in a sentence among them, stays as it is, so a message's source still reads as
    the message.
    """
    escaped = _MARKUP.sub(lambda found: "\\" + found.group(), str(text))
    return _ADDRESS.sub(WORD_JOINER, escaped)


def plotly_text(text: object) -> str:
    """`text` for a Plotly label or title, shown literally: Plotly renders a few HTML tags
    (`<a href>` among them) in text, and decodes entities after it has found the tags."""
    return html.escape(str(text), quote=False)


def show_error(exc: UserError) -> None:
    st.error(plain(exc), icon=":material/error:")
