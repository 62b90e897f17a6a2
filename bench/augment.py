"""Augmentation cost per training step: none, Keras' RandomFlip + RandomTranslation, our
RandomShiftFlip, and the training feed's flips and shifts (the step without augmentation layers plus
what the feed's numpy adds to a batch), on the same model and batch, on whatever backend is active.

    python -m bench.augment [--batch 256] [--steps 20]
    KERAS_BACKEND=jax python -m bench.augment      (on a GPU machine)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.common import write_result
from cnn_core._keras import keras
from cnn_core.augment import shift_pixels
from cnn_core.builder import build_model
from cnn_core.config import config_from_dict
from cnn_core.fast_augment import RandomShiftFlip
from cnn_core.feed import Feed
from cnn_core.presets import load_preset
from cnn_core.training.optim import dtype_policy


def keras_layers_model(spec, policy=None):
    """Our model body behind Keras' own flip and translation layers, for comparison."""
    plain = build_model(spec, dtype_policy=policy)
    inputs = keras.Input(spec.input_shape, dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.RandomFlip("horizontal")(x)
    x = keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect")(x)
    for layer in plain.layers[2:]:
        x = layer(x)
    return keras.Model(inputs, x)


def ours_model(spec, policy=None):
    plain = build_model(spec, dtype_policy=policy)
    inputs = keras.Input(spec.input_shape, dtype="uint8")
    x = RandomShiftFlip(shift=0.125, flip=True)(inputs)  # on uint8, as the builder does
    x = keras.layers.Rescaling(1 / 255)(x)
    for layer in plain.layers[2:]:
        x = layer(x)
    return keras.Model(inputs, x)


def step_seconds(models: dict, x, y, steps: int) -> dict[str, float]:
    """Median seconds per training step of each model, measured in interleaved rounds so that
    anything else the machine does hits every model alike."""
    for model in models.values():
        if not model.compiled:  # a model the caller compiled keeps its optimizer and loss
            model.compile("sgd", "sparse_categorical_crossentropy")
        for _ in range(2):
            model.train_on_batch(x, y)  # trace and warm up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(steps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def feed_seconds(batch: int, shift: float, rounds: int = 200) -> float:
    """Median seconds the feed's flips and shifts (`shift` of the side) add to a batch of
    CIFAR-sized images: batches with them against batches without, in alternation."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4 * batch, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, len(x))
    rows = np.arange(len(x))
    plain = Feed(x, y, rows, batch_size=batch, shuffle=True)
    shifted = Feed(
        x, y, rows, batch_size=batch, shuffle=True, flip=True, shift=shift_pixels(shift, 32, 32)
    )
    times: dict[str, list[float]] = {"plain": [], "shifted": []}
    for i in range(rounds):
        for name, feed in (("plain", plain), ("shifted", shifted)):
            start = time.perf_counter()
            feed[i % len(feed)]
            times[name].append(time.perf_counter() - start)
    return max(statistics.median(times["shifted"]) - statistics.median(times["plain"]), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--preset", default="fast_cpu")
    args = parser.parse_args()
    loaded = load_preset(args.preset)
    spec = loaded.spec
    policy = dtype_policy(config_from_dict(dict(loaded.config)))  # bfloat16 where training uses it
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, args.batch)
    models = {
        "none": build_model(spec, dtype_policy=policy),
        "keras RandomFlip+RandomTranslation": keras_layers_model(spec, policy),
        "RandomShiftFlip": ours_model(spec, policy),
    }
    results = step_seconds(models, x, y, args.steps)
    results["feed"] = results["none"] + feed_seconds(args.batch, 0.125)
    backend = keras.backend.backend()
    print(
        f"{args.preset}, batch {args.batch}, backend {backend}, {policy or 'float32'}: "
        "median seconds per step"
    )
    for name, seconds in results.items():
        print(f"  {name:<38} {seconds * 1000:8.1f} ms  ({seconds / results['none']:.2f}x)")
    write_result(
        f"augment_{backend}",
        {"preset": args.preset, "batch": args.batch, "precision": policy or "float32", **results},
    )


if __name__ == "__main__":
    main()
