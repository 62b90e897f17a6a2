"""What a browser session keeps between reruns: the draft architecture it is editing (also in
the URL, ?draft=id), the run it looks at (?run=name), and a dataset's fingerprint, looked up at
most every few seconds. Streamlit only; nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from cnn_core import access
from cnn_core.data.cache import source_fingerprint
from cnn_core.drafts import load_draft, new_draft_id, save_draft, valid_draft_id
from cnn_core.presets import load_preset
from cnn_core.runs import Run, RunError, list_runs, open_run
from cnn_core.spec import ModelSpec
from dashboard.text import plain, show_error

# --- the draft architecture, kept per browser session and in the URL --------------------------


def draft_ui() -> ModelSpec:
    """The architecture this browser session is editing; it survives a refresh (?draft=id)."""
    draft_id = st.session_state.get("draft_id") or st.query_params.get("draft")
    if not valid_draft_id(draft_id):
        draft_id = new_draft_id()
    if st.session_state.get("draft_id") != draft_id:
        st.session_state.draft_id = draft_id
        st.session_state.draft = load_draft(draft_id) or load_preset("tutorial_cnn").spec
    if st.query_params.get("draft") != draft_id:
        st.query_params["draft"] = draft_id
    return st.session_state.draft


def set_draft(spec: ModelSpec) -> None:
    st.session_state.draft = spec
    if not save_draft(st.session_state.draft_id, spec):
        st.session_state.draft_warning = (
            "The draft could not be saved to disk (is it full?); it is kept in this tab only."
        )


# --- runs -------------------------------------------------------------------------------------


def run_picker_ui(*, key: str, need_model: bool = False, label: str = "Run") -> Run | None:
    """Choose a run (the one in the URL, ?run=name, comes first); None when there is none."""
    from dashboard.access import who  # why here: access imports nothing of state, keep it so

    user = who()
    try:
        runs = [run for run in list_runs() if not need_model or run.has_model()]
    except RunError as exc:  # an unreadable runs folder: said once, the page stops here
        show_error(exc)
        st.stop()
    runs = access.visible(user, runs)  # on a shared server: the signed-in user's own runs
    wanted = st.query_params.get("run")
    names = [run.name for run in runs]
    if wanted and wanted not in names:
        try:
            access.require(user, open_run(wanted), "open")
        except (RunError, access.AccessError) as exc:
            # why: on a shared server, the same words whether someone else's run exists or not
            reason = str(exc) if user.unrestricted else f"run {wanted} is not one of your runs."
            st.warning(plain(f"The run in the address (?run=...) cannot be shown: {reason}"))
        else:
            if need_model:
                st.info(plain(f"Run {wanted} has no trained model yet."))
    if not runs:
        return None
    index = names.index(wanted) if wanted in names else 0
    name = st.selectbox(label, names, index=index, key=key, format_func=_run_label(runs))
    if st.query_params.get("run") != name:
        st.query_params["run"] = name
    try:
        return open_run(name)
    except RunError as exc:
        st.error(plain(exc))
        return None


def _run_label(runs: Sequence[Run]) -> Callable[[str], str]:
    states = {run.name: run.status().state for run in runs}
    return lambda name: f"{name} ({states.get(name, '?')})"


@st.cache_data(ttl=10, show_spinner=False)
def fingerprint(source: str) -> str | None:
    """The source's fingerprint, looked up at most every 10 s: listing a folder of 100,000
    photos takes a while, and pages rerun at every click."""
    return source_fingerprint(source)
