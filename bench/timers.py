"""A Keras callback that times each epoch, for the benchmarks that race `model.fit` (it imports
Keras: import it only where Keras is wanted anyway)."""

from __future__ import annotations

import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """The wall-clock seconds of each epoch, validation included, in `seconds`."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.begin)
