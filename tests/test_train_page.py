"""The Train page before Start and for runs that went wrong, through Streamlit's AppTest.

Before Start it says where the data comes from (downloaded or already here, what to do without
a network) and refuses a source that cannot be a dataset, with the reason, so that no run is
made; a run whose worker died before training reads failed, offers Resume and no Stop.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import TINY, open_page, rerun, wait_for_state, wait_until, write_colours

from cnn_core.config import TrainConfig
from cnn_core.drafts import new_draft_id, save_draft
from cnn_core.presets import load_preset
from cnn_core.runs import create_run, list_runs, record_launch
from dashboard.state import fingerprint


def train_page(source: str | Path):
    draft = new_draft_id()
    assert save_draft(draft, TINY)
    at = open_page("train", draft=draft)
    at.text_input(key="data_source").set_value(str(source))
    return rerun(at)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_a_missing_folder_or_a_single_photo_disables_start_with_the_reason(tmp_path):
    photo = tmp_path / "cat.jpg"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photo)
    for source, words in ((tmp_path / "nowhere", "does not exist"), (photo, "single image")):
        at = train_page(source)
        assert words in texts(at.error)
        assert at.button(key="start").disabled
        assert "choose a dataset that can be used" in texts(at.caption)
    assert list_runs() == []


def test_a_good_folder_says_it_needs_no_network(tmp_path):
    at = train_page(write_colours(tmp_path / "colours", train=4, test=2))
    assert not at.button(key="start").disabled
    assert "no network needed" in texts(at.caption)


def test_cifar10_not_downloaded_says_so_and_what_to_do_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    at = train_page("cifar10")
    warning = texts(at.warning)
    assert "not downloaded yet" in warning and "170 MB" in warning
    assert "Without a network" in warning and "cifar-10-python.tar.gz" in warning
    assert "--data" not in warning and "CNN_CORE_DATA" not in warning  # the page's own words
    assert not at.button(key="start").disabled  # with a network it is fine


@pytest.mark.parametrize("crash", ["import no_such_package_at_all", "import os; os._exit(3)"])
def test_a_run_whose_worker_died_while_starting_can_be_resumed_not_stopped(tmp_path, crash):
    import subprocess

    run = create_run(TINY, TrainConfig(epochs=2), data_source=str(tmp_path))
    with open(run.file("train.log"), "ab") as log:
        worker = subprocess.Popen([sys.executable, "-c", crash], stdout=log, stderr=log)
    record_launch(run, worker.pid, log_offset=0)
    worker.wait(timeout=60)
    at = open_page("train", run=run.name)
    state = at.metric[0].value
    assert state in ("failed", "interrupted")
    if "no_such_package" in crash:
        assert state == "failed" and "No module named" in texts(at.error)
    keys = {b.key for b in at.button}
    assert "stop_run" not in keys and "resume_run" in keys
    assert "Starting" not in texts(at.info)


def test_the_live_view_says_estimating_and_draws_the_charts_before_epoch_one(tmp_path):
    from cnn_core.runs import RunStatus, atomic_write_json, claim_run

    run = create_run(TINY, TrainConfig(epochs=3), data_source=str(tmp_path))
    status = RunStatus(state="running", pid=__import__("os").getpid(), epochs_target=3)
    atomic_write_json(run.file("status.json"), status.to_dict())
    progress = {"phase": "training", "epoch": 1, "epochs": 3, "batch": 1, "batches": 50}
    atomic_write_json(run.file("progress.json"), {**progress, "eta_seconds": None})
    with claim_run(run):  # this process is its worker: it holds the run's claim
        at = open_page("train", run=run.name)
    bar = at.get("progress")[0]
    assert "estimating the time left" in bar.proto.text
    assert len(at.get("plotly_chart")) == 2  # the empty axes: the chart code loads now


def test_the_runs_page_offers_stop_for_a_live_run_and_delete_for_a_dead_one(tmp_path):
    import os
    import subprocess

    from cnn_core.runs import RunStatus, atomic_write_json, claim_run

    live = create_run(TINY, TrainConfig(epochs=2), data_source=str(tmp_path))
    claim = claim_run(live)  # this process is its worker: it holds the run's claim
    status = RunStatus(state="running", pid=os.getpid(), epochs_target=2)
    atomic_write_json(live.file("status.json"), status.to_dict())
    dead = create_run(TINY, TrainConfig(epochs=2), data_source=str(tmp_path))
    worker = subprocess.Popen([sys.executable, "-c", "import no_such_package_at_all"])
    record_launch(dead, worker.pid, log_offset=0)
    worker.wait(timeout=60)
    at = open_page("runs")
    at.dataframe(key="runs_table")  # both listed; select them through the table's state
    at.session_state["runs_table"] = {"selection": {"rows": [0, 1], "columns": []}}
    rerun(at)
    keys = {b.key for b in at.button} | {c.key for c in at.checkbox}
    assert f"stop_{live.name}" in keys and f"confirm_{live.name}" not in keys
    assert f"confirm_{dead.name}" in keys and f"stop_{dead.name}" not in keys
    at.button(key=f"stop_{live.name}").click()
    rerun(at)
    assert live.stop_requested()
    claim.close()


def test_start_with_a_missing_backend_says_what_to_install_and_makes_no_run(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(
        "cnn_core.backends.importlib.util.find_spec", lambda name: None if name == "jax" else 1
    )
    at = train_page(write_colours(tmp_path / "colours", train=4, test=2))
    at.button(key="start").click()
    rerun(at)
    assert "pip install jax" in texts(at.error)
    assert list_runs() == [] and "run" not in at.query_params


def test_the_balance_checkbox_sets_class_weight(tmp_path):
    at = train_page(write_colours(tmp_path / "colours", train=4, test=2))
    box = next(c for c in at.checkbox if c.key.startswith("cw_"))
    assert box.value is False
    box.check()
    rerun(at)
    at.button(key="start").click()
    rerun(at)
    (run,) = list_runs()
    assert run.config().class_weight == "balanced"
    run.file("stop.request").write_text("test\n")  # and wait for its worker to end
    with contextlib.suppress(AssertionError):
        wait_for_state(run, lambda status: status.finished, 60)


def test_the_dataset_check_shows_counts_advice_and_samples_when_opened(tmp_path):
    import shutil

    data = write_colours(tmp_path / "colours", train=4, test=2)
    for extra in sorted((data / "train" / "red").iterdir())[1:]:
        extra.unlink()  # 4 blue, 4 green, 1 red
    (data / "train" / "blue" / "notes.txt").write_text("not a picture\n")
    at = train_page(data)
    assert not at.get("plotly_chart")  # closed: nothing read
    at.session_state["data_report"] = True  # the user opens it
    rerun(at)
    assert len(at.get("plotly_chart")) == 1
    captions = texts(at.caption)
    assert "16 files found: 15 images used, 1 skipped" in captions
    advice = texts(at.info)
    assert "unbalanced (4.0:1" in advice and "1 file(s) were found but not used" in advice
    assert len(at.get("image")) == 9  # the sample grid: every training image here (4 per class)
    shutil.rmtree(data / "train" / "red")
    (data / "test" / "red").rename(tmp_path / "gone")
    fingerprint.clear()  # the page looks at the files again at most every 10 s
    rerun(at)  # the dataset changed: read again
    assert "13 files found: 12 images used, 1 skipped" in texts(at.caption)


def test_big_photos_offer_a_larger_input_for_the_draft_in_one_click(tmp_path):
    from cnn_core.drafts import load_draft

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = tmp_path / "photos" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png"
                )
    at = train_page(tmp_path / "photos")
    at.session_state["data_report"] = True
    rerun(at)
    assert any("about 160x120; the model sees 8x8" in i.value for i in at.info)
    at.button(key="use_larger_input").click()
    rerun(at)
    draft = load_draft(at.query_params["draft"])
    assert draft.input_shape == (96, 96, 3) and draft.name == TINY.name  # not a preset


def _form_widgets(at) -> dict:
    """Every widget the settings form can draw, by key."""
    kinds = ("number_input", "slider", "selectbox", "checkbox")
    return {w.key: w for kind in kinds for w in at.get(kind) if w.key}


def test_every_declared_setting_is_in_the_form_with_the_declared_bounds_and_label():
    from cnn_core.config import AUGMENTATION, SETTINGS
    from dashboard.settings_form import widget_key

    draft = new_draft_id()
    assert save_draft(draft, load_preset("transfer_mobilenet_v3_small").spec)  # can fine-tune
    at = open_page("train", draft=draft)
    widgets = _form_widgets(at)
    for s in (*SETTINGS, *AUGMENTATION):
        widget = widgets[widget_key(s, 0)]
        assert widget.label == s.label and not widget.disabled
        assert widget.help == (s.help if s.tooltip else ""), s.name
        if s.kind in ("integer", "number"):
            step = s.step if s.widget == "slider" else 0  # a slider cannot offer an open end
            low = s.off if s.off is not None else s.low + (step if s.low_open else 0)
            high = s.high - (step if s.high_open else 0)
            assert (widget.min, widget.max) == pytest.approx((low, high)), s.name
        if s.kind == "choice" and s.widget != "checkbox":
            assert len(widget.options) == len(s.choices), s.name


def test_a_changed_declaration_changes_the_form_and_the_message_alike(monkeypatch):
    from dataclasses import replace

    from cnn_core import config
    from cnn_core.errors import ConfigError

    narrower = [replace(s, high=50) if s.name == "epochs" else s for s in config.SETTINGS]
    monkeypatch.setattr(config, "SETTINGS", tuple(narrower))
    at = open_page("train")
    assert at.number_input(key="ep_v0").max == 50
    at.session_state["config_base"] = TrainConfig(epochs=60)  # as a file read before the change
    at.session_state["config_version"] = 1
    rerun(at)
    assert at.number_input(key="ep_v1").value == 50  # the form offers no more than declared
    with pytest.raises(ConfigError, match="epochs must be a whole number from 1 to 50; got 60"):
        config.config_from_dict({"epochs": 60})


def test_the_page_types_no_bound_of_its_own():
    import ast

    root = Path(__file__).parents[1]
    source = "\n".join(
        (root / p).read_text() for p in ("pages/train.py", "dashboard/settings_form.py")
    )
    own = {"more_epochs": "how many epochs Resume adds: not a training setting"}
    for call in ast.walk(ast.parse(source)):
        if not isinstance(call, ast.Call) or getattr(call.func, "attr", "") not in (
            "number_input",
            "slider",
            "select_slider",
        ):
            continue
        key = next((k.value for k in call.keywords if k.arg == "key"), None)
        bounds = [
            *call.args[1:3],
            *(k.value for k in call.keywords if k.arg in ("min_value", "max_value")),
        ]
        literal = [b for b in bounds if isinstance(b, ast.Constant | ast.UnaryOp)]
        assert not literal or (isinstance(key, ast.Constant) and key.value in own), (
            f"line {call.lineno}: a bound typed by hand; declare it in cnn_core/config.py"
        )


def test_a_setting_the_backend_cannot_run_is_disabled_with_a_note(tmp_path, monkeypatch):
    from cnn_core import api
    from cnn_core.errors import ConfigError

    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setattr("cnn_core.backends.importlib.util.find_spec", lambda name: 1)
    at = open_page("train")
    at.session_state["config_base"] = TrainConfig(steps_per_execution=8)
    at.session_state["config_version"] = 1
    rerun(at)
    widget = at.number_input(key="spe_v1")
    assert widget.disabled and widget.value == 1  # the only value PyTorch's trainer takes
    assert "Needs TensorFlow or JAX: Keras runs on PyTorch here." in widget.help
    assert "Needs TensorFlow or JAX." in texts(at.caption)
    assert not at.number_input(key="bs_v1").disabled
    data = write_colours(tmp_path / "colours", train=4, test=2)
    with pytest.raises(ConfigError, match="steps_per_execution 8 needs TensorFlow or JAX"):
        api.prepare_run(TINY, TrainConfig(steps_per_execution=8), data_source=str(data))
    assert list_runs() == []


# --- the default model for a user's own photos ---------------------------------------------------

TRANSFER = "transfer_mobilenet_v3_small"


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Keras' cache in tmp_path, empty, and the weights check's cached answers forgotten."""
    import streamlit as st

    home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(home))
    st.cache_data.clear()
    yield home
    st.cache_data.clear()


