"""Import Keras once, quietly.

TensorFlow's C++ runtime prints start-up chatter (oneDNN, CUDA probing) straight to file
descriptor 2 before its own log settings apply; users of the CLI would read it as errors. Modules
that need Keras write `from cnn_core._keras import keras`, only when they really need it. A
backend that is not installed raises `BackendError` (a `UserError`) here, before Keras is touched.
"""

from __future__ import annotations

import os
import sys

from cnn_core.backends import (
    CLUSTER_ENV,
    DISTRIBUTED_ENV,
    check_backend,
    keras_backend,
    off_gpus,
)
from cnn_core.settings import cpu_devices

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _before_import() -> None:
    """What must happen before the backend starts: JAX's virtual CPU devices."""
    count = cpu_devices()
    if count > 1 and keras_backend() == "jax" and "jax" not in sys.modules:
        flag = f"--xla_force_host_platform_device_count={count}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def _cpu_only(backend: str) -> None:
    """This process's Keras computes on the CPU (`backends.keep_this_process_off_gpus`)."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")  # before TensorFlow starts its devices
    elif backend == "jax":
        import jax

        jax.config.update("jax_platforms", "cpu")


def _start_devices(keras) -> None:
    """What must happen after Keras is imported and before any device is used: several
    processes joined into one (JAX), TensorFlow's CPU split into logical devices."""
    backend = keras.backend.backend()
    if off_gpus():  # the dashboard's server: every GPU stays the training runs'
        _cpu_only(backend)
    elif backend == "jax" and (os.environ.get(DISTRIBUTED_ENV) or os.environ.get(CLUSTER_ENV)):
        keras.distribution.initialize()
    count = cpu_devices()
    if backend == "tensorflow" and count > 1:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    if backend != "torch":  # Keras' distribution API has no torch part
        keras.distribution.list_devices()  # device probing prints too ("failed cuInit")


def _import_quietly():
    check_backend()  # a missing JAX or PyTorch is advice on what to install, not a traceback
    _before_import()
    if "keras" in sys.modules:
        import keras

        return keras
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded): import as is
        import keras

        _start_devices(keras)
        return keras
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras

        _start_devices(keras)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras


keras = _import_quietly()
