"""Optimizers, learning-rate schedules and the dtype policy, made from a `TrainConfig`."""

from __future__ import annotations

import math
from typing import Any

from cnn_core._keras import keras
from cnn_core.builder import bfloat16_is_faster
from cnn_core.config import WARMUP_FRACTION, TrainConfig


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


def make_schedule(
    config: TrainConfig, total_steps: int, *, peak: float | None = None, warmup: float | None = None
) -> Any:
    """The learning rate: a number, or a schedule over `total_steps` optimizer steps, peaking at
    `peak` (default the configured rate); `warmup`, where given, is the share of the steps that
    warm up linearly (fine-tuning's unfrozen phase), in place of the schedule's own."""
    total = max(1, total_steps)
    peak = config.learning_rate if peak is None else peak
    if config.lr_schedule == "one_cycle":
        return OneCycle(peak, total) if warmup is None else OneCycle(peak, total, warmup)
    if config.lr_schedule == "constant" and not warmup:
        return peak
    steps_up = int(total * (WARMUP_FRACTION if warmup is None else warmup))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100 if steps_up else peak,
        decay_steps=max(1, total - steps_up),
        alpha=1.0 if config.lr_schedule == "constant" else 0.0,  # 1: no decay after the warm-up
        warmup_target=peak if steps_up else None,
        warmup_steps=steps_up,
    )


def phase_epochs(config: TrainConfig, epochs: int, *, unfrozen: bool) -> int:
    """The epochs one optimizer runs for: all `epochs`, or with fine_tune those of its phase."""
    if not config.fine_tune:
        return epochs
    return max(1, epochs - config.fine_tune) if unfrozen else config.fine_tune


def make_optimizer(
    config: TrainConfig, steps_per_epoch: int, epochs: int, *, unfrozen: bool = False
) -> Any:
    """The optimizer for `epochs` epochs, or with fine_tune for the phase they hold: frozen at
    the configured rate, or `unfrozen` at the rate times fine_tune_lr_factor with its warm-up."""
    steps = steps_per_epoch * phase_epochs(config, epochs, unfrozen=unfrozen)
    if unfrozen:
        peak = config.learning_rate * config.fine_tune_lr_factor
        lr = make_schedule(config, steps, peak=peak, warmup=config.fine_tune_warmup)
    else:
        lr = make_schedule(config, steps)
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


def compile_model(
    model: keras.Model,
    config: TrainConfig,
    *,
    steps_per_epoch: int,
    epochs: int,
    unfrozen: bool = False,
) -> None:
    """Compile `model` as `config` says: its optimizer and schedule over `epochs` epochs of
    `steps_per_epoch` steps (with fine_tune, over the frozen or the `unfrozen` phase of them),
    and the loss (label smoothing takes one-hot labels)."""
    if config.label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch, epochs, unfrozen=unfrozen),
        loss=loss,
        metrics=[metric],
        steps_per_execution=config.steps_per_execution,
    )