def fake_weights(home: Path) -> Path:
    from cnn_core.backbones import BACKBONES

    path = home / "models" / BACKBONES["mobilenet_v3_small"].weights_file
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not read: only its presence is asked")
    return path


def fresh_train_page(source: str | Path):
    """The Train page of a new session (its draft the untouched tutorial) given `source`."""
    at = open_page("train")
    at.text_input(key="data_source").set_value(str(source))
    return rerun(at)


def test_the_transfer_preset_is_the_default_for_your_photos_when_its_weights_are_cached(
    tmp_path, keras_home
):
    fake_weights(keras_home)
    data = write_colours(tmp_path / "photos", train=4, test=2)
    at = open_page("train")
    assert at.radio(key="arch_choice").value == "draft"  # CIFAR-10: the tutorial, as before
    at.text_input(key="data_source").set_value(str(data))
    rerun(at)
    assert at.radio(key="arch_choice").value == TRANSFER
    assert at.session_state["config_base"].fine_tune == 3  # with its recommended settings
    version = at.session_state["config_version"]
    assert at.number_input(key=f"ep_v{version}").value == 10
    assert "would be the default" not in texts(at.caption)
    at.text_input(key="data_source").set_value("cifar10")  # not your photos: back to the tutorial
    rerun(at)
    assert at.radio(key="arch_choice").value == "draft"
    assert at.session_state["config_base"] == TrainConfig()


