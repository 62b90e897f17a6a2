"""Fine-tuning (the fine_tune setting): frozen epochs first, then the backbone unfrozen at a lower
rate with its own warm-up; resumable on either side of the phase change.

The Transfer presets train here with random weights (`weights: null`: no test needs the network)
at 32x32, MobileNetV3-Small's smallest input, on 30 noisy 8x8 colour images scaled up.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from support import TINY, write_colours

from cnn_core import api
from cnn_core.config import TrainConfig, check_spec_support, config_from_dict
from cnn_core.errors import ConfigError
from cnn_core.presets import load_preset
from cnn_core.spec import LayerSpec, ModelSpec
from cnn_core.training import fine_tune, recorder, worker
from cnn_core.training.fine_tune import backbones

MOBILENET = "transfer_mobilenet_v3_small"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of noisy solid colours: 10 training and 4 test images each."""
    return write_colours(tmp_path_factory.mktemp("photos"), train=10, test=4)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """MobileNetV3-Small weights as a pretrained file would hold them (here random ones)."""
    from cnn_core.pretrained import make_network

    path = tmp_path_factory.mktemp("weights") / "mobilenet.weights.h5"
    make_network("mobilenet_v3_small", (32, 32, 3), None).save_weights(path)
    return str(path)


def offline(preset_id: str, *, trainable: bool = False, weights: str | None = None) -> ModelSpec:
    """The preset's spec at 32x32 with random backbone weights or those of a file (no download)."""
    spec = load_preset(preset_id).spec
    backbone, *rest = spec.layers
    params = {**backbone.params, "weights": weights, "trainable": trainable}
    return replace(spec, input_shape=(32, 32, 3), layers=(LayerSpec(backbone.type, params), *rest))


