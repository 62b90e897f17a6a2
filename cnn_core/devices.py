"""The GPUs of this machine, as `nvidia-smi` reports them: which there are, and which processes
compute on each. The queue (`cnn_core.training.queue`) hands them out to runs.

This module is only an inventory: it decides nothing and imports no Keras, TensorFlow or JAX (the
queue must know the GPUs before a run's process starts its backend, since `CUDA_VISIBLE_DEVICES`
only counts if set before). No `nvidia-smi`, or one that fails or hangs, means no GPUs, never an
error. For tests and for trying the queue on a machine without GPUs, `CNN_CORE_GPU_INVENTORY`
names a JSON file that replaces `nvidia-smi`: a list of ``{"index": 0, "name": "...",
"busy_pids": [1234]}``, read afresh at every look (so a test can change it while runs wait).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cnn_core import settings
from cnn_core.config import fit_batch
from cnn_core.errors import ConfigError, UserError

NVIDIA_SMI_TIMEOUT = 5.0  # seconds; a driver in a bad state can hang nvidia-smi
GPU_QUERY = "--query-gpu=index,uuid,name,memory.used,memory.total"
APPS_QUERY = "--query-compute-apps=gpu_uuid,pid"
CSV = "--format=csv,noheader,nounits"


@dataclass(frozen=True)
class Gpu:
    """One GPU, numbered as `nvidia-smi` numbers it (PCI bus order)."""

    index: int
    name: str = ""
    uuid: str = ""
    memory_used_mb: int | None = None
    memory_total_mb: int | None = None
    busy_pids: tuple[int, ...] = ()  # processes computing on it, of any program


def gpus() -> tuple[Gpu, ...]:
    """This machine's GPUs by index (the fake inventory's, if `CNN_CORE_GPU_INVENTORY` is set);
    () when there are none or `nvidia-smi` cannot say."""
    fake = settings.gpu_inventory()
    if fake is not None:
        return read_inventory(fake)
    if shutil.which("nvidia-smi") is None:
        return ()
    listed = _nvidia_smi(GPU_QUERY, CSV)
    if listed is None:
        return ()
    apps = _nvidia_smi(APPS_QUERY, "--format=csv,noheader") or ""
    return parse_nvidia_smi(listed, apps)


def _nvidia_smi(*arguments: str) -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", *arguments],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_nvidia_smi(listed: str, apps: str) -> tuple[Gpu, ...]:
    """The GPUs in `nvidia-smi --query-gpu=index,uuid,name,memory.used,memory.total` output,
    with the pids that `--query-compute-apps=gpu_uuid,pid` puts on each; lines it cannot read
    (a driver's message, "[N/A]") are left out."""
    pids: dict[str, list[int]] = {}
    for line in apps.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit():
            pids.setdefault(parts[0], []).append(int(parts[1]))
    found = []
    for line in listed.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        uuid, name = parts[1], ", ".join(parts[2:-2])  # why: a model's name may hold a comma
        used, total = (int(p) if p.isdigit() else None for p in parts[-2:])
        busy = tuple(pids.get(uuid, ()))
        found.append(Gpu(int(parts[0]), name, uuid, used, total, busy))
    return tuple(sorted(found, key=lambda gpu: gpu.index))


def read_inventory(path: Path) -> tuple[Gpu, ...]:
    """The fake inventory in `path` (`CNN_CORE_GPU_INVENTORY`); a `UserError` naming the
    variable when it is not a list of GPUs."""
    where = f"CNN_CORE_GPU_INVENTORY ({path})"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{where} cannot be read ({exc.strerror}); fix or unset it.") from None
    except ValueError:
        raise UserError(f"{where} is not valid JSON; fix or unset it.") from None
    entries = data if isinstance(data, list) else [None]
    found = []
    for entry in entries:
        index = entry.get("index") if isinstance(entry, dict) else None
        pids = entry.get("busy_pids", []) if isinstance(entry, dict) else None
        if not _whole(index) or not isinstance(pids, list) or not all(map(_whole, pids)):
            raise UserError(
                f'{where} must be a list of {{"index": 0, "name": "...", "busy_pids": [...]}}, '
                "one per GPU; fix or unset it."
            )
        name = str(entry.get("name", f"Fake GPU {index}"))
        uuid = str(entry.get("uuid", f"GPU-fake-{index}"))
        found.append(Gpu(index, name, uuid, busy_pids=tuple(pids)))
    return tuple(sorted(found, key=lambda gpu: gpu.index))


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def describe(found: tuple[Gpu, ...]) -> str:
    """ "4 GPUs (NVIDIA H200)", "1 GPU (Fake GPU 0)", "no GPU"."""
    if not found:
        return "no GPU"
    names = ", ".join(dict.fromkeys(gpu.name for gpu in found if gpu.name))
    count = f"{len(found)} GPU{'s' if len(found) != 1 else ''}"
    return f"{count} ({names})" if names else count


def check_fits(
    wanted: int | None, found: tuple[Gpu, ...] | None = None, *, batch_size: int | None = None
) -> None:
    """Refuse a run that asks for more GPUs than this machine has: it would wait for ever; and,
    given its `batch_size`, one on "all" whose batch does not divide by the GPUs here (see
    `batch_misfit`). On a machine without GPUs nothing is refused here (the devices are the
    CPU's: `placement`)."""
    found = gpus() if found is None else found
    if batch_size is not None:
        misfit = batch_misfit(wanted, batch_size, found)
        if misfit:
            raise ConfigError(misfit[0])
    if wanted is None or not found or wanted <= len(found):
        return
    raise ConfigError(
        f"devices {wanted} asks for more GPUs than this machine has: {describe(found)}; set "
        f'devices to {len(found)} or fewer, or "all".'
    )


def batch_misfit(
    wanted: int | None, batch_size: int, found: tuple[Gpu, ...]
) -> tuple[str, int] | None:
    """For devices "all" (None) on a machine with several GPUs, a batch size that does not
    divide by them: the message, and the nearest batch size that does (the one-click fix). An
    explicit device count is checked with the configuration (`config.config_from_dict`)."""
    if wanted is not None or len(found) < 2 or batch_size % len(found) == 0:
        return None
    fitted = fit_batch(batch_size, len(found))
    return (
        f'batch_size ({batch_size}) must divide by the {describe(found)} that devices "all" '
        f"trains on here, so that each gets the same share of every batch; use batch_size "
        f"{fitted}, or set devices.",
        fitted,
    )
