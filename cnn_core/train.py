"""The training worker: trains one run in this process, recording everything in its directory.

`train_run(run)` waits for a free training slot (one run at a time per runs root by default), loads
the data, builds and compiles the model, and calls `model.fit` with `RunRecorder`, which writes the
history, progress, status and a resumable checkpoint after every epoch, ends training within one
batch of a stop request, and catches a NaN loss. A killed process loses at most the epoch in
progress: `train_run` on the same run continues from the last checkpoint.

This is the only module that imports Keras at import time; the dashboard never imports it (it
starts `python -m cnn_core worker RUN` as a separate process through `cnn_core.api`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cnn_core import access, runs, settings
from cnn_core._keras import keras
from cnn_core.balance import (
    IMBALANCE_HINT,
    balanced_class_weights,
    imbalance_ratio,
    stratified_split,
)
from cnn_core.builder import bfloat16_is_faster, build_model
from cnn_core.config import WARMUP_FRACTION, TrainConfig, effective_batch_size
from cnn_core.datasets import Dataset, load_dataset
from cnn_core.errors import UserError, exit_code_of
from cnn_core.feed import Feed
from cnn_core.files import atomic_path
from cnn_core.runs import Phase, Progress, Run, RunStatus, State, now_iso
from cnn_core.spec import ModelSpec
from cnn_core.terminal import terminal_safe

log = logging.getLogger("cnn_core.train")

PROGRESS_INTERVAL = 0.5  # seconds between progress.json writes within an epoch
QUEUE_POLL = 0.5  # seconds between looks at the queue


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside `fit` to end training within one batch of a stop request."""


class Diverged(Exception):  # noqa: N818
    """Raised inside `fit` when the loss is no longer a finite number."""

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        super().__init__(f"loss {loss} at epoch {epoch + 1}, batch {batch + 1}")
        self.epoch, self.batch, self.loss = epoch, batch, loss


# --- the queue --------------------------------------------------------------------------------


def max_parallel() -> int:
    """Runs that may train at once per runs root (`settings.max_parallel`)."""
    return settings.max_parallel()


@contextlib.contextmanager
def training_slot(run: Run, status: RunStatus) -> Iterator[bool]:
    """Wait, as `queued`, until this run is first in line and a slot is free; hold it.

    Yields False if a stop was requested while waiting. Slots are `flock`ed files, so a slot is
    freed by the kernel the moment its process dies, however it dies.
    """
    folder = run.path.parent / ".slots"
    folder.mkdir(exist_ok=True)
    handles = [open(folder / f"slot-{i}.lock", "a+") for i in range(max_parallel())]  # noqa: SIM115
    held = None
    try:
        while held is None:
            if run.stop_requested():
                yield False
                return
            # a shared server's user at their limit of runs training waits, passed by others
            allowed = access.may_train_now(run)
            ahead = runs.queued_ahead(run, status, eligible=access.may_train_now)
            if allowed and ahead < len(handles):
                for handle in handles:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    held = handle
                    break
            if held is None:
                run.write_progress(Progress(phase=Phase.QUEUED, runs_ahead=ahead))
                time.sleep(QUEUE_POLL)
        yield True
    finally:
        for handle in handles:
            handle.close()  # closing releases the lock


# --- the recorder -----------------------------------------------------------------------------


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
    ) -> None:
        super().__init__()
        self.run, self.status, self.rows = run, status, history
        self.batches, self.batch_size, self.epochs, self.echo = batches, batch_size, epochs, echo
        self.seconds_per_batch: float | None = None  # measured, never guessed
        self.validation_seconds = 0.0  # the last validation pass, for the epochs still to come
        self.test_start: float | None = None
        self.first_batch: tuple[int, float] | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.epoch_start = self.last_write = time.perf_counter()
        self.first_batch: tuple[int, float] | None = None  # where this epoch's timing starts
        self._progress(0, phase=Phase.TRAINING)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise Diverged(self.epoch, batch, float(loss))
        if self.run.stop_requested():
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
        self.status = replace(
            self.status, epochs_completed=epoch + 1, best_val_accuracy=best, best_epoch=best_epoch
        )
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


