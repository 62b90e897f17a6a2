"""What a run reports to the tools people already use, as it trains.

- **TensorBoard**: event files in the run's folder (Keras' own `TensorBoard` callback: loss,
  accuracy and learning rate per epoch, and the model), so `tensorboard --logdir runs` shows
  every run by its name.
- **MLflow**, only when `MLFLOW_TRACKING_URI` is set (else `mlflow` is never imported): one
  MLflow run per run (its id kept in the run's folder, so a resumed run continues the same one),
  with the run's settings and architecture as parameters, each epoch's figures as metrics, the
  model as an artifact, and the test-set evaluation once it is made (`log_evaluation`).

Only the run's writer reports (not the other processes of a run trained by several). Neither
may fail a run: a missing package or an unreachable MLflow server turns its part off with a
note in the run (and a line in its log), and training goes on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnn_core._keras import keras
from cnn_core.config import TrainConfig
from cnn_core.layers import format_shape
from cnn_core.runs import Run, RunStatus, State
from cnn_core.spec import ModelSpec

log = logging.getLogger("cnn_core.train")  # one logger for the worker (`_attach_log`)

MLFLOW_ENV = "MLFLOW_TRACKING_URI"
ARTIFACTS = "keras"  # the MLflow run's artifact folder that holds model.keras
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
EXPERIMENT = "cnn-workbench"  # the experiment's name when MLFLOW_EXPERIMENT_NAME is not set
# How MLflow names a run's end, by the state it ended in.
MLFLOW_STATUS = {State.COMPLETED: "FINISHED", State.STOPPED: "KILLED"}


def _tensorboard(run: Run) -> keras.callbacks.Callback | None:
    """Keras' TensorBoard callback for the run, or None (logged) where TensorFlow or TensorBoard
    cannot be imported: the callback writes through TensorFlow's summary ops, whatever the
    backend (a JAX machine without TensorFlow trains without event files)."""
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as exc:
        log.info("TensorBoard event files are off: %s", exc)
        return None
    return _EpochBoard(log_dir=str(run.tensorboard_dir), write_graph=True, update_freq="epoch")


class _EpochBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, less its per-batch work when it writes per epoch: Keras'
    own `on_train_batch_end` calls `tf.summary.scalar` for every figure of every batch even
    with update_freq="epoch", where no writer is the default and the call writes nothing (two
    no-op summary ops a batch: 20-90 ms an epoch of 157 batches, bench.bookkeeping). What
    Keras does after the first batch (the training graph, where the step is a `tf.function`
    that has one) is kept, as is everything when batches are written or profiled."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        per_batch = self.update_freq != "epoch" or self.write_steps_per_second
        if per_batch or self._should_trace:  # batches are written or profiled: Keras' own
            super().on_train_batch_end(batch, logs)
        elif self._should_write_train_graph:  # the first batch: the graph, not the figures
            super().on_train_batch_end(batch, None)


def mlflow_wanted() -> bool:
    return bool(os.environ.get(MLFLOW_ENV, "").strip())


@dataclass
class Tracking:
    """The run's reporters: Keras callbacks while it fits, then `finish` once it has ended."""

    run: Run
    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    mlflow: _MlflowRun | None = None
    notes: list[str] = field(default_factory=list)  # for the run's status: what is off and why

    @classmethod
    def start(cls, run: Run, config: TrainConfig, spec: ModelSpec) -> Tracking:
        tracking = cls(run)
        if not run.writes:
            return tracking
        board = _tensorboard(run)
        if board is not None:
            tracking.callbacks.append(board)
        if mlflow_wanted():
            tracking.mlflow = _MlflowRun.begin(run, config, spec, tracking.notes)
            if tracking.mlflow is not None:
                tracking.callbacks.append(_MlflowEpochs(tracking.mlflow))
        return tracking

    def close(self) -> None:
        """Flush and close what the callbacks write, however fit ended (a stop request or a
        divergence ends it without Keras' own end of training; a second close does nothing)."""
        for callback in self.callbacks:
            if isinstance(callback, keras.callbacks.TensorBoard):
                with contextlib.suppress(Exception):
                    callback.on_train_end()

    def finish(self, status: RunStatus) -> None:
        """After the run has ended (its model saved): the model to MLflow, and its end."""
        if self.mlflow is not None:
            self.mlflow.end(self.run, status)


