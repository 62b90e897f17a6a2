"""Every run in the tools people already use: TensorBoard event files in its folder, read back
with TensorBoard's own reader (not a mock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import TINY, write_colours

from cnn_core import api
from cnn_core.config import TrainConfig

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(folder: Path) -> dict[str, list[float]]:
    """The per-epoch values TensorBoard shows (TensorFlow 2 writes scalars as tensors)."""
    from tensorboard.util.tensor_util import make_ndarray

    reader = event_accumulator.EventAccumulator(str(folder))
    reader.Reload()
    tags = [tag for tag in reader.Tags()["tensors"] if tag.startswith("epoch_")]
    return {
        tag: [float(make_ndarray(event.tensor_proto)) for event in reader.Tensors(tag)]
        for tag in tags
    }


def test_a_run_writes_tensorboard_scalars_per_epoch_and_a_resume_adds_to_them(tmp_path):
    data = write_colours(tmp_path / "colours", train=20, test=4)
    config = TrainConfig(epochs=2, batch_size=16, seed=1, learning_rate=0.01)
    run = api.start_run(TINY, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    assert run.status().state == "completed"
    train = scalars(run.tensorboard_dir / "train")
    assert len(train["epoch_loss"]) == 2 and len(train["epoch_accuracy"]) == 2
    assert train["epoch_learning_rate"] == pytest.approx([0.01, 0.01])
    history = run.history()
    assert train["epoch_loss"] == pytest.approx([row["loss"] for row in history], rel=1e-5)
    validation = scalars(run.tensorboard_dir / "validation")
    assert len(validation["epoch_loss"]) == 2
    reader = event_accumulator.EventAccumulator(str(run.tensorboard_dir / "train"))
    reader.Reload()
    assert "keras" in reader.Tags()["tensors"]  # the model, as TensorBoard's graph tab shows it
    api.resume_run(run, more_epochs=1, detach=False)
    assert len(scalars(run.tensorboard_dir / "train")["epoch_loss"]) == 3
