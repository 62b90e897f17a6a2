"""The recorder: the Keras callback that writes a run's history, progress, status and
checkpoint as training goes, ends training within one batch of a stop request, and catches a
loss that is no longer a number."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cnn_core._keras import keras
from cnn_core.runs import Phase, Progress, Run, RunStatus
from cnn_core.training.checkpoints import save_checkpoint

log = logging.getLogger("cnn_core.train")  # one logger for the worker (`_attach_log`)

PROGRESS_INTERVAL = 0.5  # seconds between progress.json writes within an epoch


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside `fit` to end training within one batch of a stop request."""


class Diverged(Exception):  # noqa: N818
    """Raised inside `fit` when the loss is no longer a finite number."""

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        super().__init__(f"loss {loss} at epoch {epoch + 1}, batch {batch + 1}")
        self.epoch, self.batch, self.loss = epoch, batch, loss


class RunRecorder(keras.callbacks.Callback):
    """Writes history.csv, progress.json, status.json and a checkpoint as training goes."""

    def __init__(
        self,
        run: Run,
        status: RunStatus,
        history: list[dict[str, Any]],
        *,
        batches: int,
        batch_size: int,
        epochs: int,
        echo: bool,
        agree: Callable[[bool], bool] = bool,
    ) -> None:
        super().__init__()
        # agree: every process of a run trained by several gets the first one's answer (a stop)
        self.agree = agree
        self.run, self.status, self.rows = run, status, history
        self.batches, self.batch_size, self.epochs, self.echo = batches, batch_size, epochs, echo
        self.seconds_per_batch: float | None = None  # measured, never guessed
        self.validation_seconds = 0.0  # the last validation pass, for the epochs still to come
        self.test_start: float | None = None
        self.first_batch: tuple[int, float] | None = None
        self.epoch = 0
        self.first_loss: float | None = None  # this part's first batch's loss

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.epoch_start = self.last_write = time.perf_counter()
        self.first_batch: tuple[int, float] | None = None  # where this epoch's timing starts
        self._progress(0, phase=Phase.TRAINING)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise Diverged(self.epoch, batch, float(loss))
        if self.first_loss is None and loss is not None:
            self.first_loss = float(loss)
        if self.agree(self.run.writes and self.run.stop_requested()):
            raise StopRequested
        now = time.perf_counter()
        if self.first_batch is None:
            # The first batch pays for tracing and compiling the step (seconds, on a CPU): time
            # per batch is measured from its end, or the estimate starts many times too long.
            self.first_batch = (batch + 1, now)
        if now - self.last_write >= PROGRESS_INTERVAL:
            self.last_write = now
            self._progress(batch + 1, phase=Phase.TRAINING)

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.test_start = time.perf_counter()
        self._progress(self.batches, phase=Phase.VALIDATING)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        seconds = now - self.epoch_start
        if self.test_start is not None:
            self.validation_seconds = now - self.test_start
            self.test_start = None
        logs = dict(logs or {})
        if not math.isfinite(float(logs.get("loss", 0.0))):
            raise Diverged(epoch, self.batches - 1, float(logs["loss"]))
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items() if k != "learning_rate"}}
        row["epoch_seconds"] = round(seconds, 4)
        row["lr"] = current_learning_rate(self.model)
        save_checkpoint(self.run, self.model, epoch + 1)
        self.rows[:] = [r for r in self.rows if r["epoch"] < epoch] + [row]
        self.run.write_history(self.rows)
        best, best_epoch = self.status.best_val_accuracy, self.status.best_epoch
        val = row.get("val_accuracy")
        if val is not None and (best is None or val > best):
            best, best_epoch = val, epoch
        per_batch = self.seconds_per_batch
        self.status = replace(
            self.status,
            epochs_completed=epoch + 1,
            best_val_accuracy=best,
            best_epoch=best_epoch,
            images_per_second=round(self.batch_size / per_batch, 1) if per_batch else None,
        )
        if epoch == 0:  # after the run's first epoch: is it learning at all?
            stalled = not_learning(row, self.first_loss, self.model.output_shape[-1], row["lr"])
            self.status = replace(self.status, not_learning=stalled)
        self.run.write_status(self.status)
        self._progress(self.batches, phase=Phase.EPOCH_DONE)
        if self.echo:
            print(describe_epoch(row, self.epochs), flush=True)
        log.info(describe_epoch(row, self.epochs))

    def _progress(self, batch: int, *, phase: Phase) -> None:
        now = time.perf_counter()
        if self.first_batch is not None and batch > self.first_batch[0]:
            done, since = self.first_batch
            self.seconds_per_batch = (now - since) / (batch - done)
        eta = None  # "estimating" until batches after the first have been timed
        if self.seconds_per_batch is not None:
            epoch_seconds = self.seconds_per_batch * self.batches + self.validation_seconds
            left_in_epoch = self.seconds_per_batch * (self.batches - batch)
            if phase == Phase.TRAINING:
                left_in_epoch += self.validation_seconds
            eta = left_in_epoch + epoch_seconds * (self.epochs - self.epoch - 1)
        per_batch = self.seconds_per_batch
        self.run.write_progress(
            Progress(
                phase=phase,
                epoch=self.epoch + 1,
                epochs=self.epochs,
                batch=batch,
                batches=self.batches,
                images_per_second=round(self.batch_size / per_batch, 1) if per_batch else None,
                eta_seconds=round(eta, 1) if eta is not None else None,
            )
        )


NOT_MOVED = 0.02  # a loss within 2% of its first value after an epoch has not moved
BLOWN_UP = 10.0  # a loss this many times its first value after an epoch has blown up
CHANCE_MARGIN = 0.02  # accuracy within 2 points of 1/classes sits at chance


def not_learning(
    row: dict[str, Any], first_loss: float | None, classes: int, learning_rate: float
) -> str | None:
    """Why a run seems not to learn after its first epoch (its history row), or None: the
    training loss has not moved from its first batch's, or the accuracy sits at chance."""
    loss, accuracy = row.get("loss"), row.get("accuracy")
    chance = 1 / max(classes, 1)
    still = first_loss is not None and loss is not None and first_loss > 0
    blown = still and loss > BLOWN_UP * first_loss
    still = still and abs(first_loss - loss) <= NOT_MOVED * first_loss
    at_chance = accuracy is not None and classes > 1 and accuracy <= chance + CHANCE_MARGIN
    if still:
        seen = f"the training loss stayed at {loss:.4f} (its first batch: {first_loss:.4f})"
    elif blown:
        seen = f"the training loss rose to {loss:.4g} (its first batch: {first_loss:.4f})"
    elif at_chance:
        seen = f"the training accuracy is {accuracy:.1%}, chance for {classes} classes"
    else:
        return None
    return (
        f"Not learning: after the first epoch {seen}. The learning rate ({learning_rate:g}) is "
        "the likely cause: too high a rate kills the network (its loss then sits at chance), "
        "too low barely moves it. Try the learning-rate finder (on the Train page, or "
        "cnn-workbench lr-find), or check that the labels match the images."
    )


def describe_epoch(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch'] + 1}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['epoch_seconds']:.1f} s")
    return ", ".join(parts)


def current_learning_rate(model: keras.Model) -> float:
    lr = model.optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