def values(model: Any) -> dict[str, list[np.ndarray]]:
    """The backbone's weights (BatchNormalization's apart) and the classifier's, as arrays."""
    (backbone,) = backbones(model)
    out: dict[str, list[np.ndarray]] = {"backbone": [], "batch_norm": []}
    for layer in backbone.network.layers:
        bucket = "batch_norm" if "BatchNormalization" in type(layer).__name__ else "backbone"
        out[bucket] += [keras.ops.convert_to_numpy(w) for w in layer.weights]
    head = model.get_layer("classifier")
    out["classifier"] = [keras.ops.convert_to_numpy(w) for w in head.weights]
    return out


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture
def snapshots(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """The weights at each compile ("compile") and at each checkpoint (its epochs done)."""
    taken: list[tuple[str, dict]] = []
    compile_model, save_checkpoint = worker.compile_model, recorder.save_checkpoint

    def compiling(model: Any, *args: Any, **kwargs: Any) -> None:
        taken.append(("compile", values(model)))
        compile_model(model, *args, **kwargs)

    def saving(run: Any, model: Any, epochs_done: int) -> None:
        taken.append((str(epochs_done), values(model)))
        save_checkpoint(run, model, epochs_done)

    monkeypatch.setattr(worker, "compile_model", compiling)  # the first phase's, or a resume's
    monkeypatch.setattr(fine_tune, "compile_model", compiling)  # at the phase change
    monkeypatch.setattr(recorder, "save_checkpoint", saving)
    return taken


def test_the_transfer_presets_validate_offline_and_ask_for_imagenet_and_fine_tune():
    for preset_id in (MOBILENET, "transfer_efficientnet_b0"):
        preset = load_preset(preset_id)
        config = config_from_dict(preset.config, source=preset_id)
        assert preset.spec.layers[0].params["weights"] == "imagenet"
        assert min(preset.spec.input_shape[:2]) >= 96
        assert config.fine_tune and config.fine_tune < config.epochs
        check_spec_support(config, preset.spec)  # no download: validation is pure


def test_fine_tune_is_refused_without_a_frozen_backbone(photos, tmp_path):
    with pytest.raises(ConfigError, match=r"fine_tune 1 .* no Backbone layer"):
        api.prepare_run(TINY, TrainConfig(fine_tune=1), data_source=str(photos), root=tmp_path)
    trainable = offline(MOBILENET, trainable=True)
    with pytest.raises(ConfigError, match=r"layer 1 \(Backbone\) is already trainable"):
        api.prepare_run(trainable, TrainConfig(fine_tune=1), data_source=str(photos), root=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(ConfigError, match=r"fine_tune \(5\) must be fewer than epochs \(5\)"):
        config_from_dict({"fine_tune": 5, "epochs": 5})


def test_the_mobilenet_preset_fine_tunes_frozen_then_unfrozen(photos, tmp_path, snapshots):
    preset = load_preset(MOBILENET)
    config = config_from_dict({**preset.config, "epochs": 2, "fine_tune": 1, "batch_size": 8})
    run = api.start_run(
        offline(MOBILENET),
        replace(config, seed=5),
        data_source=str(photos),
        root=tmp_path,
        detach=False,
    )
    status = run.status()
    assert status.state == "completed", status.error
    (_, start), (_, after_1), (_, unfrozen), (_, after_2) = snapshots
    assert [label for label, _ in snapshots] == ["compile", "1", "compile", "2"]
    assert same(start["backbone"], after_1["backbone"])  # frozen in epoch 1
    assert not same(start["classifier"], after_1["classifier"])  # while the classifier learns
    assert same(after_1["backbone"], unfrozen["backbone"])
    assert not same(after_1["backbone"], after_2["backbone"])  # unfrozen in epoch 2
    assert same(start["batch_norm"], after_1["batch_norm"])  # frozen: in inference mode
    assert not same(after_1["batch_norm"], after_2["batch_norm"])  # random: nothing to keep
    lr = [row["lr"] for row in run.history()]
    assert lr == pytest.approx([config.learning_rate, config.learning_rate * 0.1])


def test_a_run_resumes_in_the_right_phase_before_and_after_the_change(
    photos, tmp_path, snapshots, monkeypatch, weights_file
):
    stops = {1, 2}  # epochs done after which the run is stopped: the change, and one after it
    on_epoch_end = recorder.RunRecorder.on_epoch_end

    def stopping(self: Any, epoch: int, logs: dict | None = None) -> None:
        on_epoch_end(self, epoch, logs)
        if epoch + 1 in stops:
            stops.discard(epoch + 1)
            raise recorder.StopRequested

    monkeypatch.setattr(recorder.RunRecorder, "on_epoch_end", stopping)
    # The unfrozen phase: 3 epochs of 3 steps, warming up over 4 steps from a hundredth.
    config = TrainConfig(
        epochs=4, fine_tune=1, fine_tune_warmup=0.5, batch_size=8, seed=2, learning_rate=0.01
    )
    spec = offline(MOBILENET, weights=weights_file)  # pretrained: its statistics are kept
    run = api.start_run(spec, config, data_source=str(photos), root=tmp_path, detach=False)
    assert (run.status().state, run.status().epochs_completed) == ("stopped", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.resume_run(run, detach=False)  # from the checkpoint at the change
        assert (run.status().state, run.status().epochs_completed) == ("stopped", 2)
        api.resume_run(run, detach=False)  # from one the unfrozen phase wrote
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    status = run.status()
    assert (status.state, status.epochs_completed) == ("completed", 4), status.error
    peak = 0.01 * 0.1
    warming = peak / 100 + (peak - peak / 100) * 3 / 4  # 3 of its 4 steps up
    lr = [row["lr"] for row in run.history()]
    assert lr == pytest.approx([0.01, warming, peak, peak])  # the warm-up went on from step 3
    checkpoint = {label: taken for label, taken in snapshots if label != "compile"}
    assert not same(checkpoint["2"]["backbone"], checkpoint["4"]["backbone"])  # still unfrozen
    assert same(checkpoint["1"]["batch_norm"], checkpoint["4"]["batch_norm"])  # inference mode


def test_the_train_page_charts_the_learning_rate_of_both_phases(tmp_path):
    import json

    from support import open_page

    from cnn_core.runs import RunStatus, create_run

    run = create_run(TINY, TrainConfig(epochs=3), data_source=str(tmp_path))
    run.write_status(RunStatus(state="completed", epochs_completed=3, epochs_target=3))
    rates = [0.001, 0.0001, 0.0001]
    run.write_history(
        {"epoch": i, "loss": 1.0, "accuracy": 0.5, "epoch_seconds": 1.0, "lr": lr}
        for i, lr in enumerate(rates)
    )
    at = open_page("train", run=run.name)
    (chart,) = [c for c in at.get("plotly_chart") if "Learning rate" in c.proto.spec]
    (curve,) = json.loads(chart.proto.spec)["data"]
    assert curve["y"] == pytest.approx(rates)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "one_cycle"])
def test_the_unfrozen_phase_warms_up_to_the_rate_times_the_factor(schedule):
    from cnn_core.training.optim import make_optimizer

    config = TrainConfig(
        epochs=10, fine_tune=4, lr_schedule=schedule, learning_rate=0.02, fine_tune_warmup=0.2
    )
    optimizer = make_optimizer(config, 10, config.epochs, unfrozen=True)
    lr = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    rates = [float(keras.ops.convert_to_numpy(lr(step))) for step in range(61)]  # 6 epochs
    peak = 0.02 * 0.1
    assert rates[0] < peak / 10 and max(rates) == pytest.approx(peak, rel=1e-3)
    assert rates.index(max(rates)) == 12  # 20% of the phase's 60 steps
    frozen = make_optimizer(config, 10, config.epochs).get_config()["learning_rate"]
    if schedule != "constant":  # over the first 4 epochs
        frozen = keras.optimizers.schedules.deserialize(frozen)
    if schedule == "constant":
        assert frozen == pytest.approx(0.02)
    elif schedule == "cosine":
        assert frozen.warmup_steps + frozen.decay_steps == 40
    else:
        assert frozen.total_steps == 40


def test_early_stopping_watches_the_unfrozen_epochs_only(photos, tmp_path, weights_file):
    # With a rate too small to change any float32 weight the validation loss never improves, so
    # early stopping (patience 1) would end the run after epoch 2, before the backbone was ever
    # unfrozen; it now watches from the phase change on: epoch 4 is its best, epoch 5 its last.
    config = TrainConfig(
        epochs=7, fine_tune=3, early_stopping_patience=1, learning_rate=1e-12, batch_size=8
    )
    spec = offline(MOBILENET, weights=weights_file)  # pretrained: inference-mode statistics
    run = api.start_run(spec, config, data_source=str(photos), root=tmp_path, detach=False)
    status = run.status()
    assert (status.state, status.epochs_completed) == ("completed", 5), status.error