def test_the_default_holds_from_the_first_view_and_back_from_another_page(
    tmp_path, keras_home, monkeypatch
):
    fake_weights(keras_home)
    monkeypatch.setenv("CNN_CORE_DATA", str(write_colours(tmp_path / "photos", train=4, test=2)))
    at = open_page("train")
    assert at.radio(key="arch_choice").value == TRANSFER
    at.switch_page("pages/build.py")
    rerun(at)
    at.switch_page("pages/train.py")
    assert rerun(at).radio(key="arch_choice").value == TRANSFER
    assert at.session_state["config_base"].fine_tune == 3


def test_the_transfer_preset_is_the_default_when_its_weights_can_be_downloaded(
    tmp_path, keras_home, monkeypatch
):
    asked = []
    monkeypatch.setattr("cnn_core.imagenet.url_reachable", lambda url, **_: asked.append(url) or 1)
    at = fresh_train_page(write_colours(tmp_path / "photos", train=4, test=2))
    assert at.radio(key="arch_choice").value == TRANSFER
    rerun(at)
    assert len(asked) == 1  # asked once, not at every rerun


def test_without_the_weights_the_default_stays_and_one_line_says_what_to_fetch(
    tmp_path, keras_home
):
    at = fresh_train_page(write_colours(tmp_path / "photos", train=4, test=2))
    assert at.radio(key="arch_choice").value == "draft"
    assert "config_base" not in at.session_state  # the settings as they were
    (line,) = [c.value.replace("\\", "") for c in at.caption if "would be the default" in c.value]
    assert "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5" in line
    assert str(keras_home / "models") in line
    assert not at.exception and not at.error


