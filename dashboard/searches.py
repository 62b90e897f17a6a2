"""The Search page's reading of a search: its trials and its Optuna study, loaded from the
journal again only when the journal has changed, so that a live search's redraw every few
seconds costs a `stat` while nothing new was written, not a replay of the whole journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from cnn_core import search


def load_search_once(name: str, root: str | Path) -> tuple[search.SearchResult, Any]:
    """`search.load_search(name, root)`, cached under the journal's size and modification
    time (`search.study_stamp`); its errors are not cached, so a repaired journal reads."""
    return _loaded(name, str(root), search.study_stamp(name, root))


@st.cache_resource(max_entries=8, show_spinner=False)  # the study is not copied: read-only here
def _loaded(name: str, root: str, stamp: tuple[int, int] | None) -> tuple[Any, Any]:
    del stamp  # only the cache's key: a new stamp loads the study again
    return search.load_search(name, root)