def describe_epoch(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch'] + 1}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['epoch_seconds']:.1f} s")
    return ", ".join(parts)


def write_status(run: Run, status: RunStatus) -> None:
    run.write_status(status)


def current_learning_rate(model: keras.Model) -> float:
    lr = model.optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


# --- checkpoints ------------------------------------------------------------------------------


def checkpoints(run: Run) -> list[tuple[int, Path]]:
    """(epochs completed, file) for every complete checkpoint, oldest first."""
    return run.checkpoints()


def save_checkpoint(run: Run, model: keras.Model, epochs_done: int) -> None:
    """Weights and optimizer state after `epochs_done` epochs; the name carries the epoch, and the
    file appears only once complete (temp, then rename), so a crash leaves the previous one."""
    with atomic_path(run.checkpoint_path(epochs_done), suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    for done, path in checkpoints(run):
        if done < epochs_done:
            with contextlib.suppress(OSError):
                path.unlink()


def save_model(run: Run, model: keras.Model) -> None:
    with atomic_path(run.model_path, suffix=".keras") as tmp:
        float32_model(model).save(tmp)


def float32_model(model: keras.Model) -> keras.Model:
    """`model` with every layer computing in float32, sharing its trained values.

    Mixed precision keeps every variable in float32 and only computes in bfloat16, so the copy
    holds exactly the trained weights; the saved model then predicts at full precision, and runs
    fast on machines without bfloat16 hardware (where bfloat16 is emulated)."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model

    def in_float32(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=in_float32)
    copy.set_weights(model.get_weights())
    return copy


# --- model and data ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="cnn_core")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle: warm up from peak/25 to the peak over the first 30% of steps, then anneal with
    a cosine to peak/25,000 (Smith & Topin's super-convergence recipe)."""

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.3) -> None:
        self.peak, self.total_steps, self.warmup = float(peak), int(total_steps), float(warmup)

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        step = ops.cast(step, "float32")
        up_steps = max(1.0, self.warmup * self.total_steps)
        down_steps = max(1.0, self.total_steps - up_steps)
        start, end = self.peak / 25.0, self.peak / 25_000.0
        rising = start + (self.peak - start) * ops.minimum(step / up_steps, 1.0)
        t = ops.clip((step - up_steps) / down_steps, 0.0, 1.0)
        falling = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * t))
        return ops.where(step < up_steps, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup}


def make_schedule(config: TrainConfig, total_steps: int) -> Any:
    """The learning rate: a number, or a schedule over `total_steps` optimizer steps."""
    total = max(1, total_steps)
    if config.lr_schedule == "cosine":
        warmup = int(total * WARMUP_FRACTION)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate / 100 if warmup else config.learning_rate,
            decay_steps=max(1, total - warmup),
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if config.lr_schedule == "one_cycle":
        return OneCycle(config.learning_rate, total)
    return config.learning_rate


def make_optimizer(config: TrainConfig, steps_per_epoch: int, epochs: int) -> Any:
    lr = make_schedule(config, steps_per_epoch * epochs)
    decay = config.weight_decay or None
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, weight_decay=decay)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=decay
        )
    return keras.optimizers.RMSprop(lr, momentum=config.momentum, weight_decay=decay)


def dtype_policy(config: TrainConfig) -> str | None:
    """The dtype policy: "mixed_bfloat16" if asked for, or "auto" and faster here; else None."""
    if config.mixed_precision == "auto":
        mixed = bfloat16_is_faster()
    else:
        mixed = bool(config.mixed_precision)
    return "mixed_bfloat16" if mixed else None


