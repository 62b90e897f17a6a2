"""The learning-rate finder as a short job in its own process, for the dashboard: like training,
it never runs in the server, and like training its folder is the only channel between the two.
It is not a run: its folder lives in the cache (`<cache>/lr-find/<id>/`) and holds the spec
(model.json), the configuration (settings.json), the job's log and, once done, `result.json`
(`LrFinding.to_dict()`). Pure: no Keras here (the job imports it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn_core import api, settings
from cnn_core.config import TrainConfig
from cnn_core.files import atomic_write_text
from cnn_core.runs import first_error
from cnn_core.spec import ModelSpec

# The job's files (named apart from a run's: this folder is not a run).
SPEC, CONFIG, RESULT, LOG, PID = "model.json", "settings.json", "result.json", "job.log", "pid"


@dataclass(frozen=True)
class LrJob:
    """One learning-rate finder job's folder."""

    path: Path

    def result(self) -> dict[str, Any] | None:
        """The finding, once the job has written it (None before, or if it is damaged)."""
        try:
            data = json.loads((self.path / RESULT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "suggestion" in data else None

    def alive(self) -> bool:
        try:
            pid = int((self.path / PID).read_text())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:  # a finished child not yet reaped is a zombie: not alive
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        return state != "Z"

    def failure(self) -> str | None:
        """Why the job ended without a result (its first error), once it has ended so."""
        if self.result() is not None or self.alive():
            return None
        try:
            log = (self.path / LOG).read_text(encoding="utf-8", errors="replace")
        except OSError:
            log = ""
        return first_error(log) or "the learning-rate finder stopped without a result."


KEEP_SECONDS = 86_400  # a finished job's folder is kept a day (a page may still show it)


def _forget_old(jobs: Path) -> None:
    try:
        found = list(jobs.iterdir())
    except OSError:
        return
    for folder in found:
        job = LrJob(folder)
        try:
            old = time.time() - folder.stat().st_mtime > KEEP_SECONDS
        except OSError:
            continue
        if old and folder.is_dir() and not folder.is_symlink() and not job.alive():
            shutil.rmtree(folder, ignore_errors=True)


def start_lr_job(spec: ModelSpec, config: TrainConfig, source: str | None) -> LrJob:
    """Start `cnn-workbench lr-find` for `spec` and `config` on `source` in its own process
    (and forget jobs older than a day)."""
    jobs = settings.cache_dir() / "lr-find"
    _forget_old(jobs)
    folder = jobs / secrets.token_hex(8)
    folder.mkdir(parents=True)
    atomic_write_text(folder / SPEC, spec.to_json())
    atomic_write_text(folder / CONFIG, config.to_json())
    args = ["lr-find", str(folder / SPEC), "--config", str(folder / CONFIG)]
    args += ["--out", str(folder / RESULT)]
    if source:
        args += ["--data", source]
    with open(folder / LOG, "wb") as log:
        pid = api.spawn_cli(args, log)
    atomic_write_text(folder / PID, str(pid))
    return LrJob(folder)
