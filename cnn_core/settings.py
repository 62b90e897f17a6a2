"""Where data, caches and runs live, read from the environment.

Every setting has a default that works from a fresh clone; environment variables override them:

- ``CNN_CORE_DATA``: the default dataset source (``cifar10``, a folder, or an archive).
- ``CNN_CORE_RUNS``: the runs root (default ``runs/`` in the working directory).
- ``CNN_CORE_CACHE``: where decoded datasets are cached (default ``~/.cache/cnn_core``, or
  ``$XDG_CACHE_HOME/cnn_core``).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_SOURCE = "cifar10"


def data_source() -> str:
    """The dataset source to use when none is given."""
    return os.environ.get("CNN_CORE_DATA", "").strip() or DEFAULT_DATA_SOURCE


def runs_root() -> Path:
    """The folder that holds one sub-folder per training run."""
    return Path(os.environ.get("CNN_CORE_RUNS", "").strip() or "runs")


def cache_dir() -> Path:
    """The folder that holds decoded datasets, keyed by their source's identity."""
    explicit = os.environ.get("CNN_CORE_CACHE", "").strip()
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "cnn_core"
