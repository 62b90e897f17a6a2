"""Widgets and charts the pages share. Drawing only: every decision is made in `cnn_core`.

Nothing here imports Keras or TensorFlow, so every page that uses it opens at once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnn_core import access
from cnn_core.data.cache import source_fingerprint
from cnn_core.drafts import load_draft, new_draft_id, save_draft, valid_draft_id
from cnn_core.errors import UserError
from cnn_core.layers import KINDS, Param
from cnn_core.presets import load_preset
from cnn_core.runs import Run, RunError, list_runs, open_run
from cnn_core.spec import ModelSpec

STATE_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/sync:",
    "completed": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "diverged": ":material/trending_up:",
    "failed": ":material/error:",
    "interrupted": ":material/pause_circle:",
}
POOL_DEFAULT = "same as pool size"
# What Markdown (GitHub's, with Streamlit's math and colour directives) can read as syntax in a
# line of text: emphasis, code, links and images, HTML and entities, math, tables, headings.
_MARKUP = re.compile(r"[\\`*_\[\]<>!$~|#{}&]")
# Bare web and e-mail addresses become links after escapes are resolved (measured in Chromium:
# "https\://x" is still a link), so an invisible WORD JOINER goes where GitHub's rule for them
# would match: before "://", between "www" and ".", before "@".
_ADDRESS = re.compile(r"(?=://)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


# --- text a user controls, shown as text ------------------------------------------------------


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


# --- layer parameters, generated from the registry ----------------------------------------------


def param_input_ui(param: Param, *, key: str, value: Any) -> Any:
    """One bounded widget for one parameter, with the registry's help text."""
    label = param.name.replace("_", " ")
    if param.type == "pair":  # why: the widgets offer square windows; a [h, w] list shows h
        value = value[0] if isinstance(value, list | tuple) and value else value
    if param.type == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=param.help)
    if param.type == "choice":
        options = list(param.choices)
        index = options.index(value) if value in options else 0
        return st.selectbox(label, options, index=index, key=key, help=param.help)
    if param.name == "strides" and param.default is None:  # pooling: default is the pool size
        options = [POOL_DEFAULT, *range(int(param.low), int(param.high) + 1)]
        index = options.index(value) if value in options else 0
        chosen = st.selectbox(label, options, index=index, key=key, help=param.help)
        return None if chosen == POOL_DEFAULT else chosen
    if param.type in ("int", "pair"):
        whole = isinstance(value, int | float) and not isinstance(value, bool)
        start = int(value) if whole and float(value).is_integer() else None  # 3.0 shows as 3
        start = start if start is not None else param.example or param.default or int(param.low)
        start = min(max(int(start), int(param.low)), int(param.high))
        return st.number_input(
            label,
            min_value=int(param.low),
            max_value=int(param.high),
            value=start,
            step=1,
            key=key,
            help=param.help,
        )
    top = 0.95 if param.high_open else float(param.high)
    start = float(value) if isinstance(value, int | float) else float(param.example or 0.0)
    return st.slider(
        label,
        min_value=float(param.low),
        max_value=top,
        value=min(start, top),
        step=0.05,
        key=key,
        help=param.help,
    )


def layer_params_ui(kind_name: str, *, key: str, values: Mapping[str, Any] | None = None) -> dict:
    """Widgets for every parameter of a kind; returns what differs from Keras' defaults."""
    kind = KINDS[kind_name]
    values = dict(values or {})
    chosen: dict[str, Any] = {}
    for param in kind.params:
        current = values.get(param.name, None if param.required else param.default)
        value = param_input_ui(param, key=f"{key}_{kind_name}_{param.name}", value=current)
        if param.required or value != param.default:
            chosen[param.name] = value
    return chosen


def layer_params_state(kind_name: str, *, key: str) -> dict:
    """What the widgets of `layer_params_ui(kind_name, key=key)` hold now, for a button callback.

    A callback runs before the page redraws, so a value changed in the same interaction as the
    click (typed, then Apply clicked) is in the session state but not yet in what the widgets
    returned on the last run.
    """
    chosen: dict[str, Any] = {}
    for param in KINDS[kind_name].params:
        widget = f"{key}_{kind_name}_{param.name}"
        if widget not in st.session_state:
            continue  # not drawn yet (the kind changed in this interaction); left to the checks
        value = st.session_state[widget]
        if param.name == "strides" and param.default is None and value == POOL_DEFAULT:
            value = None
        if param.required or value != param.default:
            chosen[param.name] = value
    return chosen


# --- runs -------------------------------------------------------------------------------------


def run_picker_ui(*, key: str, need_model: bool = False, label: str = "Run") -> Run | None:
    """Choose a run (the one in the URL, ?run=name, comes first); None when there is none."""
    from dashboard.access import who  # why here: access imports nothing of widgets, keep it so

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


