"""Every run in the tools people already use: TensorBoard event files in its folder, read back
with TensorBoard's own reader (not a mock)."""

from __future__ import annotations

import json
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


def test_tensorboard_adds_no_summary_op_to_a_batch_when_it_writes_per_epoch(tmp_path, monkeypatch):
    """Keras' own callback calls tf.summary.scalar for each figure of every batch even when it
    writes per epoch (with no default writer, the calls write nothing; two a batch cost 20-90 ms
    an epoch: bench.bookkeeping). The run's calls none; the model and the epoch's figures are
    still written."""
    import numpy as np
    import tensorflow as tf

    from cnn_core.builder import build_model
    from cnn_core.runs import create_run
    from cnn_core.training.tracking import Tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = create_run(TINY, TrainConfig(), data_source="unused", root=tmp_path)
    model = build_model(TINY)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(np.zeros((2, 8, 8, 3)), np.zeros(2))  # the training function exists
    (board,) = Tracking.start(run, TrainConfig(), TINY).callbacks
    board.set_model(model)
    written: list[str] = []
    real_scalar = tf.summary.scalar

    def scalar(name, *args, **kwargs):  # the real summary op, noting its name
        written.append(name)
        return real_scalar(name, *args, **kwargs)

    monkeypatch.setattr(tf.summary, "scalar", scalar)
    board.on_train_begin()
    for batch in range(5):
        board.on_train_batch_begin(batch)
        board.on_train_batch_end(batch, {"loss": 1.0, "accuracy": 0.5})
    assert written == []
    board.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    board.on_train_end()
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(written)
    reader = event_accumulator.EventAccumulator(str(run.tensorboard_dir / "train"))
    reader.Reload()
    assert "keras" in reader.Tags()["tensors"]  # the model, as TensorBoard's graph tab shows it
    assert scalars(run.tensorboard_dir / "train")["epoch_loss"] == [1.0]


def test_with_an_mlflow_store_a_run_logs_its_settings_epochs_model_and_evaluation(
    tmp_path, monkeypatch
):
    """Against a real local MLflow store (SQLite), as CI has it: no mock."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from cnn_core.evaluate import evaluate_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is relative to here
    data = write_colours(tmp_path / "colours", train=20, test=4)
    config = TrainConfig(epochs=2, batch_size=16, seed=1, learning_rate=0.01)
    run = api.start_run(TINY, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    assert run.status().state == "completed", run.status().error
    record = run.mlflow()
    assert record is not None and record["tracking_uri"] == uri
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    logged = client.get_run(record["run_id"])
    assert logged.info.status == "FINISHED" and logged.info.run_name == run.name
    assert logged.data.params["learning_rate"] == "0.01"
    assert logged.data.params["architecture"] == TINY.name
    losses = [m.value for m in client.get_metric_history(record["run_id"], "loss")]
    assert losses == pytest.approx([row["loss"] for row in run.history()], rel=1e-5)
    artifacts = [a.path for a in client.list_artifacts(record["run_id"], "keras")]
    assert artifacts == ["keras/model.keras"]
    report = evaluate_run(run)
    logged = client.get_run(record["run_id"])
    assert logged.data.metrics["test_accuracy"] == pytest.approx(report.accuracy)
    # A resumed run goes on in the same MLflow run.
    api.resume_run(run, more_epochs=1, detach=False)
    assert run.mlflow()["run_id"] == record["run_id"]
    assert len(client.get_metric_history(record["run_id"], "loss")) == 3


def test_an_unreachable_mlflow_server_does_not_fail_the_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    data = write_colours(tmp_path / "colours", train=20, test=4)
    config = TrainConfig(epochs=1, batch_size=16, seed=1)
    run = api.start_run(TINY, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    status = run.status()
    assert status.state == "completed" and run.mlflow() is None
    assert any("MLflow (http://127.0.0.1:9) could not be reached" in n for n in status.notes)


def test_without_the_variable_mlflow_is_never_imported(tmp_path):
    import subprocess
    import sys

    from support import ROOT

    code = (
        "import os, sys; os.environ.pop('MLFLOW_TRACKING_URI', None)\n"
        "from cnn_core.training import worker, tracking\n"
        "from cnn_core import evaluate\n"
        "print('mlflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr[-1000:]


def test_an_evaluation_mlflow_refuses_is_saved_and_said_so_in_the_cli_and_on_the_page(
    tmp_path, monkeypatch, capsys
):
    """The run's MLflow run is recorded (it trained while MLflow answered), but the server no
    longer answers when it is evaluated: the evaluation is saved, and the CLI, its --json and
    the Evaluate page say that MLflow, at its tracking URI, lacks it (real MLflow, no mock)."""
    pytest.importorskip("mlflow")
    from reliability.kit import make_model_run
    from support import open_page

    from cnn_core.cli import main
    from cnn_core.settings import runs_root
    from dashboard.text import plain

    uri = "http://127.0.0.1:9"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    data = write_colours(tmp_path / "colours", train=4, test=3)
    run = make_model_run(runs_root(), data_source=str(data))
    run.write_mlflow({"run_id": "0123456789abcdef", "experiment_id": "1", "tracking_uri": uri})
    assert main(["evaluate", run.name]) == 0
    warning = capsys.readouterr().err
    said = f"warning: MLflow (tracking URI {uri}) did not take this evaluation"
    assert said in warning and "the evaluation itself is saved in the run" in warning
    assert f"cnn-workbench evaluate {run.name} --force" in warning
    stored = run.evaluation()
    assert stored is not None and stored.not_logged and stored.not_logged in warning
    assert main(["evaluate", run.name, "--json"]) == 0  # the stored one: still not in MLflow
    assert json.loads(capsys.readouterr().out)["not_logged"] == stored.not_logged
    at = open_page("evaluate", run=run.name)
    assert plain(stored.not_logged) in [w.value for w in at.warning]
