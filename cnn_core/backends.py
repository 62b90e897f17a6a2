"""Which Keras backend runs the models, and whether it is installed, asked without importing it.

Keras 3 runs on TensorFlow, JAX or PyTorch; `KERAS_BACKEND` chooses (else the "backend" of
Keras' own `keras.json`, else TensorFlow). Only TensorFlow comes with the project's requirements;
JAX and PyTorch are optional. `check_backend()` answers in microseconds, so a run is refused
with advice on what to install before anything is written, instead of a worker that dies while
importing Keras. This module imports neither Keras nor any backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from cnn_core.errors import UserError

DEFAULT = "tensorflow"
# What each backend needs and how to install it (plain CPU build first, then the GPU one).
PACKAGES = {
    "tensorflow": (
        "tensorflow",
        "pip install tensorflow; on a CUDA GPU, pip install 'tensorflow[and-cuda]'",
    ),
    "jax": ("jax", "pip install jax; on a CUDA GPU, pip install 'jax[cuda12]'"),
    "torch": (
        "torch",
        "pip install torch; on a GPU, the build for your CUDA version from pytorch.org",
    ),
}


# Set in the environment by `cnn-workbench worker --coordinator ...` (or by hand) for a run
# trained by several processes: Keras' own variable, read by keras.distribution.initialize as
# `cnn_core._keras` imports Keras; and ours, to let JAX find the processes itself (Slurm, MPI).
DISTRIBUTED_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
CLUSTER_ENV = "CNN_CORE_CLUSTER"


_off_gpus = False  # this process only (never its children): see keep_this_process_off_gpus


def keep_this_process_off_gpus() -> None:
    """Let Keras in this process compute on the CPU only, leaving every GPU to the training
    runs: the dashboard's server calls it (its predictions, Grad-CAM and evaluations are small),
    since TensorFlow would otherwise take almost all the memory of every GPU it sees, and its
    process would count as a foreign one in the GPU queue. It changes nothing in the
    environment, so the workers the dashboard starts still see every GPU. Call it before
    Keras is imported (`cnn_core._keras` reads it then)."""
    global _off_gpus
    _off_gpus = True


def off_gpus() -> bool:
    return _off_gpus


class BackendError(UserError):
    """The chosen Keras backend is unknown or not installed."""


def keras_home() -> Path:
    """Keras' own folder: $KERAS_HOME, else ~/.keras (its config file and downloads live there)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def keras_backend() -> str:
    """The backend Keras will use in a process started with this environment."""
    chosen = os.environ.get("KERAS_BACKEND", "").strip()
    if chosen:
        return chosen
    try:
        config = json.loads((keras_home() / "keras.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT
    backend = config.get("backend") if isinstance(config, dict) else None
    return backend if isinstance(backend, str) and backend.strip() else DEFAULT


def check_backend() -> str:
    """The backend's name; a `BackendError` saying what to install if it cannot train here."""
    backend = keras_backend()
    if backend not in PACKAGES:
        raise BackendError(
            f"KERAS_BACKEND is {backend!r}, which is not a backend this tool trains with; set it "
            f"to one of {', '.join(PACKAGES)} (or unset it for {DEFAULT})."
        )
    package, install = PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        raise BackendError(
            f"the Keras backend {backend} (KERAS_BACKEND) needs the {package} package, which is "
            f"not installed: {install}. Or unset KERAS_BACKEND to use {DEFAULT}."
        )
    return backend
