"""The Train page's learning-rate finder: start the job, watch it, draw its curve, and apply the
suggested rate in one click. The job runs in its own process (`cnn_core.lr_job`); this draws."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from cnn_core.config import TrainConfig
from cnn_core.errors import UserError
from cnn_core.lr_job import LrJob, start_lr_job
from cnn_core.spec import ModelSpec
from dashboard.charts import lr_figure
from dashboard.text import plain, show_error

OPEN_KEY = "lr_finder_open"  # set by the not-learning warning's button: the expander opens
JOB_KEY = "lr_job"
POLL_SECONDS = 1.0


def lr_finder_ui(
    spec: ModelSpec | None,
    config: TrainConfig | None,
    source: str | None,
    *,
    ready: bool,
    use: Callable[[float], None],
) -> None:
    """The "Find a learning rate" section; `use(rate)` applies a rate to the settings."""
    with st.expander("Find a learning rate", expanded=bool(st.session_state.get(OPEN_KEY))):
        st.caption(
            "A short range test (about 100 batches, the rate growing from 1e-7 to 10) of this "
            "architecture and settings on this data; nothing is saved as a run."
        )
        if st.button(
            "Find a learning rate",
            key="lr_find_start",
            icon=":material/search:",
            disabled=not ready or spec is None or config is None,
        ):
            try:
                job = start_lr_job(spec, config, source)
            except (UserError, OSError) as exc:
                show_error(exc)
            else:
                st.session_state[JOB_KEY] = str(job.path)
        folder = st.session_state.get(JOB_KEY)
        if not folder:
            return
        job = LrJob(Path(folder))
        if job.result() is None and job.failure() is None:
            _wait_ui(job)
        else:
            _result_ui(job, use)


@st.fragment(run_every=POLL_SECONDS)
def _wait_ui(job: LrJob) -> None:
    """While the job runs: a note, looked at again every second; the page redraws when done."""
    if job.result() is not None or job.failure() is not None:
        st.rerun(scope="app")
    st.info("Finding a learning rate…", icon=":material/hourglass_top:")


def _result_ui(job: LrJob, use: Callable[[float], None]) -> None:
    finding = job.result()
    if finding is None:
        message = f"The learning-rate finder failed: {job.failure()}"
        st.error(plain(message), icon=":material/error:")
        return
    st.plotly_chart(lr_figure(finding), key="lr_curve")
    rate = float(f"{float(finding['suggestion']):.2g}")
    st.markdown(
        f"Suggested: **{rate:g}** (where the loss falls fastest); a tenth of the lowest "
        f"point's rate: {finding['minimum_tenth']:.2g}; configured now: "
        f"{finding['configured']:g}. {finding['steps']} batches, {finding['seconds']:.0f} s."
    )
    if finding.get("note"):
        st.warning(plain(finding["note"]), icon=":material/warning:")
    if st.button(f"Use {rate:g}", key="lr_use", icon=":material/check:"):
        use(rate)
        st.rerun()
