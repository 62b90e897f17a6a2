"""The Train page's settings form, drawn from the declarations in `cnn_core.config`.

Every widget here comes from a `Setting`: its label, bounds, default, help and section. Nothing
in this file knows a particular setting; declaring one in `cnn_core/config.py` is enough for it
to appear. The form returns plain JSON-like values, which `config_from_dict` then validates, so
the form and a configuration file are checked by the same code with the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from cnn_core import config as declared
from cnn_core.config import Setting, TrainConfig
from dashboard.text import plain


def widget_key(setting: Setting, version: int) -> str:
    """The widget's key: a new version (settings loaded from a preset or a file) is a new widget,
    so that it shows the loaded value."""
    return f"{setting.key}_v{version}"


def form_settings() -> list[Setting]:
    """Every declared setting, in the form's order: by section, then as declared (the
    augmentation object's keys first in their section, the test-time settings after them)."""
    order = list(declared.SECTIONS)
    every = [*declared.AUGMENTATION, *declared.SETTINGS]
    return sorted(every, key=lambda s: order.index(s.section))


def form_bounds(setting: Setting) -> tuple[float, float]:
    """The lowest and highest value the widget offers: the declared bounds, one step inside an
    open end of a slider, and down to the number that stands for null ("0 = off")."""
    low, high = setting.low, setting.high
    if setting.widget == "slider" and setting.step:
        low = round(low + setting.step, 10) if setting.low_open else low
        high = round(high - setting.step, 10) if setting.high_open else high
    if setting.nullable and setting.off is not None:
        low = min(low, setting.off)
    return low, high


def settings_form_ui(
    base: TrainConfig,
    *,
    version: int,
    backend: str,
    unusable: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Draw the settings, starting from `base`; return them as a configuration dict.

    A setting the Keras `backend` cannot run is drawn disabled at its default, with a note. A
    setting the chosen spec cannot use (`unusable`: its name -> why, as
    `config.unusable_settings` gives it) is drawn disabled at its value, the reason said once
    at the top of its section: a value loaded with other settings is shown, not dropped."""
    unusable = unusable or {}
    values: dict[str, Any] = {}
    by_section: dict[str, list[Setting]] = {}
    for setting in form_settings():
        by_section.setdefault(setting.section, []).append(setting)
    for section, settings in by_section.items():
        place = st.expander(section) if section else st.container()
        width = declared.SECTIONS[section]
        narrow = [s for s in settings if not s.wide]
        rows = [narrow[i : i + width] for i in range(0, len(narrow), width)]
        with place:
            for reason in dict.fromkeys(unusable[s.name] for s in settings if s.name in unusable):
                st.caption(plain(reason))
            for row in rows:
                for column, setting in zip(st.columns(width), row, strict=False):
                    value = _value_of(base, setting.name)
                    value = setting_ui(
                        setting,
                        value,
                        version=version,
                        backend=backend,
                        place=column,
                        unusable=unusable.get(setting.name),
                    )
                    _put(values, setting.name, value)
            for setting in (s for s in settings if s.wide):
                value = setting_ui(
                    setting,
                    _value_of(base, setting.name),
                    version=version,
                    backend=backend,
                    unusable=unusable.get(setting.name),
                )
                _put(values, setting.name, value)
    return values


def setting_ui(
    setting: Setting,
    value: Any,
    *,
    version: int,
    backend: str,
    place: Any = st,
    unusable: str | None = None,
) -> Any:
    """One setting's widget in `place` (a column); the value as the configuration keeps it.
    `unusable`: why the chosen spec cannot use it (drawn disabled, its value kept)."""
    supported = setting.supports(backend)
    help_text = setting.help if setting.tooltip else None
    if not supported:
        value = setting.default
        here = declared.BACKEND_NAMES.get(backend, backend)
        note = f"Needs {setting.needs()}: Keras runs on {here} here."
        help_text = f"{help_text or ''} {note}".strip()
    elif unusable:
        help_text = f"{help_text or ''} {unusable}".strip()
    options = {
        "key": widget_key(setting, version),
        "help": help_text,
        "disabled": not supported or unusable is not None,
    }
    if setting.kind == "choice" and setting.widget == "checkbox":  # checked: the first choice
        checked = place.checkbox(setting.label, value == setting.choices[0], **options)
        result = setting.choices[0] if checked else setting.choices[-1]
    elif setting.kind == "choice":
        shown = setting.choice_labels or tuple(str(c) for c in setting.choices)
        labels = dict(zip(setting.choices, shown, strict=True))
        result = place.selectbox(
            setting.label,
            list(setting.choices),
            list(setting.choices).index(value),
            format_func=labels.get,
            **options,
        )
    elif setting.kind == "boolean":
        result = place.checkbox(setting.label, value, **options)
    else:
        result = _number_ui(setting, value, place=place, options=options)
    if not supported:
        place.caption(f"Needs {setting.needs()}.")
    return result


def _number_ui(setting: Setting, value: Any, *, place: Any, options: dict[str, Any]) -> Any:
    low, high = form_bounds(setting)
    shown = setting.off if value is None else value
    shown = min(max(shown, low), high)  # a loaded value at an open end the widget cannot offer
    if setting.kind == "integer":
        low, high, shown = int(low), int(high), int(shown)
    else:
        low, high, shown = float(low), float(high), float(shown)
    if setting.widget == "slider":
        result = place.slider(setting.label, low, high, shown, setting.step, **options)
    else:
        result = place.number_input(
            setting.label,
            min_value=low,
            max_value=high,
            value=shown,
            step=setting.step,
            format=setting.format,
            **options,
        )
    if setting.nullable and result == setting.off:
        return None
    return result


def _value_of(config: TrainConfig, name: str) -> Any:
    """The value of key `name` ("epochs", "augmentation.zoom") in `config`."""
    value: Any = config
    for part in name.split("."):
        value = getattr(value, part)
    return value


def _put(values: dict[str, Any], name: str, value: Any) -> None:
    *parents, last = name.split(".")
    for part in parents:
        values = values.setdefault(part, {})
    values[last] = value
