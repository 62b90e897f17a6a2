"""What `model.fit` is given for one run: its training and validation feeds (`cnn_core.feed`)
and its callbacks, early stopping added when configured. It starts nothing and trains nothing:
the worker (`worker.py`) builds the model, calls fit and says how the run ended."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnn_core._keras import keras
from cnn_core.augment import feed_augments, shift_pixels
from cnn_core.builder import xla_training
from cnn_core.config import TrainConfig
from cnn_core.feed import Feed
from cnn_core.training.data import RunPlan
from cnn_core.training.placement import Placement


def augment_in_feed(config: TrainConfig) -> bool:
    """Whether this run's training feed flips and shifts its images, its model then without those
    layers (`cnn_core.augment.feed_augments`): build the model and the feed with the same answer."""
    return feed_augments(config.augmentation, compiled=xla_training())


def feed_augmentation(config: TrainConfig, image_shape: Sequence[int]) -> dict[str, Any]:
    """The training `Feed`'s augmentation arguments for `config` and images of `image_shape`."""
    a = config.augmentation
    options: dict[str, Any] = {"alternate_flip": a.alternate_flip}
    if augment_in_feed(config):
        options["flip"] = a.flip
        options["shift"] = shift_pixels(a.translation, int(image_shape[0]), int(image_shape[1]))
    return options


def fit_options(
    plan: RunPlan,
    config: TrainConfig,
    placement: Placement,
    callbacks: Sequence[keras.callbacks.Callback],
    *,
    epoch: int,
    seed: int,
) -> dict[str, Any]:
    """The keyword arguments of `model.fit` for training from `epoch` (counted from 0): the
    training feed (shuffled with `seed`, continuing the orders of earlier epochs), the validation
    feed where the plan has validation images, and `callbacks` with early stopping after them.
    Each feed gives this process its share of every batch, whole for the devices; labels come
    one-hot, made per batch, when they are smoothed."""
    one_hot = plan.spec.num_classes if config.label_smoothing else None
    share = {"multiple_of": placement.count, "shard": placement.shard}
    feed = Feed(
        plan.data.x_train,
        plan.data.y_train,
        plan.train,
        batch_size=plan.batch_size,
        shuffle=True,
        seed=seed,
        epoch=epoch,
        num_classes=one_hot,
        class_weight=plan.class_weight,
        **feed_augmentation(config, plan.data.x_train.shape[1:]),
        **share,
    )
    val_feed = None
    x_val, y_val, val_rows = plan.x_val, plan.y_val, plan.val_rows
    if x_val is not None and y_val is not None and val_rows is not None and len(val_rows):
        val_feed = Feed(
            x_val, y_val, val_rows, batch_size=plan.batch_size, num_classes=one_hot, **share
        )
    found = list(callbacks)
    if config.early_stopping_patience:
        found.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if plan.x_val is not None else "loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    return {
        "x": feed,
        "validation_data": val_feed,
        "validation_freq": config.validation_freq,
        "shuffle": False,  # the feed shuffles its rows itself, seeded, every epoch
        "callbacks": found,
        "verbose": 0,
    }
