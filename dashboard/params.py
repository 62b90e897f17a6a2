"""The widgets for a layer's parameters, generated from the registry (`cnn_core.layers`): one
bounded widget per parameter, with the registry's help text. Streamlit only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from cnn_core.layers import KINDS, Param


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
    if param.type == "file":  # null (left empty), one of its named values, or a path
        shown = value if isinstance(value, str) else ""
        named = " or ".join(param.choices)
        hint = f"empty: none; {named}; or a path to a {param.suffix} file"
        text = st.text_input(label, value=shown, key=key, help=param.help, placeholder=hint)
        return _file_value(text)
    if param.default_from:  # e.g. pooling strides: left out, they are the pool size
        options = [_same_as(param), *range(int(param.low), int(param.high) + 1)]
        index = options.index(value) if value in options else 0
        chosen = st.selectbox(label, options, index=index, key=key, help=param.help)
        return None if chosen == options[0] else chosen
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


def _file_value(text: str) -> str | None:
    return text.strip() or None


def _same_as(param: Param) -> str:
    """The choice that leaves `param` to its `default_from` key: 'same as pool size'."""
    return f"same as {param.default_from.replace('_', ' ')}"


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
        if param.default_from and value == _same_as(param):
            value = None
        if param.type == "file":
            value = _file_value(value)
        if param.required or value != param.default:
            chosen[param.name] = value
    return chosen