def split_indices(
    data: Dataset, config: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Which training images train and which validate (indices into `data.x_train`, sorted):
    the validation split, stratified and seeded, so every class is on both sides (when it has two
    images or more). The `limit` was applied when the data was loaded, before decoding. A dataset
    with its own validation folder (`data.x_val`) keeps it: None for the validation indices then."""
    labels = data.y_train
    subset = np.arange(len(labels))
    if data.x_val is not None and data.y_val is not None:
        return subset, None
    keep, held = stratified_split(labels[subset], config.validation_split, seed=seed)
    if len(keep) == 0:
        raise UserError(
            f"no training images are left after the validation split ({len(subset)} images, "
            f"validation_split {config.validation_split}); lower validation_split or raise limit."
        )
    return subset[keep], subset[held]


def split_data(
    data: Dataset, config: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Training and validation arrays, as `split_indices` chooses them."""
    train, val = split_indices(data, config, seed)
    if val is None:
        return data.x_train[train], data.y_train[train], data.x_val, data.y_val
    if len(val) == 0:
        return data.x_train[train], data.y_train[train], None, None
    return data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val]


def record_split(run: Run, data: Dataset, train: np.ndarray, val: np.ndarray | None) -> None:
    """Which files trained, validated and tested this run (relative to the source), so that
    what it was taught and tested on can be told later; a source without file names (CIFAR-10
    batches) records the training images' indices."""

    def names(files: tuple[str, ...], rows: np.ndarray) -> list[str] | list[int]:
        return [files[i] for i in rows] if files else rows.tolist()

    split = {
        "train": names(data.train_files, train),
        "validation": (list(data.val_files or ()) if val is None else names(data.train_files, val)),
        "validation_from": "a validation folder" if val is None else "the training images",
        "test": list(data.test_files) if data.test_files else len(data.y_test),
    }
    run.write_split(split)


def class_weights(
    config: TrainConfig, labels: np.ndarray, num_classes: int
) -> tuple[dict[int, float] | None, str | None]:
    """`model.fit`'s class_weight for the configuration, and a note on unbalanced classes."""
    ratio = imbalance_ratio(labels, num_classes)
    if config.class_weight == "balanced":
        note = f"classes weighted to balance them (the training images are {ratio:.1f}:1)."
        return balanced_class_weights(labels, num_classes), note if ratio > 1 else None
    if ratio > IMBALANCE_HINT:
        return None, (
            f"the classes are unbalanced ({ratio:.1f}:1 between the largest and the smallest); "
            'consider class weights ("Balance the classes" in the settings, or class_weight '
            '"balanced").'
        )
    return None, None


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How training a run ended: its final status, and the exit status for the process, chosen
    by the type of what ended it (`errors.exit_code_of`): 0 completed or stopped, 2 diverged or
    a problem the user can fix, 1 a bug."""

    status: RunStatus
    exit_code: int = 0


def train_run(run: Run, *, more_epochs: int | None = None, echo: bool = False) -> Outcome:
    """Train (or resume) `run` in this process; return how it ended. Never raises for problems
    of the run itself: they end up in status.json, where the dashboard reads them."""
    status = run.raw_status() or RunStatus(created_at=now_iso(), queued_at=now_iso())
    pid = os.getpid()
    target = status.epochs_completed + more_epochs if more_epochs else None
    status = replace(
        status,
        state=State.QUEUED,
        queued_at=status.queued_at if status.state == State.QUEUED else now_iso(),
        pid=pid,
        pid_started=runs.process_start_time(pid),
        error=None,
        ended_at=None,
        epochs_target=target or status.epochs_target or run.config().epochs,
    )
    write_status(run, status)
    runs.remove_dead_writers_files(run.path)  # a killed predecessor's half-written files
    _attach_log(run, echo=echo)
    try:
        with training_slot(run, status) as go:
            if not go:
                return Outcome(_finish(run, status, State.STOPPED, error=None))
            status = replace(status, state=State.RUNNING, started_at=now_iso())
            write_status(run, status)
            status = _train(run, status, echo=echo)
            diverged = status.state == State.DIVERGED
            return Outcome(status, UserError.exit_code if diverged else 0)
    except Exception as exc:
        failed = _finish(run, _recorded(run, status), State.FAILED, error=_failure(exc))
        return Outcome(failed, exit_code_of(exc))


def _failure(exc: Exception) -> str:
    """What status.json says about the exception that ended training (logged with its
    traceback in train.log unless it is the user's to fix)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (
            "the disk is full, so the checkpoint could not be written; free some space and "
            "resume the run (the last complete checkpoint is kept)."
        )
    log.exception("training failed")
    if isinstance(exc, OSError):
        return f"cannot write the run's files: {exc}."
    return f"unexpected error: {type(exc).__name__}: {str(exc)[:300]} (see train.log)."


