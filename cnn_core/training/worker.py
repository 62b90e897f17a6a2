"""The worker's main: `train_run(run)` trains (or resumes) one run in this process, from the
queue to the final status, and says how it ended (`Outcome`)."""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import random
import sys
from dataclasses import dataclass, replace

from cnn_core import runs, settings
from cnn_core._keras import keras
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig, check_spec_support, small_size
from cnn_core.errors import UserError, exit_code_of
from cnn_core.resizing import SmallImageEpochs, progressive_layer
from cnn_core.runs import FollowingRun, Phase, Progress, Run, RunStatus, State, now_iso
from cnn_core.spec import ModelSpec
from cnn_core.terminal import terminal_safe
from cnn_core.training.checkpoints import checkpoints, resume_from_checkpoint, save_model
from cnn_core.training.data import RunPlan, plan_run
from cnn_core.training.fine_tune import checkpoint_unfrozen, fit_phases, unfreeze
from cnn_core.training.fit import augment_in_feed, fit_options
from cnn_core.training.optim import compile_model, dtype_policy
from cnn_core.training.placement import Placement, place, process_layout
from cnn_core.training.queue import Slot, enqueue, training_slot
from cnn_core.training.recorder import Diverged, RunRecorder, StopRequested
from cnn_core.training.tracking import Tracking

log = logging.getLogger("cnn_core.train")  # one logger for the worker (`_attach_log`)


@dataclass(frozen=True)
class Outcome:
    """How training a run ended: its final status, and the exit status for the process, chosen
    by the type of what ended it (`errors.exit_code_of`): 0 completed or stopped, 2 diverged or
    a problem the user can fix, 1 a bug."""

    status: RunStatus
    exit_code: int = 0


def train_run(
    run: Run, *, more_epochs: int | None = None, echo: bool = False, slot: Slot | None = None
) -> Outcome:
    """Train (or resume) `run` in this process; return how it ended. Never raises for problems
    of the run itself: they end up in status.json, where the dashboard reads them.

    It waits in the queue (`training_slot`) unless given the `slot` this process already holds
    (the worker waits before it imports Keras, so that the GPUs it is given count).
    In a run trained by several processes (`keras.distribution.initialize`), every process calls
    this; the first writes the run directory, the others only their own log (`FollowingRun`),
    and none waits in the queue: whoever started them on the cluster scheduled them."""
    processes, process_id = process_layout()
    if process_id:
        run = FollowingRun(run.path, process_id)
    status = enqueue(run, more_epochs=more_epochs)
    if run.writes:
        runs.remove_dead_writers_files(run.path)  # a killed predecessor's half-written files
    _attach_log(run, echo=echo)
    if slot is not None or processes > 1:
        waiting = contextlib.nullcontext(slot or Slot())
    else:
        waiting = training_slot(run, status)
    try:
        with waiting as go:
            if go is None:
                return Outcome(_finish(run, status, State.STOPPED, error=None))
            if go.gpus is not None:
                shown = os.environ.get("CUDA_VISIBLE_DEVICES")
                gpus = ", ".join(map(str, go.gpus))
                log.info("the queue gave it GPU %s (CUDA_VISIBLE_DEVICES=%s)", gpus, shown)
            status = replace(status, state=State.RUNNING, started_at=now_iso(), gpus=go.gpus)
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


def _train(run: Run, status: RunStatus, *, echo: bool) -> RunStatus:
    config = run.config()
    placement = place(config)
    if config.scale_lr and placement.count > 1:
        config = replace(config, learning_rate=config.learning_rate * placement.count)
    seed = config.seed if config.seed is not None else status.seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    status = replace(status, seed=seed, devices=placement.count, placement=placement.describe())
    keras.utils.set_random_seed(seed)
    plan, notes = plan_run(run, config, seed, devices=placement.count, notes=status.notes)
    check_spec_support(config, plan.spec)  # a run made before the check, or by hand
    tracking = Tracking.start(run, config, plan.spec)  # TensorBoard; MLflow where it is set up
    status = replace(status, notes=tuple(dict.fromkeys((*notes, *tracking.notes))))
    write_status(run, status)
    try:
        with placement.scope():
            status = _fit(run, status, config, plan, placement, tracking, echo=echo)
    finally:
        tracking.finish(run.raw_status() or status)  # the model, and how it ended
    return status


def _fit(
    run: Run,
    status: RunStatus,
    config: TrainConfig,
    plan: RunPlan,
    placement: Placement,
    tracking: Tracking,
    *,
    echo: bool,
) -> RunStatus:
    spec, steps, batch_size = plan.spec, plan.steps, plan.batch_size
    target = status.epochs_target
    policy = dtype_policy(config)
    model = build_model(
        spec,
        augmentation=config.augmentation,
        dtype_policy=policy,
        small_images=bool(config.small_image_epochs),
        augment_in_feed=augment_in_feed(config),
    )
    found = checkpoints(run)
    # The checkpoint's optimizer state fits the phase that wrote it: compile for that one.
    unfrozen = checkpoint_unfrozen(config, found[-1][0] if found else 0)
    if unfrozen:
        unfreeze(model)
    compile_model(model, config, steps_per_epoch=steps, epochs=target, unfrozen=unfrozen)

    initial_epoch = resume_from_checkpoint(run, model)
    history = [row for row in run.history() if row["epoch"] < initial_epoch]
    run.write_history(history)
    status = replace(status, epochs_completed=initial_epoch)
    write_status(run, status)
    if initial_epoch >= target:
        return _finish(run, status, State.COMPLETED, model=model)

    recorder = RunRecorder(
        run,
        status,
        history,
        batches=steps,
        batch_size=batch_size,
        epochs=target,
        echo=echo,
        agree=placement.agree,
    )
    log.info(
        "training %s: %d images (%d for validation), batch %d, epochs %d..%d, seed %d, %s, on %s",
        spec.name,
        len(plan.train),
        0 if plan.val_rows is None else len(plan.val_rows),
        batch_size,
        initial_epoch + 1,
        target,
        status.seed,
        "bfloat16 mixed precision" if policy else "float32",
        placement.describe(),
    )
    callbacks = [*small_image_epochs(model, config, spec), recorder, *tracking.callbacks]
    seed = status.seed or 0
    options = fit_options(plan, config, placement, callbacks, epoch=initial_epoch, seed=seed)
    try:
        fit_phases(model, config, recorder, options, unfrozen=unfrozen, steps=steps)
    except StopRequested:
        return _finish(run, recorder.status, State.STOPPED, model=model)
    except Diverged as exc:
        return _diverged(run, recorder.status, model, exc, config)
    finally:
        tracking.close()  # a stop or a divergence ends fit before its writers close
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


def small_image_epochs(
    model: keras.Model, config: TrainConfig, spec: ModelSpec
) -> list[keras.callbacks.Callback]:
    """Progressive resizing's callback for a run with small-image epochs, else none."""
    layer = progressive_layer(model)
    if not config.small_image_epochs or layer is None:
        return []
    height, width = spec.input_shape[:2]
    size = small_size(height, width, config.small_image_scale)
    log.info(
        "the first %d epochs train on %dx%d images (small_image_scale %g)",
        config.small_image_epochs,
        *size,
        config.small_image_scale,
    )
    return [SmallImageEpochs(layer, epochs=config.small_image_epochs, size=size)]


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


def write_status(run: Run, status: RunStatus) -> None:
    run.write_status(status)


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
