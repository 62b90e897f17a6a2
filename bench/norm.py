"""BatchNormalization's cost per training step: Keras' own layer against ours, which trains
through TensorFlow's fused kernel (`cnn_core.fast_norm`), on each CPU preset that normalises,
built and compiled as its training builds it (augmentation, mixed precision, optimizer).

    python -m bench.norm [--steps 30]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.augment import step_seconds
from bench.common import write_result
from cnn_core._keras import keras
from cnn_core.builder import build_model, keras_own_class
from cnn_core.config import config_from_dict
from cnn_core.presets import load_preset
from cnn_core.training.optim import compile_model, dtype_policy

PRESETS = ("fast_cpu", "best_cpu")


def preset_model(preset: str, *, keras_own: bool = False) -> keras.Model:
    """The preset's model as its training builds it; with `keras_own`, each of our faster
    subclasses replaced by the Keras layer it stands for, with the same configuration."""
    loaded = load_preset(preset)
    config = config_from_dict(dict(loaded.config))
    model = build_model(
        loaded.spec, augmentation=config.augmentation, dtype_policy=dtype_policy(config)
    )
    if keras_own:
        model = keras.models.clone_model(
            model,
            clone_function=lambda layer: keras_own_class(layer).from_config(layer.get_config()),
        )
    compile_model(model, config, steps_per_epoch=100, epochs=config.epochs)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for preset in PRESETS:
        batch = load_preset(preset).config["batch_size"]
        x = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
        y = keras.utils.to_categorical(rng.integers(0, 10, batch), 10)  # label smoothing's
        models = {"keras": preset_model(preset, keras_own=True), "fused": preset_model(preset)}
        kinds = {name: {type(layer).__name__ for layer in m.layers} for name, m in models.items()}
        assert "FusedBatchNormalization" in kinds["fused"] - kinds["keras"], kinds
        seconds = step_seconds(models, x, y, args.steps)
        results[preset] = {"batch": batch, **seconds, "ratio": seconds["fused"] / seconds["keras"]}
        print(
            f"{preset}, batch {batch}: Keras' BatchNormalization {seconds['keras'] * 1000:.1f} ms "
            f"per step, fused {seconds['fused'] * 1000:.1f} ms ({results[preset]['ratio']:.2f})",
            flush=True,
        )
    write_result("norm", {"steps": args.steps, "presets": results})


if __name__ == "__main__":
    main()
