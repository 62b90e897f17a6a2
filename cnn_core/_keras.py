"""Import Keras once, quietly.

TensorFlow's C++ runtime prints start-up chatter (oneDNN, CUDA probing) straight to file
descriptor 2 before its own log settings apply; users of the CLI would read it as errors. Modules
that need Keras write `from cnn_core._keras import keras`, only when they really need it. A
backend that is not installed raises `BackendError` (a `UserError`) here, before Keras is touched.
"""

from __future__ import annotations

import os
import sys

from cnn_core.backends import check_backend

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly():
    check_backend()  # a missing JAX or PyTorch is advice on what to install, not a traceback
    if "keras" in sys.modules:
        import keras

        return keras
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded): import as is
        import keras

        return keras
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras

        if keras.backend.backend() != "torch":  # Keras' distribution API has no torch part
            keras.distribution.list_devices()  # device probing prints too ("failed cuInit")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras


keras = _import_quietly()
