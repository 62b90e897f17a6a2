"""Make every page open through `app.py`'s navigation, even as a fresh server's first request.

Streamlit still knows its first way of making multipage apps: a main script with a `pages/` folder
beside it. Until a script has called `st.navigation`, a server that sees such a folder runs the
page the address names directly (a deep link such as `/runs?run=NAME`, or a refreshed tab after a
restart), without `app.py`: the sidebar then lists every file in `pages/` and the layout turns
narrow. Each page calls `ensure_routed()` first; when the run it is in was set up that old way
(its pages include `app.py` itself), it turns the old discovery off for the server, runs `app.py`
in its place (whose navigation picks the same page: a page's identity is its address, so `/runs`
stays `/runs`) and ends the direct run. Rerunning instead would lose a click that came with this
run (Streamlit's own test runner starts every run this way). Two tabs reconnecting at once after
a restart both start that old way, so each run is judged on its own, not by the server's flag.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parents[1] / "app.py"


def ensure_routed() -> None:
    """Run `app.py` instead if Streamlit's folder discovery ran this page directly."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # a Streamlit without the old discovery: nothing to undo
        return
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    pages = ctx.pages_manager.get_pages().values()
    if not any(Path(page.get("script_path") or "") == APP for page in pages):
        return  # set up by app.py's navigation, whose pages are only those in pages/
    PagesManager.uses_pages_directory = False  # what `st.navigation` itself sets
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()  # the page has been drawn, through app.py
