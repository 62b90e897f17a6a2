"""Fine-tuning's two phases, as fastai's `fine_tune`: the first `fine_tune` epochs train with the
pretrained backbone frozen, the rest with it unfrozen at a lower rate (`optim.make_optimizer`).

Which phase an epoch belongs to is a rule of its number alone, so a run resumed from any
checkpoint continues in the right one, its optimizer compiled for the phase that wrote the
checkpoint (whose state it holds) before it is loaded. Unfrozen, a pretrained backbone's
BatchNormalization layers stay frozen, and so in inference mode (Keras' transfer-learning
guide): their statistics are ImageNet's (or the weights file's), and batches of a few photos
would spoil them. A backbone with random weights has none worth keeping: its BatchNormalization
trains once unfrozen, or a deep network of random weights would not learn. `optim` decides the
rates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from cnn_core._keras import keras
from cnn_core.config import TrainConfig
from cnn_core.pretrained import PretrainedBackbone
from cnn_core.training.optim import compile_model
from cnn_core.training.recorder import RunRecorder

log = logging.getLogger("cnn_core.train")  # one logger for the worker (`_attach_log`)


def checkpoint_unfrozen(config: TrainConfig, epochs_done: int) -> bool:
    """Whether the checkpoint after `epochs_done` epochs was written by the unfrozen phase's
    optimizer: the one at the phase change still holds the frozen phase's."""
    return bool(config.fine_tune) and epochs_done > config.fine_tune


def fit_phases(
    model: keras.Model,
    config: TrainConfig,
    recorder: RunRecorder,
    fit_options: dict[str, Any],
    *,
    unfrozen: bool,
    steps: int,
) -> None:
    """Train from the recorder's epochs done to its target; with fine_tune, the frozen epochs
    first, then the backbone unfrozen and the model compiled again at its own rate for the rest.
    Early stopping watches the unfrozen epochs only: the frozen ones train the classifier on
    fixed features, and the point where that stops improving is where fine-tuning should start,
    not where the run should end (a stop request or divergence still ends it, as exceptions)."""
    done, target = recorder.status.epochs_completed, recorder.epochs
    if config.fine_tune and not unfrozen and done < config.fine_tune:
        callbacks = fit_options.get("callbacks", [])
        watching = [c for c in callbacks if not isinstance(c, keras.callbacks.EarlyStopping)]
        model.fit(
            epochs=config.fine_tune, initial_epoch=done, **{**fit_options, "callbacks": watching}
        )
        done = recorder.status.epochs_completed
        if done < config.fine_tune:
            return
    if config.fine_tune and not unfrozen and done < target:
        unfreeze(model)
        compile_model(model, config, steps_per_epoch=steps, epochs=target, unfrozen=True)
        log.info(
            "fine-tuning: the backbone is unfrozen for epochs %d..%d, learning rate %g",
            done + 1,
            target,
            config.learning_rate * config.fine_tune_lr_factor,
        )
    if done < target:
        model.fit(epochs=target, initial_epoch=done, **fit_options)


def backbones(model: keras.Model) -> list[PretrainedBackbone]:
    return [layer for layer in model.layers if isinstance(layer, PretrainedBackbone)]


def unfreeze(model: keras.Model) -> None:
    """Make the backbones of `model` trainable, but for the BatchNormalization layers of those
    with pretrained weights; the model must be compiled again before it trains."""
    for backbone in backbones(model):
        backbone.trainable = True  # sets every layer inside too
        if backbone.weights_source is None:  # random weights: no statistics worth keeping
            continue
        for layer in _inner_layers(backbone.network):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # frozen BatchNormalization runs in inference mode


def _inner_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for inner in getattr(model, "layers", ()):  # a network's layers, and those of any inside
        yield inner
        yield from _inner_layers(inner)
