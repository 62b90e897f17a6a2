"""Tests for the dashboard pages, driven through Streamlit's `AppTest` and found by widget key.

Every page opens without an exception with no runs, with a completed run and with a damaged
one; the Build page's editing controls change the draft and the draft survives a refresh; the
Train page starts a real (detached) worker and stops it; Evaluate, Runs and Predict show what the
run directory holds. The data are a few 8x8 PNGs written in `tmp_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from reliability.kit import mark_completed, worker_pids
from streamlit.testing.v1 import AppTest
from support import CLASSES, COLOURS, TINY, open_page, png_bytes, rerun, wait_until, write_colours

from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.drafts import new_draft_id, save_draft
from cnn_core.evaluate import evaluate_run
from cnn_core.presets import MODIFIED, load_preset
from cnn_core.runs import (
    DATASET,
    EVALUATION,
    HISTORY,
    MODEL,
    PREDICTIONS,
    STATUS,
    Run,
    atomic_write_json,
    atomic_write_text,
    create_run,
    format_history,
    list_runs,
    runs_root,
)
from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec, ModelSpec

PAGES = ("build", "train", "runs", "evaluate", "predict", "search")
TUTORIAL = load_preset("tutorial_cnn").spec
TUTORIAL_MODIFIED = replace(TUTORIAL, name=TUTORIAL.name + MODIFIED)  # edited, then put back


# --- data and runs, written in the real formats -------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-folder dataset: 3 classes of 8x8 PNGs, 30 training and 10 test images each."""
    return write_colours(tmp_path_factory.mktemp("data") / "colours", train=30, test=10)


def colour_model():
    """A model that tells blue and green apart by their channel and calls red green: 2/3 right."""
    model = build_model(TINY)
    kernel = np.zeros((3, 3, 3, 4), dtype=np.float32)
    for channel in range(3):
        kernel[1, 1, channel, channel] = 1.0  # the centre tap copies each colour channel
    model.get_layer("conv2d_1").set_weights([kernel, np.zeros(4, dtype=np.float32)])
    head = np.zeros((4, len(CLASSES)), dtype=np.float32)
    head[2, CLASSES.index("blue")] = head[1, CLASSES.index("green")] = 8.0
    head[0, CLASSES.index("green")] = 8.0  # red looks green to it
    model.get_layer("classifier").set_weights([head, np.zeros(len(CLASSES), dtype=np.float32)])
    return model


