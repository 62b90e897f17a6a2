"""The learning-rate finder: a short range test, as fastai's `lr_find` (after Leslie Smith's
"Cyclical Learning Rates", 2015). The model trains for about 100 batches while the learning
rate grows exponentially from 1e-7 to 10; the loss (smoothed) falls, flattens, then climbs as
the rate gets too high. The suggestion is the rate where the smoothed loss falls fastest, taken
before its lowest point and after the first tenth of the batches (where the smoothed loss still
swings); a tenth of the rate at the lowest point is given beside it, as a
second opinion.

It trains a throw-away copy of the model on the training images (validation split held out,
seeded, as a run does) with the configured optimizer, batch size and augmentation, and never
writes a run: the result is plain data (`LrFinding`), printed by `cnn-workbench lr-find` and
drawn by the Train page.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from cnn_core._keras import keras
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig, effective_batch_size
from cnn_core.datasets import load_dataset
from cnn_core.errors import UserError
from cnn_core.feed import Feed
from cnn_core.spec import ModelSpec
from cnn_core.training.data import split_indices
from cnn_core.training.fit import augment_in_feed, feed_augmentation
from cnn_core.training.optim import compile_model, dtype_policy

START, END, STEPS = 1e-7, 10.0, 100
SMOOTHING = 0.98  # the loss's exponential moving average, debiased (as fastai's)
DIVERGED = 4.0  # stop once the smoothed loss is this many times its lowest


@dataclass(frozen=True)
class LrFinding:
    """A range test's result: the rates tried, the loss at each (smoothed), the suggestion."""

    learning_rates: tuple[float, ...]
    losses: tuple[float, ...]  # smoothed
    suggestion: float  # where the smoothed loss falls fastest, before its lowest point
    minimum_tenth: float  # a tenth of the rate at the lowest smoothed loss
    configured: float  # the configuration's own rate, for comparison
    steps: int  # batches trained (fewer than asked when the loss took off)
    seconds: float
    note: str | None = None  # what the user should know (too few images, a flat curve)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["learning_rates"], data["losses"] = list(self.learning_rates), list(self.losses)
        return data


def suggest(rates: list[float], losses: list[float]) -> tuple[float, float, str | None]:
    """(suggestion, a tenth of the lowest point's rate, a note) for a smoothed loss curve."""
    if len(rates) < 5:
        raise UserError(
            f"the learning-rate finder needs at least 5 batches, and got {len(rates)}; use more "
            "training images or a smaller batch size."
        )
    lowest = int(np.argmin(losses))
    logs = np.log10(rates)
    slopes = np.gradient(np.asarray(losses), logs)
    # The steepest fall before the lowest point (after it the loss only climbs), past the first
    # tenth of the batches, where the smoothed loss still swings with its first few batches.
    skip = max(len(rates) // 10, 2)
    window = slopes[skip : lowest + 1]
    steepest = skip + int(np.argmin(window)) if len(window) else lowest
    note = None
    if losses[0] - losses[lowest] < 0.01 * max(abs(losses[0]), 1e-12):
        note = (
            "the loss hardly moved at any rate tried: check the data and the architecture "
            "(a network that cannot learn has no good learning rate)."
        )
    return float(rates[steepest]), float(rates[lowest]) / 10, note


class _RangeTest(keras.callbacks.Callback):
    """Sets each batch's rate, records the loss, and stops once the loss takes off."""

    def __init__(self, steps: int, start: float, end: float, tick: Callable[[int], None]) -> None:
        super().__init__()
        self.steps, self.start, self.end, self.tick = steps, start, end, tick
        self.rates: list[float] = []
        self.losses: list[float] = []
        self.average, self.best = 0.0, math.inf

    def rate(self, step: int) -> float:
        return self.start * (self.end / self.start) ** (step / max(self.steps - 1, 1))

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(self.rate(len(self.rates)))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", math.nan))
        step = len(self.rates)
        self.tick(step + 1)
        if not math.isfinite(loss):
            self.model.stop_training = True
            return
        # Keras' logs carry the epoch's running mean; the range test wants this batch's loss.
        batch_loss = loss * (batch + 1) - self._running * batch if batch else loss
        self._running = loss
        self.average = SMOOTHING * self.average + (1 - SMOOTHING) * batch_loss
        smoothed = self.average / (1 - SMOOTHING ** (step + 1))
        self.rates.append(self.rate(step))
        self.losses.append(smoothed)
        self.best = min(self.best, smoothed)
        if step + 1 >= self.steps or smoothed > DIVERGED * self.best:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._running = 0.0


def find_lr(
    spec: ModelSpec,
    config: TrainConfig,
    source: str | None,
    *,
    steps: int = STEPS,
    start: float = START,
    end: float = END,
    tick: Callable[[int], None] = lambda step: None,
) -> LrFinding:
    """The range test for `spec` trained as `config` says on `source`; raises `UserError` for
    data or settings it cannot use. `tick(step)` is called after every batch."""
    began = time.perf_counter()
    h, w, c = spec.input_shape
    data = load_dataset(
        source, image_size=(h, w), channels=c, test_split=config.test_split, limit=config.limit
    )
    if spec.num_classes != len(data.class_names):
        spec = replace(spec, num_classes=len(data.class_names))
    seed = config.seed if config.seed is not None else 0
    keras.utils.set_random_seed(seed)
    train, _ = split_indices(data, config, seed)
    batch_size, _ = effective_batch_size(config, len(train))
    one_hot = spec.num_classes if config.label_smoothing else None
    feed = Feed(
        data.x_train,
        data.y_train,
        train,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        num_classes=one_hot,
        **feed_augmentation(config, data.x_train.shape[1:]),
    )
    epochs = math.ceil(steps / len(feed))
    constant = replace(config, lr_schedule="constant", fine_tune=None, learning_rate=start)
    model = build_model(
        spec,
        augmentation=config.augmentation,
        dtype_policy=dtype_policy(config),
        augment_in_feed=augment_in_feed(config),
    )
    compile_model(model, constant, steps_per_epoch=len(feed), epochs=epochs)
    test = _RangeTest(steps, start, end, tick)
    model.fit(feed, epochs=epochs, shuffle=False, callbacks=[test], verbose=0)
    suggestion, tenth, note = suggest(test.rates, test.losses)
    return LrFinding(
        learning_rates=tuple(test.rates),
        losses=tuple(test.losses),
        suggestion=suggestion,
        minimum_tenth=tenth,
        configured=config.learning_rate,
        steps=len(test.rates),
        seconds=round(time.perf_counter() - began, 2),
        note=note,
    )