def _recorded(run: Run, status: RunStatus) -> RunStatus:
    """What this process last wrote to status.json (epochs done, seed, notes), else `status`:
    a failure after some epochs must not report fewer than the run's history and checkpoint."""
    latest = run.raw_status()
    return latest if latest is not None and latest.pid == status.pid else status


def _load_data(
    run: Run, spec: ModelSpec, config: TrainConfig
) -> tuple[ModelSpec, Dataset, list[str]]:
    """The run's dataset, loaded as its configuration says (test split, limit); the spec sized
    to the data's classes (and rewritten in the run when it changes); dataset.json completed;
    and the notes that tell the user what was found."""
    run.write_progress(Progress(phase=Phase.LOADING))
    source = run.dataset().get("source")
    h, w, c = spec.input_shape
    data = load_dataset(
        source, image_size=(h, w), channels=c, test_split=config.test_split, limit=config.limit
    )
    notes: list[str] = []
    if data.skipped:
        notes.append(
            f"{data.skipped} file(s) in the class folders were skipped: not images, or "
            "unreadable (the dataset check on the Train page lists them)."
        )
    if spec.num_classes != len(data.class_names):
        notes.append(
            f"the spec had {spec.num_classes} classes, the data has {len(data.class_names)}; "
            "the classifier was sized to the data."
        )
        spec = replace(spec, num_classes=len(data.class_names))
        run.write_spec(spec)
    dataset_info = {**run.dataset(), "class_names": list(data.class_names)}
    dataset_info.update(train_images=len(data.y_train), test_images=len(data.y_test))
    dataset_info.update(layout=data.layout, files_found=data.found, files_skipped=data.skipped)
    run.write_dataset(dataset_info)
    if data.layout:
        notes.append(f"dataset: {data.layout}.")
    if config.limit is not None:
        val_images = len(data.y_val) if data.y_val is not None else 0
        notes.append(
            f"limit {config.limit}: a quick try on {len(data.y_train)} training, {val_images} "
            f"validation-folder and {len(data.y_test)} test images, chosen per class before "
            "decoding."
        )
    return spec, data, notes