def test_cifar10_as_image_folders_is_not_your_photos(tmp_path, keras_home):
    from cnn_core.datasets import CIFAR10_CLASSES

    fake_weights(keras_home)
    data = write_colours(
        tmp_path / "cifar", train=2, test=1, colours=dict.fromkeys(CIFAR10_CLASSES, (9, 9, 9))
    )
    assert fresh_train_page(data).radio(key="arch_choice").value == "draft"


def test_your_own_choice_of_model_and_settings_wins_over_the_default(tmp_path, keras_home):
    fake_weights(keras_home)
    data = write_colours(tmp_path / "photos", train=4, test=2)
    at = open_page("train")
    at.radio(key="arch_choice").set_value("fast_cpu")  # chosen before the source was typed
    rerun(at)
    at.text_input(key="data_source").set_value(str(data))
    rerun(at)
    rerun(at)
    assert at.radio(key="arch_choice").value == "fast_cpu"
    # chosen after the default was applied: kept on reruns and a new source
    at = fresh_train_page(data)
    at.radio(key="arch_choice").set_value("tutorial_cnn")
    rerun(at)
    at.text_input(key="data_source").set_value(
        str(write_colours(tmp_path / "more", train=2, test=1))
    )
    rerun(at)
    assert at.radio(key="arch_choice").value == "tutorial_cnn"
    # settings loaded from a preset are kept when the default changes the model
    at = open_page("train")
    at.button(key="recommend_fast_cpu").click()
    rerun(at)
    at.text_input(key="data_source").set_value(str(data))
    rerun(at)
    assert at.radio(key="arch_choice").value == TRANSFER
    assert at.session_state["config_base"].fine_tune is None
    # a draft edited on the Build page is a choice too
    assert train_page(data).radio(key="arch_choice").value == "draft"


