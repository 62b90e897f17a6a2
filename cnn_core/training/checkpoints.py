"""Checkpoints and the saved model: weights and optimizer state after every epoch (the name
carries the epoch; a resume starts from the last complete one), and model.keras in float32."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cnn_core._keras import keras
from cnn_core.files import atomic_path
from cnn_core.runs import Run

log = logging.getLogger("cnn_core.train")  # one logger for the worker (`_attach_log`)


def checkpoints(run: Run) -> list[tuple[int, Path]]:
    """(epochs completed, file) for every complete checkpoint, oldest first."""
    return run.checkpoints()


def save_checkpoint(run: Run, model: keras.Model, epochs_done: int) -> None:
    """Weights and optimizer state after `epochs_done` epochs; the name carries the epoch, and the
    file appears only once complete (temp, then rename), so a crash leaves the previous one.
    Only the run's writer keeps it (see `_gathered_only`)."""
    if not run.writes:
        _gathered_only(model.save_weights, ".weights.h5")
        return
    with atomic_path(run.checkpoint_path(epochs_done), suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    for done, path in checkpoints(run):
        if done < epochs_done:
            with contextlib.suppress(OSError):
                path.unlink()


def _gathered_only(save: Callable[[str], None], suffix: str) -> None:
    """A process other than the first of a run trained by several: saving gathers the weights
    from every process (a collective all of them must join), so it saves too, into a temporary
    folder outside the run that is deleted at once."""
    with tempfile.TemporaryDirectory(prefix="cnn-core-follower-") as folder:
        save(os.path.join(folder, f"discarded{suffix}"))


def save_model(run: Run, model: keras.Model) -> None:
    if not run.writes:
        _gathered_only(portable_model(model).save, ".keras")
        return
    with atomic_path(run.model_path, suffix=".keras") as tmp:
        portable_model(model).save(tmp)


def portable_model(model: keras.Model) -> keras.Model:
    """`model` as it is saved: every layer computing in float32 and of Keras' own class, sharing
    its trained values.

    Mixed precision keeps every variable in float32 and only computes in bfloat16, so the copy
    holds exactly the trained weights; the saved model then predicts at full precision, and runs
    fast on machines without bfloat16 hardware (where bfloat16 is emulated). A layer built as a
    faster subclass of a Keras layer (a kind's `trains_as`) is saved as Keras' own (its
    `keras_own`), so the file loads in plain Keras."""
    from cnn_core.builder import keras_own_class

    if all(
        layer.dtype_policy.name == "float32" and keras_own_class(layer) is type(layer)
        for layer in model.layers
    ):
        return model

    def portable(layer: keras.layers.Layer) -> keras.layers.Layer:
        return keras_own_class(layer).from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=portable)
    copy.set_weights(model.get_weights())
    return copy


def resume_from_checkpoint(run: Run, model: keras.Model) -> int:
    """Load the run's last complete checkpoint into the compiled `model`, if it has one; return
    the epochs it holds (0: training starts afresh)."""
    found = checkpoints(run)
    if not found:
        return 0
    epochs_done, path = found[-1]
    model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    log.info("resuming from %s (%d epochs done)", path.name, epochs_done)
    return epochs_done
