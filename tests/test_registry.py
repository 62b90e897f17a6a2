"""The registry (`cnn_core.layers`) is the only place that names a layer kind or one of its keys.

Issue 14, point 2: a layer's quirks (pool strides that default to the pool size, a block that
needs its input shape, the classifier head, the one-click fixes) are data or hooks on `LayerKind`
and `Param`, so adding a kind touches the registry, its tests and the README table only.
"""

from __future__ import annotations

import ast
from pathlib import Path

from cnn_core.layers import KINDS

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = {ROOT / "cnn_core" / "layers.py"}
SCANNED = ("cnn_core", "pages", "dashboard")


def registered_words() -> set[str]:
    return set(KINDS) | {param.name for kind in KINDS.values() for param in kind.params}


def literals_naming_the_registry(source: str, words: set[str]) -> list[tuple[int, str]]:
    """(line, text) of every string literal (f-string parts included) that is a kind or a key."""
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words
    )


def test_the_scan_finds_a_kind_or_key_written_as_a_string():
    words = registered_words()
    source = (
        'if kind.name == "Conv2D":\n    x = p["pool_size"]\ny = f"{x}strides"\nz = "2 strides"\n'
    )
    found = literals_naming_the_registry(source, words)
    assert found == [(1, "Conv2D"), (2, "pool_size"), (3, "strides")]


def test_nothing_outside_the_registry_names_a_kind_or_one_of_its_keys():
    words = registered_words()
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in REGISTRY:
                continue
            for line, text in literals_naming_the_registry(path.read_text("utf-8"), words):
                found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "say it in the registry (a LayerKind or Param field) instead:\n" + "\n".join(
        found
    )


def _widgets_app(kind_name: str) -> None:
    import streamlit as st

    from dashboard.params import layer_params_ui

    st.session_state["chosen"] = layer_params_ui(kind_name, key="t")


def test_a_key_that_defaults_to_another_gets_a_same_as_choice_from_the_registry():
    from streamlit.testing.v1 import AppTest

    following = [(k, p) for k in KINDS.values() for p in k.params if p.default_from]
    assert following  # pooling strides follow the pool size
    for kind, param in following:
        at = AppTest.from_function(_widgets_app, args=(kind.name,)).run()
        box = at.selectbox(key=f"t_{kind.name}_{param.name}")
        assert box.options[0] == f"same as {param.default_from.replace('_', ' ')}"
        assert param.name not in at.session_state["chosen"]  # left out: Keras' own default
        box.set_value(2).run()
        assert at.session_state["chosen"][param.name] == 2


def test_a_file_parameter_is_a_text_field_where_empty_means_null():
    from streamlit.testing.v1 import AppTest

    files = [(k, p) for k in KINDS.values() for p in k.params if p.type == "file"]
    assert files  # a backbone's weights
    for kind, param in files:
        at = AppTest.from_function(_widgets_app, args=(kind.name,)).run()
        field = at.text_input(key=f"t_{kind.name}_{param.name}")
        assert field.value == "" and param.name not in at.session_state["chosen"]
        field.set_value(f"  {param.choices[0]} ").run()
        assert at.session_state["chosen"][param.name] == param.choices[0]
