"""Where data, caches and runs live, read from the environment.

Every setting has a default that works from a fresh clone; environment variables override them:

- ``CNN_CORE_DATA``: the default dataset source (``cifar10``, a folder, or an archive).
- ``CNN_CORE_RUNS``: the runs root (default ``runs/`` in the working directory).
- ``CNN_CORE_CACHE``: where decoded datasets are cached (default ``~/.cache/cnn_core``, or
  ``$XDG_CACHE_HOME/cnn_core``); uploaded dataset archives are kept in its ``uploads/`` folder.
- ``CNN_CORE_MAX_DATASET_UPLOAD_MB``: the largest dataset archive the Train page accepts, in MB
  (default 2048). Photos and spec files have their own, fixed limit (`PHOTO_UPLOAD_MB`).

Limits on a dataset source (a folder or an archive), checked while it is listed or streamed, before
what they guard is held; each refusal names its setting. The defaults never refuse a real dataset:

- ``CNN_CORE_MAX_DATASET_FILES``: entries (files and folders) in a source (default 2,000,000).
- ``CNN_CORE_MAX_PATH_DEPTH``: levels in one entry's path, its folders and its name (default 32).
- ``CNN_CORE_MAX_DATASET_GB``: the source's files, uncompressed, in GB of 10**9 bytes
  (default 200).
- ``CNN_CORE_MAX_COMPRESSION_RATIO``: an archive's uncompressed bytes per byte of the archive
  (default 100).
- ``CNN_CORE_MAX_PHOTOS``: the most photos the Predict page classifies from one upload (default
  200); the rest of a larger upload are named and left out.

The queue (`cnn_core.training.queue`):

- ``CNN_CORE_MAX_PARALLEL``: on a machine without GPUs, runs that train at once per runs root
  (default 1). On a machine with GPUs the GPUs are the slots: a run waits for as many free GPUs
  as its `devices` asks for.
- ``CNN_CORE_GPU_INVENTORY``: a JSON file that stands for ``nvidia-smi``'s answer (for tests, or
  to try the queue without GPUs): a list of ``{"index": 0, "name": "...", "busy_pids": [...]}``,
  one per GPU, where ``busy_pids`` are processes of other programs computing on it. Unset: ask
  ``nvidia-smi`` (none installed: no GPUs).
- ``CNN_CORE_CPU_DEVICES``: split the CPU into this many devices, for trying `devices` (below).
"""

from __future__ import annotations

import os
from pathlib import Path

from cnn_core.errors import DataError, UserError

DEFAULT_DATA_SOURCE = "cifar10"
DEFAULT_MAX_DATASET_UPLOAD_MB = 2048  # a dataset archive; the server holds an upload in memory
PHOTO_UPLOAD_MB = 10  # a photo or spec file uploaded to the dashboard, per file
# Dataset limits. ImageNet's training set is 1.28 million files in 1,000 folders (140 GB); CIFAR-10
# as JPEGs is 60,000 files at a ratio of about 1. A real layout is a few folders deep (8 wrappers
# at most are looked through, then split, class and a few sub-folders). Photos hardly compress
# (JPEG, PNG: ratio ~1; BMP ~2-3; a tar of tiny files ~5, its headers being zeros), so 100 is
# only reached by a bomb.
DEFAULT_MAX_DATASET_FILES = 2_000_000
DEFAULT_MAX_PATH_DEPTH = 32
DEFAULT_MAX_DATASET_GB = 200
DEFAULT_MAX_COMPRESSION_RATIO = 100
DEFAULT_MAX_PHOTOS = 200  # photos per upload on Predict: each is drawn with its heat map


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


def uploads_dir() -> Path:
    """The folder that keeps dataset archives uploaded through the dashboard, one per content."""
    return cache_dir() / "uploads"


def max_dataset_upload_mb() -> int:
    """The largest dataset archive an upload may be, in MB (2**20 bytes)."""
    return int(_positive("CNN_CORE_MAX_DATASET_UPLOAD_MB", DEFAULT_MAX_DATASET_UPLOAD_MB, "MB"))


# ------------------------------------------------------------------------------ a shared server

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # the names a browser on this machine uses