def _train(run: Run, status: RunStatus, *, echo: bool) -> RunStatus:
    spec, config = run.spec(), run.config()
    seed = config.seed if config.seed is not None else status.seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    status = replace(status, seed=seed)
    keras.utils.set_random_seed(seed)

    spec, data, data_notes = _load_data(run, spec, config)
    notes = [*status.notes, *data_notes]

    train, val = split_indices(data, config, seed)
    record_split(run, data, train, val)
    y_train = data.y_train[train]  # labels only: the images are read a batch at a time
    x_val, y_val, val_rows = data.x_val, data.y_val, None  # a validation folder, or none
    if val is None and data.y_val is not None:
        val_rows = np.arange(len(data.y_val))
    elif val is not None and len(val):
        x_val, y_val, val_rows = data.x_train, data.y_train, val
    else:
        x_val = y_val = None
    batch_size, warning = effective_batch_size(config, len(y_train))
    class_weight, balance_note = class_weights(config, y_train, len(data.class_names))
    if balance_note and balance_note not in notes:
        notes.append(balance_note)
    if warning and warning not in notes:
        notes.append(warning)
    status = replace(status, notes=tuple(dict.fromkeys(notes)))
    write_status(run, status)

    steps = math.ceil(len(y_train) / batch_size)
    target = status.epochs_target
    policy = dtype_policy(config)
    model = build_model(spec, augmentation=config.augmentation, dtype_policy=policy)
    one_hot = spec.num_classes if config.label_smoothing else None  # made per batch by the feed
    if config.label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=make_optimizer(config, steps, target),
        loss=loss,
        metrics=[metric],
        steps_per_execution=config.steps_per_execution,
    )

    history = run.history()
    initial_epoch = 0
    found = checkpoints(run)
    if found:
        initial_epoch, path = found[-1]
        model.optimizer.build(model.trainable_variables)
        model.load_weights(path)
        log.info("resuming from %s (%d epochs done)", path.name, initial_epoch)
    history = [row for row in history if row["epoch"] < initial_epoch]
    run.write_history(history)
    status = replace(status, epochs_completed=initial_epoch)
    write_status(run, status)
    if initial_epoch >= target:
        return _finish(run, status, State.COMPLETED, model=model)

    recorder = RunRecorder(
        run, status, history, batches=steps, batch_size=batch_size, epochs=target, echo=echo
    )
    callbacks: list[keras.callbacks.Callback] = [recorder]
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if x_val is not None else "loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    log.info(
        "training %s: %d images (%d for validation), batch %d, epochs %d..%d, seed %d, %s",
        spec.name,
        len(y_train),
        0 if val_rows is None else len(val_rows),
        batch_size,
        initial_epoch + 1,
        target,
        seed,
        "bfloat16 mixed precision" if policy else "float32",
    )
    feed = Feed(
        data.x_train,
        data.y_train,
        train,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        epoch=initial_epoch,
        num_classes=one_hot,
        class_weight=class_weight,
    )
    val_feed = None
    if x_val is not None and y_val is not None and val_rows is not None and len(val_rows):
        val_feed = Feed(x_val, y_val, val_rows, batch_size=batch_size, num_classes=one_hot)
    try:
        model.fit(
            feed,
            epochs=target,
            initial_epoch=initial_epoch,
            validation_data=val_feed,
            validation_freq=config.validation_freq,
            shuffle=False,  # the feed shuffles its rows itself, seeded, every epoch
            callbacks=callbacks,
            verbose=0,
        )
    except StopRequested:
        return _finish(run, recorder.status, State.STOPPED, model=model)
    except Diverged as exc:
        return _diverged(run, recorder.status, model, exc, config)
    status = recorder.status
    if recorder.status.epochs_completed < target:
        status = replace(
            status,
            notes=(
                *status.notes,
                f"early stopping after {status.epochs_completed} epochs: the "
                "validation loss stopped improving; the best weights were kept.",
            ),
        )
    return _finish(run, status, State.COMPLETED, model=model)


def _diverged(
    run: Run, status: RunStatus, model: keras.Model, exc: Diverged, config: TrainConfig
) -> RunStatus:
    found = checkpoints(run)
    kept = "no epoch had completed, so there are no good weights to keep"
    if found:
        model.load_weights(found[-1][1])
        save_model(run, model)
        kept = f"the weights after epoch {found[-1][0]} (the last good one) are kept"
    lr = config.learning_rate
    value = "NaN (not a number)" if math.isnan(exc.loss) else "infinite"
    error = (
        f"training diverged: the loss became {value} in epoch {exc.epoch + 1}, batch "
        f"{exc.batch + 1}. Lower the learning rate (now {lr:g}; try {lr / 10:g}), or add "
        f"BatchNormalization; {kept}."
    )
    return _finish(run, status, State.DIVERGED, error=error)


def _finish(
    run: Run,
    status: RunStatus,
    state: State,
    *,
    error: str | None = None,
    model: keras.Model | None = None,
) -> RunStatus:
    if model is not None:
        save_model(run, model)
    status = replace(status, state=state, ended_at=now_iso(), error=error)
    write_status(run, status)
    with contextlib.suppress(OSError):
        run.write_progress(Progress(phase=Phase(state)))
        run.clear_stop_request()
    log.info("run %s: %s%s", run.name, state, f" ({error})" if error else "")
    return status


class _TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


def _attach_log(run: Run, *, echo: bool) -> None:
    handler = logging.FileHandler(run.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    if echo:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(_TerminalFormatter())  # warnings name class folders and files
        stream.setLevel(logging.WARNING)
        if not settings.debug():  # the terminal gets the run's one-line error;
            stream.addFilter(lambda record: record.exc_info is None)  # train.log the traceback
        log.addHandler(stream)