def show_error(exc: UserError) -> None:
    st.error(plain(exc), icon=":material/error:")


# --- charts -----------------------------------------------------------------------------------


CHART_POINTS = 2000  # per curve: a 1,000,000-epoch history is drawn from every 500th epoch
TABLE_ROWS = 1000  # the epoch table shows the latest epochs


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    step = max(1, -(-len(history) // CHART_POINTS))
    rows = [*history[::step], *history[-1:]] if step > 1 else history  # the last always shows
    points = [(row["epoch"] + 1, row[key]) for row in rows if row.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def latest_rows(history: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The rows the epoch table shows: the last TABLE_ROWS."""
    return history[-TABLE_ROWS:]


def curve_figure(
    histories: Mapping[str, Sequence[Mapping[str, Any]]], metric: str, *, title: str
) -> go.Figure:
    """Training (solid) and validation (dotted) curves of `metric` for one run or several."""
    figure = go.Figure()
    palette = ["#2f6fde", "#e4572e", "#17a589", "#8e44ad", "#f39c12", "#34495e"]
    for i, (name, history) in enumerate(histories.items()):
        colour = palette[i % len(palette)]
        prefix = f"{plotly_text(name)}: " if len(histories) > 1 else ""
        for key, dash, label in (
            (metric, "solid", "training"),
            (f"val_{metric}", "dot", "validation"),
        ):
            xs, ys = _series(history, key)
            if xs:
                figure.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines+markers",
                        name=f"{prefix}{label}",
                        line={"color": colour, "dash": dash},
                    )
                )
    figure.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title=metric,
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    figure.update_xaxes(
        rangemode="tozero", dtick=max(1, len(next(iter(histories.values()), [])) // 10 or 1)
    )
    return figure


def top_k_figure(top: Sequence[tuple[str, float]]) -> go.Figure:
    names = [plotly_text(name) for name, _ in top][::-1]
    values = [p * 100 for _, p in top][::-1]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            text=[f"{v:.1f}%" for v in values],
            textposition="auto",
            marker_color="#2f6fde",
        )
    )
    figure.update_layout(
        height=40 + 32 * len(names),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"range": [0, 100], "title": "probability (%)"},
    )
    return figure


def enlarged(pixels: Any, width: int) -> Image.Image:
    """A small uint8 image (H, W, 1 or 3) scaled up to `width` pixels, its pixels kept sharp."""
    image = Image.fromarray(pixels.squeeze() if pixels.shape[-1] == 1 else pixels)
    return image.resize((width, width * image.height // image.width), Image.Resampling.NEAREST)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- the dataset health report ----------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False)
def fingerprint(source: str) -> str | None:
    """The source's fingerprint, looked up at most every 10 s: listing a folder of 100,000
    photos takes a while, and pages rerun at every click."""
    return source_fingerprint(source)


def dataset_report_ui(report: Any, samples: Sequence[tuple[str, Any]]) -> None:
    """Images per class and split as a chart, what was found and skipped, the advice, and a grid
    of sample images (class name, uint8 pixels) at the size the model sees them."""
    figure = go.Figure()
    palette = {"train": "#2f6fde", "validation": "#f39c12", "test": "#17a589"}
    for split, counts in report.counts.items():
        figure.add_trace(
            go.Bar(
                x=[plotly_text(name) for name in report.class_names],
                y=list(counts),
                name=split,
                marker_color=palette.get(split),
            )
        )
    figure.update_layout(
        barmode="group",
        title="Images per class",
        height=300,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.3},
    )
    st.plotly_chart(figure, key="data_counts")
    h, w, c = report.image_shape
    own = (
        f"Their own size: about {report.native_size[0]}x{report.native_size[1]} (the smallest "
        f"{report.smallest[0]}x{report.smallest[1]}); "
        if report.native_size and report.smallest
        else ""
    )
    copies = sum(report.duplicates.values())
    st.caption(
        plain(
            f"{report.layout or 'Layout recognised'}. {report.found:,} files found: "
            f"{report.used:,} images used, {report.skipped:,} skipped. {own}every image is resized "
            f"to {w}x{h} ({'colour' if c == 3 else 'greyscale'}). Classes {report.imbalance:.1f}:1 "
            f"(largest to smallest, training); {report.grey:,} grey images; {copies} exact copies "
            f"within a split; {report.leaks} test images identical to training images."
        )
    )
    for line in report.advice:
        st.info(plain(line), icon=":material/lightbulb:")
    if report.warnings:
        with st.expander(f"What loading said ({len(report.warnings)})"):
            st.text("\n".join(report.warnings))
    if samples:
        grid = st.columns(8)
        for n, (name, pixels) in enumerate(samples):
            grid[n % 8].image(enlarged(pixels, 64), caption=plain(name))