def shared_mode() -> bool:
    """``CNN_CORE_SHARED=1``: every visitor signs in (Streamlit's ``st.login``) before any page
    shows anything; off by default (one user on their own machine)."""
    raw = os.environ.get("CNN_CORE_SHARED", "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"CNN_CORE_SHARED is {raw!r}; set it to 1 (shared, with sign-in) or 0.")


def allowed_hosts() -> tuple[str, ...]:
    """The host names the dashboard answers to (the browser's ``Host`` header, without the
    port): ``CNN_CORE_ALLOWED_HOSTS``, comma-separated, beside this machine's own names. Any
    other name is refused before a page runs: a web page elsewhere that points its own name at
    this machine (DNS rebinding) then reaches nothing."""
    import socket

    names = {*LOCAL_HOSTS, socket.gethostname().lower()}
    extra = os.environ.get("CNN_CORE_ALLOWED_HOSTS", "")
    names |= {name.strip().lower().strip("[]") for name in extra.split(",") if name.strip()}
    return tuple(sorted(names))


DEFAULT_USER_MAX_RUNNING = 1  # runs of one user training at once on a shared server
DEFAULT_USER_MAX_QUEUED = 4  # runs of one user waiting for a slot on a shared server
DEFAULT_USER_MAX_DISK_GB = 20.0  # disk one user's runs may use when shared


def admins() -> frozenset[str]:
    """``CNN_CORE_ADMINS``: the users (e-mail addresses, comma-separated) who may see and control
    every run on a shared server."""
    raw = os.environ.get("CNN_CORE_ADMINS", "")
    return frozenset(name.strip().lower() for name in raw.split(",") if name.strip())


def data_roots() -> tuple[str, ...]:
    """``CNN_CORE_DATA_ROOTS``: the folders (separated by ``os.pathsep``) whose datasets users
    of a shared server may give by path; uploads and ``cifar10`` are always allowed."""
    raw = os.environ.get("CNN_CORE_DATA_ROOTS", "")
    return tuple(part.strip() for part in raw.split(os.pathsep) if part.strip())


def user_max_running() -> int:
    return int(_positive("CNN_CORE_USER_MAX_RUNNING", DEFAULT_USER_MAX_RUNNING, "runs"))


def user_max_queued() -> int:
    return int(_positive("CNN_CORE_USER_MAX_QUEUED", DEFAULT_USER_MAX_QUEUED, "runs"))


def user_max_disk_gb() -> float:
    return _positive("CNN_CORE_USER_MAX_DISK_GB", DEFAULT_USER_MAX_DISK_GB, "GB", whole=False)


def max_dataset_files() -> int:
    """The most entries (files and folders) a dataset source may have."""
    return int(_positive("CNN_CORE_MAX_DATASET_FILES", DEFAULT_MAX_DATASET_FILES, "entries"))


def max_path_depth() -> int:
    """The most levels (its folders and its name) in the path of one entry of a dataset source."""
    return int(_positive("CNN_CORE_MAX_PATH_DEPTH", DEFAULT_MAX_PATH_DEPTH, "levels"))


def max_dataset_bytes() -> int:
    """The most bytes a dataset source's files may add up to, uncompressed."""
    return int(
        _positive("CNN_CORE_MAX_DATASET_GB", DEFAULT_MAX_DATASET_GB, "GB", whole=False) * 1e9
    )


def max_compression_ratio() -> float:
    """The most uncompressed bytes an archive may unpack to per byte of the archive."""
    return _positive(
        "CNN_CORE_MAX_COMPRESSION_RATIO", DEFAULT_MAX_COMPRESSION_RATIO, "", whole=False
    )


def _positive(name: str, default: float, unit: str, *, whole: bool = True) -> float:
    """A setting that is a positive number, or its default when unset; a bad value is a
    DataError (a UserError) naming the variable and what it must be."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        kind = "a whole number" if whole else "a number"
        of = f" of {unit}" if unit else ""
        raise DataError(
            f"{name} is {raw!r}; set it to {kind}{of} above 0 (default {default:,}), or unset it."
        )
    return value


def max_photos() -> int:
    """The most photos the Predict page classifies from one upload."""
    return int(_positive("CNN_CORE_MAX_PHOTOS", DEFAULT_MAX_PHOTOS, "photos"))


DEFAULT_MAX_PARALLEL = 1  # runs training at once per runs root: one CPU machine trains one well


def max_parallel() -> int:
    """``CNN_CORE_MAX_PARALLEL``: runs that may train at once per runs root (default 1)."""
    return int(_positive("CNN_CORE_MAX_PARALLEL", DEFAULT_MAX_PARALLEL, "runs"))


def gpu_inventory() -> Path | None:
    """``CNN_CORE_GPU_INVENTORY``: the fake GPU inventory's file, or None (ask nvidia-smi)."""
    raw = os.environ.get("CNN_CORE_GPU_INVENTORY", "").strip()
    return Path(raw) if raw else None


def cpu_devices() -> int:
    """``CNN_CORE_CPU_DEVICES``: split the CPU into this many devices (default 1), so that the
    multi-device code runs for real on a machine without GPUs: JAX's virtual host devices, and
    TensorFlow's logical CPU devices. For trying and testing `devices`; it makes nothing faster."""
    return int(_positive("CNN_CORE_CPU_DEVICES", 1, "devices"))


def debug() -> bool:
    """``CNN_CORE_DEBUG``: set (to anything but empty) to see tracebacks of unexpected errors."""
    return bool(os.environ.get("CNN_CORE_DEBUG", "").strip())
