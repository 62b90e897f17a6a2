"""Tests for `cnn_core.compare`: runs side by side as plain data, from run folders written here."""

from __future__ import annotations

from pathlib import Path

from cnn_core.compare import PROBLEM, compare_runs, curve_points
from cnn_core.config import TrainConfig
from cnn_core.runs import HISTORY, SPEC, Run, atomic_write_text, create_run
from cnn_core.spec import LayerSpec, ModelSpec

ONE_LAYER = ModelSpec(
    name="Small",
    input_shape=(8, 8, 3),
    num_classes=3,
    layers=(LayerSpec("Conv2D", {"filters": 6, "kernel_size": 3}),),  # never trained
)
TWO_LAYERS = ModelSpec(
    name="Small",
    input_shape=(8, 8, 3),
    num_classes=3,
    layers=(*ONE_LAYER.layers, LayerSpec("GlobalAveragePooling2D")),
)


def make(root: Path, spec: ModelSpec, config: TrainConfig, epochs: int = 0) -> Run:
    run = create_run(spec, config, data_source="unused", root=root)
    rows = "".join(f"{e},{0.5 + e / 100},{1 - e / 100},0.4,1.1\n" for e in range(epochs))
    atomic_write_text(run.file(HISTORY), "epoch,accuracy,loss,val_accuracy,val_loss\n" + rows)
    return run


def test_two_runs_compare_row_by_row_and_only_what_differs_is_kept(tmp_path: Path):
    first = make(tmp_path, ONE_LAYER, TrainConfig(learning_rate=0.01, epochs=3), epochs=3)
    second = make(tmp_path, TWO_LAYERS, TrainConfig(learning_rate=0.001, epochs=3), epochs=2)
    comparison = compare_runs([first, second])
    assert comparison.runs == (first.name, second.name)
    assert comparison.rows[:2] == ("architecture", "layer 1") and "layer 2" in comparison.rows
    cells = dict(zip(comparison.rows, comparison.cells, strict=True))
    assert cells["layer 1"] == ("Conv2D filters=6 kernel_size=3",) * 2
    assert cells["layer 2"] == (None, "GlobalAveragePooling2D")  # the first run has no layer 2
    assert cells["learning_rate"] == ("0.01", "0.001")
    assert cells["epochs"] == ("3", "3")
    differing = comparison.only_differing()
    assert set(differing.rows) == {"layer 2", "learning_rate"}  # a missing layer is a difference
    assert differing.runs == comparison.runs and all(differing.differs)
    assert [len(h) for h in comparison.histories.values()] == [3, 2]
    assert comparison.histories[first.name][2]["accuracy"] == 0.52


def test_a_run_whose_spec_cannot_be_read_says_why_and_the_others_are_still_compared(
    tmp_path: Path,
):
    good = make(tmp_path, ONE_LAYER, TrainConfig())
    broken = make(tmp_path, ONE_LAYER, TrainConfig())
    atomic_write_text(broken.file(SPEC), "{not json")
    comparison = compare_runs([good, broken])
    cells = dict(zip(comparison.rows, comparison.cells, strict=True))
    assert cells[PROBLEM][0] is None and "spec.json" in cells[PROBLEM][1]
    assert cells["architecture"] == ("Small", None)


def test_curve_points_thin_a_long_history_keep_its_last_epoch_and_skip_missing_values():
    history = [
        {"epoch": e, "loss": 1 / (e + 1), "val_loss": None if e % 2 else 0.5} for e in range(10_000)
    ]
    epochs, values = curve_points(history, "loss", max_points=100)
    assert 100 <= len(epochs) <= 101 and epochs[0] == 1 and epochs[-1] == 10_000
    assert values[-1] == 1 / 10_000
    epochs, _ = curve_points(history[:10], "val_loss")
    assert epochs == [1, 3, 5, 7, 9]  # epochs counted from 1; no validation on the others