# --- fine-tuning needs a frozen Backbone ---------------------------------------------------------


def fine_tuning_widgets(at) -> list:
    from cnn_core.config import FINE_TUNING, SETTINGS
    from dashboard.settings_form import widget_key

    version = at.session_state.get("config_version", 0)
    widgets = _form_widgets(at)
    return [widgets[widget_key(s, version)] for s in SETTINGS if s.section == FINE_TUNING]


def test_fine_tuning_is_disabled_with_the_reason_for_a_spec_without_a_backbone():
    at = open_page("train")  # the tutorial: no Backbone
    widgets = fine_tuning_widgets(at)
    assert len(widgets) == 3 and all(w.disabled for w in widgets)
    assert all("needs a frozen Backbone as the first layer" in w.help for w in widgets)
    notes = [c.value for c in at.caption if "Backbone" in c.value]
    assert len(notes) == 1 and "Transfer preset" in notes[0]  # said once, in the section
    assert "fine_tune_off" not in {b.key for b in at.button}  # nothing to refuse: it is off
    at.radio(key="arch_choice").set_value("transfer_mobilenet_v3_small")
    rerun(at)
    assert not any(w.disabled for w in fine_tuning_widgets(at))
    assert not [c for c in at.caption if "needs a frozen Backbone" in c.value]


def test_fine_tuning_carried_to_a_model_without_a_backbone_is_refused_with_a_one_click_fix(
    tmp_path,
):
    at = open_page("train")
    at.text_input(key="data_source").set_value(str(write_colours(tmp_path / "c", train=4, test=2)))
    at.radio(key="arch_choice").set_value("transfer_mobilenet_v3_small")
    rerun(at)
    at.button(key="recommend_transfer_mobilenet_v3_small").click()  # fine_tune 3 of 10 epochs
    rerun(at)
    assert not at.button(key="start").disabled and "fine_tune_off" not in {b.key for b in at.button}
    at.radio(key="arch_choice").set_value("tutorial_cnn")  # then another model
    rerun(at)
    widgets = fine_tuning_widgets(at)
    assert all(w.disabled for w in widgets) and widgets[0].value == 3  # shown, not dropped
    assert "These settings fine-tune (3 frozen epochs first)" in texts(at.error)
    assert at.button(key="start").disabled
    assert "turn fine-tuning off" in texts(at.caption)
    at.button(key="fine_tune_off").click()
    rerun(at)
    assert at.session_state["config_base"].fine_tune is None
    assert at.session_state["config_base"].epochs == 10  # the rest of the settings kept
    assert not at.error and not at.button(key="start").disabled
    assert fine_tuning_widgets(at)[0].value == 0  # 0 = off


def test_small_images_carried_to_a_flatten_network_are_refused_with_a_one_click_fix(tmp_path):
    at = open_page("train")
    at.text_input(key="data_source").set_value(str(write_colours(tmp_path / "c", train=4, test=2)))
    at.radio(key="arch_choice").set_value("fast_cpu")
    rerun(at)
    at.button(key="recommend_fast_cpu").click()  # small_image_share 0.4: the first 4 of 10
    rerun(at)
    assert not at.button(key="start").disabled
    assert "small_images_off" not in {b.key for b in at.button}
    at.radio(key="arch_choice").set_value("tutorial_cnn")  # then a network that ends in Flatten
    rerun(at)
    assert "the first 4 of 10 epochs on smaller images" in texts(at.error)
    assert "instead of Flatten" in texts(at.error)
    assert at.button(key="start").disabled
    at.button(key="small_images_off").click()
    rerun(at)
    assert at.session_state["config_base"].small_image_share == 0
    assert at.session_state["config_base"].epochs == 10  # the rest of the settings kept
    assert not at.error and not at.button(key="start").disabled


