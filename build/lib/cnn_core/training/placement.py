"""Where a run trains: how many devices, of which kind, and the engine that spreads it over them.

Data parallel only, and never our own: on JAX, Keras' distribution API (`DataParallel`, which
also spans several processes joined by `keras.distribution.initialize`); on TensorFlow,
`tf.distribute.MirroredStrategy`, since Keras' distribution API has no TensorFlow part yet. Each
device gets an equal share of every global batch and the gradients are averaged, so one device
and N devices with the same seed and global batch learn the same thing, up to the order of
floating-point sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from cnn_core._keras import keras
from cnn_core.config import TrainConfig, fit_batch
from cnn_core.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    """The devices one run trains on (all processes together)."""

    backend: str
    kind: str  # "GPU" or "CPU" (or "TPU")
    names: tuple[str, ...]  # the backend's names of the devices used, all processes together
    processes: int = 1
    process_id: int = 0
    model: str = ""  # the device's model where known ("NVIDIA H200"), else ""

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def shard(self) -> tuple[int, int]:
        """(this process, processes): which share of every global batch this process feeds."""
        return self.process_id, self.processes

    def agree(self, flag: bool) -> bool:
        """The first process's `flag`, in every process (one small collective), so that all
        stop at the same batch: a process that stopped alone would leave the others waiting."""
        if self.processes == 1:
            return bool(flag)
        import numpy as np
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))

    def describe(self) -> str:
        """ "1 CPU device", "4 GPU devices (NVIDIA H200) in 2 processes"."""
        text = f"{self.count} {self.kind} device{'s' if self.count != 1 else ''}"
        if self.model:
            text += f" ({self.model})"
        if self.processes > 1:
            text += f" in {self.processes} processes"
        return text

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build, compile, resume and fit the model inside this."""
        if self.count == 1 and self.processes == 1:
            yield
            return
        if self.backend == "jax":
            devices = list(self.names)
            # why auto_shard_dataset=False: the feed gives each process its own rows already
            layout = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
            previous = keras.distribution.distribution()
            keras.distribution.set_distribution(layout)
            try:
                yield
            finally:
                keras.distribution.set_distribution(previous)
            return
        import tensorflow as tf

        with tf.distribute.MirroredStrategy(devices=list(self.names)).scope():
            yield


def available(backend: str) -> tuple[str, list[str], str]:
    """The kind, names and model of the devices a run may use here: every GPU (or TPU), else
    the CPU (split into `CNN_CORE_CPU_DEVICES` devices if set), across all processes."""
    if backend == "jax":
        import jax

        devices = jax.devices()  # the default platform: GPU or TPU where there is one
        kind = devices[0].platform.upper()
        model = "" if kind == "CPU" else str(getattr(devices[0], "device_kind", ""))
        return kind, [f"{d.platform}:{d.id}" for d in devices], model
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            first = tf.config.list_physical_devices("GPU")[0]
            details = tf.config.experimental.get_device_details(first)
            return "GPU", [d.name for d in gpus], str(details.get("device_name", ""))
        return "CPU", [d.name for d in tf.config.list_logical_devices("CPU")], ""
    return "CPU", ["cpu"], ""  # PyTorch: Keras' trainer uses one device (`devices` is refused)


def process_layout() -> tuple[int, int]:
    """(processes, this one's index) of the run this process trains: (1, 0) unless several
    processes were joined by `keras.distribution.initialize` (JAX)."""
    if keras.backend.backend() != "jax":
        return 1, 0
    import jax

    return jax.process_count(), jax.process_index()


def place(config: TrainConfig, *, source: str = "the configuration") -> Placement:
    """The devices `config.devices` asks for, as this machine (and its fellow processes) has
    them; a `ConfigError` that says what there is when it asks for more."""
    backend = keras.backend.backend()
    kind, names, model = available(backend)
    processes, process_id = process_layout()
    wanted = len(names) if config.devices is None else config.devices
    if wanted > len(names):
        there = f"{len(names)} {kind} device{'s' if len(names) != 1 else ''}"
        raise ConfigError(
            f"{source}: devices {wanted} asks for more devices than there are: {there} here"
            f"{' in all processes' if processes > 1 else ''}; set devices to {len(names)} or "
            '"all".'
        )
    if processes > 1 and wanted != len(names):
        raise ConfigError(
            f"{source}: a run trained by {processes} processes uses every device of each "
            f'({len(names)}); set devices to "all".'
        )
    placement = Placement(backend, kind, tuple(names[:wanted]), processes, process_id, model)
    if config.batch_size % placement.count:
        raise ConfigError(
            f"{source}: batch_size ({config.batch_size}) must divide by the "
            f"{placement.describe()} it trains on here; use batch_size "
            f"{fit_batch(config.batch_size, placement.count)} or set devices."
        )
    return placement