@dataclass
class _MlflowRun:
    """This run's MLflow run, opened in this process; every call is guarded (`_safely`)."""

    client: Any
    run_id: str
    notes: list[str]
    broken: bool = False

    @classmethod
    def begin(
        cls, run: Run, config: TrainConfig, spec: ModelSpec, notes: list[str]
    ) -> _MlflowRun | None:
        if importlib.util.find_spec("mlflow") is None:
            notes.append(
                f"{MLFLOW_ENV} is set but MLflow is not installed, so this run is not in MLflow: "
                "pip install mlflow (or mlflow-skinny, with sqlalchemy for a SQLite store)."
            )
            return None
        try:
            import mlflow

            client = mlflow.tracking.MlflowClient(tracking_uri=os.environ[MLFLOW_ENV])
            known = (run.mlflow() or {}).get("run_id")
            if known:  # a resumed run goes on in the same MLflow run
                client.update_run(known, status="RUNNING")
                return cls(client, known, notes)
            experiment = _experiment(client)
            created = client.create_run(
                experiment, run_name=run.name, tags={"cnn_workbench.run": run.name}
            )
            tracked = cls(client, created.info.run_id, notes)
            run.write_mlflow(
                {
                    "run_id": tracked.run_id,
                    "experiment_id": experiment,
                    "tracking_uri": os.environ[MLFLOW_ENV],
                }
            )
            tracked.log_params(config, spec)
            return tracked
        except Exception as exc:  # why: a server that is down must not fail the run
            _unreachable(notes, exc)
            return None

    def log_params(self, config: TrainConfig, spec: ModelSpec) -> None:
        params = {key: _param(value) for key, value in _flat(config.to_dict()).items()}
        params.update({"architecture": spec.name, "input_shape": format_shape(spec.input_shape)})
        params.update({f"layer_{i + 1}": _layer(layer) for i, layer in enumerate(spec.layers)})
        from mlflow.entities import Param

        self._safely(
            self.client.log_batch, self.run_id, params=[Param(k, v) for k, v in params.items()]
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        # Synchronous: MLflow's background logging thread slowed the training beside it by
        # half (bench.bookkeeping, A/B), where writing an epoch's figures takes milliseconds.
        self._safely(self.client.log_batch, self.run_id, metrics=batch)

    def end(self, run: Run, status: RunStatus) -> None:
        if run.model_path.is_file():
            self._safely(self.client.log_artifact, self.run_id, str(run.model_path), ARTIFACTS)
        self._safely(
            self.client.set_terminated, self.run_id, MLFLOW_STATUS.get(status.state, "FAILED")
        )

    def _safely(self, call: Any, *args: Any, **kwargs: Any) -> None:
        if self.broken:
            return
        try:
            call(*args, **kwargs)
        except Exception as exc:  # why: as in `begin`, MLflow must not fail the run
            self.broken = True
            _unreachable(self.notes, exc)


class _MlflowEpochs(keras.callbacks.Callback):
    """Each epoch's figures (loss, accuracy, validation, learning rate) to MLflow."""

    def __init__(self, tracked: _MlflowRun) -> None:
        super().__init__()
        self.tracked = tracked

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        figures = {key: value for key, value in (logs or {}).items() if _number(value)}
        self.tracked.log_metrics(figures, step=epoch)


def log_evaluation(run: Run, figures: Mapping[str, float]) -> str | None:
    """The test-set evaluation into the run's MLflow run (one call), where it has one and MLflow
    is set up; else what went wrong, naming MLflow and its tracking URI (the evaluation itself
    stands: the caller says so)."""
    record = run.mlflow()
    if not mlflow_wanted() or not record or importlib.util.find_spec("mlflow") is None:
        return None
    uri = os.environ[MLFLOW_ENV]
    try:
        import time

        import mlflow
        from mlflow.entities import Metric

        client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, 0) for key, value in figures.items()]
        client.log_batch(record["run_id"], metrics=metrics)
    except Exception as exc:  # why: a server that is down must not lose the evaluation
        log.warning("run %s: the evaluation could not be logged to MLflow: %s", run.name, exc)
        return (
            f"MLflow (tracking URI {uri}) did not take this evaluation "
            f"({type(exc).__name__}: {str(exc)[:160]})"
        )
    return None


def _experiment(client: Any) -> str:
    name = os.environ.get(EXPERIMENT_ENV, "").strip() or EXPERIMENT
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _unreachable(notes: list[str], exc: Exception) -> None:
    text = f"MLflow ({os.environ.get(MLFLOW_ENV)}) could not be reached or refused the run "
    text += f"({type(exc).__name__}: {str(exc)[:160]}); the run trains on without it."
    log.warning(text)
    if text not in notes:
        notes.append(text)


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _param(value: Any) -> str:
    return "null" if value is None else str(value)[:500]


def _layer(layer: Any) -> str:
    return " ".join([layer.type, *(f"{k}={v}" for k, v in layer.params.items())])[:500]


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