@pytest.fixture(scope="module")
def completed_template(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Run:
    """A completed run with a model and an evaluation, made without training; tests copy it."""
    base = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CNN_CORE_CACHE", str(base / "cache"))  # evaluate_run caches the decoded data
        run = create_run(TINY, TrainConfig(epochs=2), data_source=str(data), root=base / "runs")
        colour_model().save(run.file(MODEL))
        mark_completed(run, epochs=2, best_val_accuracy=0.5, best_epoch=1)
        history = [
            {
                "epoch": e,
                "accuracy": 0.4 + e / 10,
                "loss": 1.0 - e / 10,
                "val_accuracy": 0.45 + e / 20,
            }
            for e in range(2)
        ]
        atomic_write_text(run.file(HISTORY), format_history(history))
        atomic_write_json(run.file(DATASET), {"source": str(data), "class_names": list(CLASSES)})
        evaluate_run(run)
    return run


def copy_run(template: Run, name: str | None = None) -> Run:
    """The template run copied into this test's runs root (the autouse fixture's CNN_CORE_RUNS)."""
    target = runs_root() / (name or template.name)
    shutil.copytree(template.path, target)
    return Run(target)


def damaged_run(data: Path) -> Run:
    """A run whose status.json is garbage, whose history.csv is cut mid-row, with no model."""
    run = create_run(TINY, TrainConfig(), data_source=str(data))
    run.file(STATUS).write_text("{not json", encoding="utf-8")
    rows = [{"epoch": e, "accuracy": 0.5, "loss": 0.9} for e in range(3)]
    run.file(HISTORY).write_text(format_history(rows)[:-12], encoding="utf-8")
    assert not run.has_model()
    return run


# --- driving the app ----------------------------------------------------------------------------


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click()
    return rerun(at)


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def shown_layers(at: AppTest) -> list[str]:
    """The layer descriptions in the Build page's stack, top to bottom."""
    cells = texts(at.main.markdown)
    return [cells[k + 1] for k, cell in enumerate(cells) if re.fullmatch(r"\*\*\d+\*\*", cell)]


def name_field(at: AppTest):
    """The Build page's name field (its key carries a version that each outside change bumps)."""
    return next(field for field in at.text_input if field.key.startswith("spec_name_"))


def drag_list(at: AppTest):
    """The Build page's drag-and-drop list of the layers; None when it is not drawn."""
    lists = [e for e in at.main if getattr(e, "key", None) and e.key.startswith("layer_order_")]
    return lists[0] if lists else None


def kinds(spec: ModelSpec) -> list[str]:
    return [layer.type for layer in spec.layers]


# --- every page, every situation ----------------------------------------------------------------


@pytest.mark.parametrize("situation", ["no runs", "completed run", "damaged run"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_without_exception(
    page: str, situation: str, completed_template: Run, data: Path
):
    run = None
    if situation == "completed run":
        run = copy_run(completed_template)
    elif situation == "damaged run":
        run = damaged_run(data)
    at = open_page(page)
    assert at.title[0].value == page.capitalize()
    if run is not None:  # and as a shared link to the run
        open_page(page, run=run.name)


# --- Build --------------------------------------------------------------------------------------


def test_build_starts_from_the_tutorial_and_shows_it():
    at = open_page("build")
    assert at.session_state["draft"] == TUTORIAL
    assert [d.split()[0] for d in shown_layers(at)] == kinds(TUTORIAL)
    assert at.metric[0].value == f"{analyze(TUTORIAL).total_params:,}"
    assert texts(at.success) == ["This network is ready to train."]


def test_build_add_move_duplicate_delete():
    at = open_page("build")
    at.selectbox(key="add_kind").set_value("Dropout")
    rerun(at)
    at.slider(key="add_Dropout_rate").set_value(0.5)  # changed and clicked in one interaction
    at.selectbox(key="add_where").set_value("1")  # before layer 2
    click(at, "add_button")
    draft = at.session_state["draft"]
    assert draft.layers[1] == LayerSpec("Dropout", {"rate": 0.5})
    assert len(draft.layers) == len(TUTORIAL.layers) + 1
    assert shown_layers(at)[1].startswith("Dropout")

    click(at, "down_1")
    assert kinds(at.session_state["draft"])[:3] == ["Conv2D", "MaxPooling2D", "Dropout"]
    click(at, "up_2")
    assert kinds(at.session_state["draft"])[:3] == ["Conv2D", "Dropout", "MaxPooling2D"]
    assert at.button(key="up_0").disabled
    assert at.button(key=f"down_{len(TUTORIAL.layers)}").disabled

    click(at, "dup_0")
    assert kinds(at.session_state["draft"])[:3] == ["Conv2D", "Conv2D", "Dropout"]
    click(at, "del_0")
    click(at, "del_1")
    assert at.session_state["draft"] == TUTORIAL_MODIFIED
    assert [d.split()[0] for d in shown_layers(at)] == kinds(TUTORIAL)


def test_build_shows_a_problem_and_fixes_it_in_one_click():
    at = open_page("build")
    click(at, "del_5")  # the Flatten: Dense now gets a feature map
    errors = texts(at.error)
    assert len(errors) == 1 and errors[0].startswith("Layer 6 (Dense): needs a flat input")
    assert "1 problem(s)" in at.warning[0].value
    assert not at.success

    click(at, "fix_5_dense_on_spatial")
    assert at.session_state["draft"] == TUTORIAL_MODIFIED
    assert not at.error
    assert texts(at.success) == ["This network is ready to train."]


def test_build_presets_and_the_empty_network():
    at = open_page("build")
    click(at, "preset_fast_cpu")
    assert at.session_state["draft"] == load_preset("fast_cpu").spec
    assert len(shown_layers(at)) == len(load_preset("fast_cpu").spec.layers)

    click(at, "preset_empty")
    assert at.session_state["draft"].layers == ()
    assert shown_layers(at) == []
    click(at, "fix_head_ends_spatial")  # the input goes straight to the classifier: pool it
    assert kinds(at.session_state["draft"]) == ["GlobalAveragePooling2D"]
    assert texts(at.success) == ["This network is ready to train."]


def test_build_edit_a_layer_and_the_draft_survives_a_refresh():
    at = open_page("build")
    click(at, "edit_0")
    at.number_input(key="edit0_Conv2D_filters").set_value(16)  # changed and applied at once
    at.selectbox(key="edit0_Conv2D_activation").set_value("gelu")
    click(at, "apply_0")
    edited = at.session_state["draft"]
    assert edited.layers[0] == LayerSpec(
        "Conv2D", {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "gelu"}
    )
    assert shown_layers(at)[0] == "Conv2D 16, 3x3, same, gelu"
    name_field(at).set_value("My  edited net")
    rerun(at)
    assert at.session_state["draft"].name == "My edited net"

    refreshed = open_page("build", draft=at.query_params["draft"])
    assert refreshed.session_state["draft"] == at.session_state["draft"]
    assert shown_layers(refreshed)[0] == "Conv2D 16, 3x3, same, gelu"
    assert name_field(refreshed).value == "My edited net"

    other = open_page("build")  # another browser session edits its own draft
    assert other.session_state["draft"] == TUTORIAL


def test_build_marks_a_changed_preset_modified_once_and_loading_it_clears_that():
    at = open_page("build")
    click(at, "down_0")
    assert at.session_state["draft"].name == name_field(at).value == "Tutorial CNN (modified)"
    click(at, "del_0")
    next(n for n in at.number_input if n.key.startswith("input_h_")).set_value(16)
    rerun(at)
    assert at.session_state["draft"].input_shape == (16, 32, 3)
    assert at.session_state["draft"].name == name_field(at).value == "Tutorial CNN (modified)"
    click(at, "preset_tutorial_cnn")
    assert at.session_state["draft"] == TUTORIAL
    assert name_field(at).value == "Tutorial CNN"

    resized = open_page("build")  # a new input size alone changes the network too
    next(n for n in resized.number_input if n.key.startswith("input_w_")).set_value(8)
    rerun(resized)
    draft = resized.session_state["draft"]
    assert draft.name == name_field(resized).value == TUTORIAL_MODIFIED.name


def test_build_a_drop_in_the_drag_list_reorders_the_layers_once():
    at = open_page("build")
    labels = [f"{i + 1}. {layer.type}" for i, layer in enumerate(TUTORIAL.layers)]
    order = [1, 2, 0, 3, 4, 5, 6]  # the first Conv2D dragged to the third place
    key = drag_list(at).key
    # What the component sends back after a drop (AppTest cannot drag in its iframe).
    at.session_state[key] = [
        {"header": "Drag to reorder the layers", "items": [labels[i] for i in order]}
    ]
    rerun(at)
    moved = replace(TUTORIAL.reorder(order), name=TUTORIAL_MODIFIED.name)
    assert at.session_state["draft"] == moved
    assert drag_list(at).key != key  # a fresh list, showing the new order
    rerun(at)  # the old list's value is gone: nothing moves again
    assert at.session_state["draft"] == moved
    assert [d.split()[0] for d in shown_layers(at)] == kinds(moved)


def test_build_works_with_the_arrows_when_the_drag_list_is_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "streamlit_sortables", None)  # import fails
    at = open_page("build")
    assert drag_list(at) is None
    assert not at.warning and not at.error
    click(at, "down_0")
    assert kinds(at.session_state["draft"])[:2] == ["MaxPooling2D", "Conv2D"]


def test_build_loads_a_spec_file_and_explains_a_bad_one():
    at = open_page("build")
    at.file_uploader(key="upload_spec").set_value(("tiny.json", TINY.to_json().encode(), "x"))
    rerun(at)
    assert at.session_state["draft"] == TINY
    at.file_uploader(key="upload_spec").set_value(("bad.json", b'{"layers": 3', "x"))
    rerun(at)
    assert at.session_state["draft"] == TINY
    assert any("bad.json" in text for text in texts(at.error))


def test_build_draws_a_backbone_as_one_row_and_its_fixes_make_it_valid():
    grey_and_second = ModelSpec(
        name="Transfer",
        input_shape=(28, 28, 1),
        num_classes=3,
        layers=(
            LayerSpec("BatchNormalization"),
            LayerSpec("Backbone", {"model": "mobilenet_v3_small"}),
            LayerSpec("GlobalAveragePooling2D"),
        ),
    )
    at = open_page("build")
    upload = ("t.json", grey_and_second.to_json().encode(), "x")
    at.file_uploader(key="upload_spec").set_value(upload)
    rerun(at)
    assert texts(at.error)[0].startswith("Layer 2 (Backbone): must be the first layer")
    click(at, "fix_1_not_first")  # moved to the top: now the grey input is the problem
    assert texts(at.error)[0].startswith("Layer 1 (Backbone): MobileNetV3-Small takes colour")
    click(at, "fix_0_needs_colour")
    assert "at least 32x32 pixels" in texts(at.error)[0]
    click(at, "fix_0_input_too_small")
    assert at.session_state["draft"].input_shape == (32, 32, 3)
    assert texts(at.success) == ["This network is ready to train."]
    assert shown_layers(at)[0] == (
        "Backbone MobileNetV3-Small, random weights, frozen, input 32x32 or larger"
    )
    info = analyze(at.session_state["draft"]).layers[0]
    cells = texts(at.main.markdown)
    assert f"{info.params:,}  \n:small[{info.frozen:,} frozen · 1.57 M mult-adds]" in cells
    assert "`1x1x576`" in cells


# --- Train --------------------------------------------------------------------------------------


@contextlib.contextmanager
def no_worker_left(run_of: Callable[[], Run | None]) -> Iterator[None]:
    """Stop, and if need be kill, the worker of the run that `run_of()` returns at the end."""
    try:
        yield
    finally:
        run = run_of()
        if run is not None:
            with contextlib.suppress(OSError):
                run.file("stop.request").write_text("test teardown\n")
            with contextlib.suppress(AssertionError):  # then killed
                wait_until(lambda: not worker_pids(run), 20)
            for pid in worker_pids(run):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def test_train_starts_a_run_shows_it_live_and_stops_it(data: Path):
    draft_id = new_draft_id()
    assert save_draft(draft_id, TINY)
    at = open_page("train", draft=draft_id)
    assert at.radio(key="arch_choice").value == "draft"
    at.text_input(key="data_source").set_value(str(data))
    next(n for n in at.number_input if n.key.startswith("ep_v")).set_value(1000)
    next(n for n in at.number_input if n.key.startswith("bs_v")).set_value(4)
    rerun(at)
    assert any("3 classes" in text or "image folders" in text for text in texts(at.caption))

    with no_worker_left(lambda: next(iter(list_runs()), None)):
        click(at, "start")
        (run,) = list_runs()
        assert at.query_params["run"] == run.name
        assert run.config().epochs == 1000 and run.config().batch_size == 4
        assert run.dataset()["source"] == str(data)

        live = open_page("train", run=run.name)
        assert live.metric[0].label == "State"
        assert live.metric[0].value in ("queued", "running")
        # A stop requested before the worker is running is lost (it clears old stop requests
        # when it starts), so wait until it trains.
        wait_until(lambda: run.status().state == "running", 60, what=run.log_tail)
        rerun(live)
        assert live.metric[0].value == "running"
        click(live, "stop_run")
        wait_until(lambda: run.status().finished, 60, what=run.log_tail)
        assert run.status().state == "stopped", run.status()
        rerun(live)
        assert live.metric[0].value == "stopped"


# --- Evaluate, Runs, Predict ----------------------------------------------------------------------


def test_evaluate_computes_on_demand_and_shows_the_stored_accuracy(completed_template: Run):
    evaluated = copy_run(completed_template, "20000101-000000-evaluated")
    fresh = copy_run(completed_template, "20000101-000001-fresh")
    for name in (EVALUATION, PREDICTIONS):
        fresh.file(name).unlink()

    at = open_page("evaluate", run=evaluated.name)
    assert at.selectbox(key="eval_run").value == evaluated.name
    stored = json.loads(evaluated.file(EVALUATION).read_text())
    assert at.metric[0].value == f"{stored['accuracy']:.2%}"

    at.selectbox(key="eval_run").set_value(fresh.name)
    rerun(at)
    assert at.query_params["run"] == fresh.name
    assert not at.metric
    click(at, "evaluate")
    report = json.loads(fresh.file(EVALUATION).read_text())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{report['accuracy']:.2%}" == "66.67%"  # red is missed
    assert metrics["Test images"] == "30"


def test_runs_table_lists_every_run(completed_template: Run, data: Path):
    done = copy_run(completed_template)
    broken = damaged_run(data)
    table = open_page("runs").dataframe[0].value
    rows = {row["run"]: row for row in table.to_dict("records")}
    assert set(rows) == {done.name, broken.name}
    assert rows[done.name]["state"] == "completed"
    assert rows[done.name]["test accuracy"] == pytest.approx(done.evaluation().accuracy)
    assert rows[broken.name]["state"] == "interrupted"


def test_predict_names_the_classes_and_classifies_uploads(completed_template: Run):
    copy_run(completed_template)
    at = open_page("predict")
    assert "Classes: blue, green, red." in at.caption[0].value

    photo = png_bytes(COLOURS["red"])
    at.file_uploader(key="photos").set_value(
        [("red.png", photo, "image/png"), ("broken.png", b"not an image", "image/png")]
    )
    rerun(at)
    assert "**red.png**" in texts(at.markdown) and "**broken.png**" in texts(at.markdown)
    assert len(at.error) == 1  # the broken file, named; the photo is still predicted
    table = at.dataframe[0].value  # the page's "All photos" table (AppTest shows no key)
    assert table["prediction"][0] == "green"  # the model calls red green
    assert table["problem"].isna().tolist() == [True, False]