def test_a_batch_size_that_does_not_divide_by_the_devices_is_fixed_in_one_click(tmp_path):
    at = train_page(write_colours(tmp_path / "colours", train=4, test=2))
    devices = next(n for n in at.number_input if n.key.startswith("dev_"))
    assert devices.value == 0  # "0 = all": every GPU, or one device on a machine without
    devices.set_value(3)
    rerun(at)
    assert any("must divide by devices (3)" in e.value for e in at.error)
    assert at.button(key="start").disabled
    at.button(key="fit_batch").click()
    rerun(at)
    assert not any("must divide" in e.value for e in at.error)
    batch = next(n for n in at.number_input if n.key.startswith("bs_"))
    devices = next(n for n in at.number_input if n.key.startswith("dev_"))
    assert (batch.value, devices.value) == (63, 3)  # the nearest multiple of 3 to 64


def test_the_learning_rate_finder_runs_as_a_job_and_its_suggestion_is_applied(tmp_path):
    from cnn_core.runs import list_runs

    at = train_page(write_colours(tmp_path / "colours", train=20, test=2))
    at.button(key="lr_find_start").click()
    rerun(at)
    assert "Finding a learning rate" in texts(at.info)
    wait_until(lambda: rerun(at) and not any("Finding" in i.value for i in at.info), 120, every=1)
    assert not at.error, texts(at.error)
    assert at.get("plotly_chart")  # the curve
    use = at.button(key="lr_use")
    rate = float(use.label.removeprefix("Use "))
    assert 1e-7 <= rate <= 10
    use.click()
    rerun(at)
    lr = next(n for n in at.number_input if n.key.startswith("lr_"))
    assert lr.value == pytest.approx(rate)
    assert list_runs() == []  # the finder wrote no run


def test_a_run_that_is_not_learning_is_warned_about_with_the_finder_one_click_away(tmp_path):
    from dataclasses import replace

    data = write_colours(tmp_path / "colours", train=4, test=2)
    config = TrainConfig(epochs=2, learning_rate=10.0, batch_size=16)
    run = create_run(TINY, config, data_source=str(data))
    said = "Not learning: after the first epoch the training loss stayed at 1.0986 (…)."
    status = replace(run.status(), state="completed", epochs_completed=2, not_learning=said)
    run.write_status(status)
    at = open_page("train", run=run.name)
    assert said in texts(at.warning)
    at.button(key="not_learning_find").click()
    rerun(at)
    # A new run set up as that one was, with the finder open.
    finder = next(e for e in at.expander if e.label == "Find a learning rate")
    assert finder.proto.expanded
    assert at.text_input(key="data_source").value == str(data)
    assert at.radio(key="arch_choice").value == "draft"
    lr = next(n for n in at.number_input if n.key.startswith("lr_"))
    assert lr.value == 10.0
    assert not at.button(key="lr_find_start").disabled


def test_all_the_gpus_of_the_machine_must_share_the_batch_with_a_fix(tmp_path, monkeypatch):
    inventory = tmp_path / "gpus.json"
    three = [{"index": i, "name": "Fake GPU", "busy_pids": []} for i in range(3)]
    inventory.write_text(json.dumps(three))
    monkeypatch.setenv("CNN_CORE_GPU_INVENTORY", str(inventory))
    at = train_page(write_colours(tmp_path / "colours", train=4, test=2))
    assert any(
        'must divide by the 3 GPUs (Fake GPU) that devices "all"' in e.value for e in at.error
    )
    assert at.button(key="start").disabled
    at.button(key="fit_batch").click()
    rerun(at)
    assert not any("must divide" in e.value for e in at.error)
    batch = next(n for n in at.number_input if n.key.startswith("bs_"))
    assert batch.value == 63
