"""The dashboard's shared modules, one concern each: text, session state, parameter widgets and
charts. None of them loads Keras, and a function that draws an input widget says so in its name
(`_ui`) when it returns what was chosen."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUT_WIDGETS = {
    "button",
    "camera_input",
    "checkbox",
    "color_picker",
    "data_editor",
    "date_input",
    "file_uploader",
    "multiselect",
    "number_input",
    "radio",
    "select_slider",
    "selectbox",
    "slider",
    "text_area",
    "text_input",
    "toggle",
}


def loaded_after(code: str) -> list[str]:
    probe = (
        f"import sys, json; {code}; print(json.dumps(sorted({{m.split('.')[0] for m in "
        "sys.modules} & {'keras', 'tensorflow', 'jax', 'torch'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(done.stdout)


def test_the_dashboard_modules_and_what_the_pages_call_in_the_core_load_no_keras():
    """Pages never import Keras: neither through the shared modules nor through the core
    functions the Runs, Evaluate and Predict pages now call instead of doing the work."""
    modules = "dashboard.text, dashboard.state, dashboard.params, dashboard.charts"
    assert loaded_after(f"import {modules}, cnn_core.compare, cnn_core.testset") == []


def test_every_dashboard_function_that_returns_what_an_input_widget_says_ends_in_ui():
    offenders = []
    for path in sorted((ROOT / "dashboard").glob("*.py")):
        for function in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(function, ast.FunctionDef) or function.name.endswith("_ui"):
                continue
            if isinstance(function.returns, ast.Constant) and function.returns.value is None:
                continue  # draws a page and returns nothing (a sign-in page's button)
            for node in ast.walk(function):
                called = node.func if isinstance(node, ast.Call) else None
                if isinstance(called, ast.Attribute) and called.attr in INPUT_WIDGETS:
                    offenders.append(f"{path.name}: {function.name} draws st.{called.attr}")
    assert offenders == []
