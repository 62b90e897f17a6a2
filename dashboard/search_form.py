"""The Search page's form for what a search varies, drawn from the same declarations the Train
and Build pages draw from: each training setting's `Setting` (its label, bounds and choices) and
each layer kind's `Param` in the registry. It returns the search space as plain JSON-like data,
which `cnn_core.search.parse_space` then checks, as it checks a search.json file."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from cnn_core import config as declared
from cnn_core.config import Setting, TrainConfig
from cnn_core.layers import KINDS, Param
from cnn_core.search import SearchSpace
from cnn_core.spec import ModelSpec
from dashboard.settings_form import form_bounds


def space_form_ui(spec: ModelSpec, config: TrainConfig, start: SearchSpace) -> dict[str, Any]:
    """Choose the settings and layer parameters to vary and their ranges, starting from
    `start` (the default space); the space as `parse_space` takes it."""
    settings = {s.name: s for s in (*declared.SETTINGS, *declared.AUGMENTATION) if _searchable(s)}
    layer_params = {
        f"{i + 1}.{p.name}": (layer, p)
        for i, layer in enumerate(spec.layers)
        for p in KINDS[layer.type].params
        if p.type in ("int", "float")
    }
    first = {d.name: d for d in start.dimensions}
    chosen = st.multiselect(
        "Settings to vary",
        list(settings),
        default=[name for name in first if name in settings],
        format_func=lambda name: settings[name].label,
        key="space_settings",
    )
    layers = st.multiselect(
        "Layer parameters to vary",
        list(layer_params),
        default=[name for name in first if name in layer_params],
        format_func=lambda key: (
            f"layer {key.split('.')[0]} ({layer_params[key][0].type}): {layer_params[key][1].name}"
        ),
        key="space_layers",
    )
    space: dict[str, Any] = {}
    for name in chosen:
        space[name] = _setting_range_ui(settings[name], first.get(name), config)
    for key in layers:
        layer, param = layer_params[key]
        space[key] = _param_range_ui(key, param, layer.params.get(param.name, param.default))
    sampler = st.selectbox("Sampler", ("tpe", "random", "grid"), key="space_sampler")
    pruner = st.selectbox(
        "Stop poor trials early",
        ("median", "halving", None),
        key="space_pruner",
        format_func=lambda p: {
            "median": "median pruner",
            "halving": "successive halving",
            None: "never",
        }[p],
    )
    return {"version": 1, "space": space, "sampler": sampler, "pruner": pruner}


def _searchable(setting: Setting) -> bool:
    return setting.kind in ("number", "integer", "choice", "boolean") and not setting.backends


def _setting_range_ui(setting: Setting, start: Any, config: TrainConfig) -> dict[str, Any]:
    key = f"space_{setting.key}"
    if setting.kind in ("choice", "boolean"):
        options = list(setting.choices) if setting.kind == "choice" else [True, False]
        picked = st.multiselect(
            f"{setting.label}: values to try",
            options,
            default=options,
            key=key,
            format_func=str,
        )
        return {"choice": picked or options[:1]}
    low, high = form_bounds(setting)
    if setting.nullable and setting.off is not None:
        low = max(low, setting.off + 1 if setting.kind == "integer" else low)
    wide = start is not None and start.low is not None
    a, b = (start.low, start.high) if wide else (low, high)
    columns = st.columns(3, vertical_alignment="bottom")
    kind_int = setting.kind == "integer"
    lo, hi = _from_to_ui(
        columns, setting.label, (low, high), (max(a, low), min(b, high)), key, whole=kind_int
    )
    log = columns[2].checkbox(
        "log scale",
        value=bool(start and start.kind == "log_uniform"),
        key=f"{key}_log",
        disabled=kind_int or lo <= 0,
    )
    if kind_int:
        return {"int": [int(lo), int(hi)]}
    return {"log_uniform" if log and lo > 0 else "uniform": [float(lo), float(hi)]}


def _param_range_ui(key: str, param: Param, value: Any) -> dict[str, Any]:
    low = param.low if param.low is not None else 0
    high = param.high if param.high is not None else 1e6
    if param.high_open and param.type == "float":
        high = math.nextafter(high, low)
    columns = st.columns(2)
    if param.type == "int":
        around = int(value) if isinstance(value, int) else int(low)
        start = (max(int(low), around // 2), min(int(high), around * 2))
        lo, hi = _from_to_ui(
            columns, f"layer {key}", (low, high), start, f"space_{key}", whole=True
        )
        return {"int": [int(lo), int(hi)]}
    around = float(value) if isinstance(value, int | float) else float(low)
    start = (float(low), min(float(high), max(around, float(low))))
    lo, hi = _from_to_ui(columns, f"layer {key}", (low, high), start, f"space_{key}", whole=False)
    return {"uniform": [float(lo), float(hi)]}


def _from_to_ui(
    columns: list[Any],
    label: str,
    bounds: tuple[float, float],
    start: tuple[float, float],
    key: str,
    *,
    whole: bool,
) -> tuple[float, float]:
    """A range's two ends, "from" and "to", in the first two of `columns`, each within
    `bounds` and starting at `start`: whole numbers when `whole`, else floats shown as %g."""
    cast, shown = (int, None) if whole else (float, "%g")
    low, high = cast(bounds[0]), cast(bounds[1])
    lo = columns[0].number_input(
        f"{label}: from", low, high, cast(start[0]), key=f"{key}_lo", format=shown
    )
    hi = columns[1].number_input("to", low, high, cast(start[1]), key=f"{key}_hi", format=shown)
    return lo, hi
