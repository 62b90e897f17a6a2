"""The charts and pictures the pages draw: training curves, top-k bars, enlarged small images and
the dataset health report. Drawing only: the data comes from `cnn_core` (`compare.curve_points`
thins long histories). Nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnn_core.compare import curve_points
from dashboard.text import plain, plotly_text

TABLE_ROWS = 1000  # the epoch table shows the latest epochs


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
            xs, ys = curve_points(history, key)
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


def lr_figure(finding: Mapping[str, Any]) -> go.Figure:
    """The learning-rate finder's curve: the smoothed loss against the rate (log scale), with
    the suggested rate and the configured one marked."""
    figure = go.Figure(
        go.Scatter(
            x=list(finding["learning_rates"]),
            y=list(finding["losses"]),
            mode="lines",
            name="loss (smoothed)",
            line={"color": "#2f6fde"},
        )
    )
    losses = [y for y in finding["losses"] if math.isfinite(y)] or [0.0]
    low, high = min(losses), max(losses)
    marks = (("suggestion", "#17a589", "suggested"), ("configured", "#e4572e", "configured"))
    for key, colour, label in marks:
        value = finding.get(key)
        if value:  # a vertical line as a trace: data coordinates, whatever the axis type
            figure.add_trace(
                go.Scatter(
                    x=[value, value],
                    y=[low, high],
                    mode="lines+text",
                    # the suggestion's label at the top, the configured one's at the bottom
                    text=["", f"{label} {value:.2g}"][:: 1 if key == "suggestion" else -1],
                    textposition="top right" if key == "suggestion" else "bottom left",
                    line={"color": colour, "dash": "dash"},
                    name=label,
                    hoverinfo="skip",
                )
            )
    figure.update_layout(
        title="Loss as the learning rate grows",
        xaxis={"type": "log", "title": "learning rate"},
        yaxis_title="loss",
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        showlegend=False,
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


# --- the dataset health report ----------------------------------------------------------------


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
