"""The classic CIFAR-10 tutorial, written the way its users write it: the baseline we race.

Pixels divided by 255 into float arrays, one-hot labels, the Conv32-Pool-Conv64-Pool-Conv64-
Flatten-Dense64-Dense10 network (319,178 parameters), Adam, batch 64, validation split 0.2,
`model.fit`. The images come from the same CIFAR-10 copy our engine reads (via our cache, which
hands back the same uint8 arrays `keras.datasets.cifar10.load_data()` would).

    python -m bench.tutorial_script --epochs 15     (prints one JSON line)
    python -m bench.tutorial_script --epochs 1 --limit 600     (a smoke test: 600 images)

It runs on any Keras backend (`KERAS_BACKEND=jax` on a GPU machine: no TensorFlow needed).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

start = time.perf_counter()

import keras  # noqa: E402 - the import is part of what the script costs
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from bench.common import cifar_source  # noqa: E402
from bench.timers import EpochTimer  # noqa: E402
from cnn_core.datasets import load_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--limit", type=int, help="only this many training images (a smoke test)")
    args = parser.parse_args()
    data = load_dataset(cifar_source(), limit=args.limit)
    # Keras' CIFAR-10 loader hands the images over in a mixed order; validation_split takes the
    # last 20% as they come, so mix them the same way (image folders come class by class).
    order = np.random.default_rng(0).permutation(len(data.y_train))
    train_images, test_images = data.x_train[order] / 255.0, data.x_test / 255.0  # float64
    train_labels = keras.utils.to_categorical(data.y_train[order], 10)
    test_labels = keras.utils.to_categorical(data.y_test, 10)

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, (3, 3), activation="relu", padding="same"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    assert model.count_params() == 319_178
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(
        train_images,
        train_labels,
        batch_size=64,
        epochs=args.epochs,
        validation_split=0.2,
        callbacks=[timer],
        verbose=0,
    )
    _, accuracy = model.evaluate(test_images, test_labels, verbose=0)
    print(
        json.dumps(
            {
                "epoch_seconds": timer.seconds,
                "test_accuracy": float(accuracy),
                "wall_seconds": time.perf_counter() - start,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "params": model.count_params(),
            }
        )
    )


if __name__ == "__main__":
    np.random.seed(0)
    main()
