"""What the reliability drills share beyond `support` (the tiny network, data, waiting, the
server): runs with a saved model, snapshots of folders, and ways to wait for, kill and find a
training process and to read a page driven through `AppTest`.

Nothing here is a drill; the drills are the `test_drill_*.py` files beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest
from support import CLASSES, TINY, wait_for_state, wait_until

from cnn_core.config import TrainConfig
from cnn_core.runs import (
    DATASET,
    MODEL,
    STATUS,
    Run,
    RunStatus,
    atomic_write_json,
    create_run,
    now_iso,
)

# --- data and runs -------------------------------------------------------------------------------


def make_model_run(root: Path, *, data_source: str = "unused") -> Run:
    """A run holding an untrained model.keras of TINY and its class names, made without training."""
    from cnn_core.builder import build_model

    run = create_run(TINY, TrainConfig(epochs=1), data_source=data_source, root=root)
    build_model(TINY).save(run.file(MODEL))
    atomic_write_json(run.file(DATASET), {"source": data_source, "class_names": list(CLASSES)})
    mark_completed(run, epochs=1)
    return run


def mark_completed(run: Run, *, epochs: int, **more: Any) -> None:
    """Write `run`'s status as completed: `epochs` of `epochs` done, every timestamp now."""
    times = dict.fromkeys(("created_at", "started_at", "ended_at"), now_iso())
    done = RunStatus(
        state="completed", epochs_completed=epochs, epochs_target=epochs, **times, **more
    )
    atomic_write_json(run.file(STATUS), done.to_dict())


def copy_run(template: Run, root: Path) -> Run:
    target = root / template.name
    shutil.copytree(template.path, target)
    return Run(target)


def tree_snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folders` with its size and modification time, to prove nothing changed."""
    found = {}
    for folder in folders:
        if folder.exists():
            for path in folder.rglob("*"):
                if path.is_file():
                    info = path.stat()
                    found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def rss_bytes() -> int:
    """This process's resident memory, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- waiting for training processes ------------------------------------------------------------


def kill_mid_epoch(run: Run, *, after_epochs: int) -> int:
    """SIGKILL the run's worker a little way into an epoch after the first `after_epochs`; return
    the number of completed epochs, which the epoch cut short must not have changed."""

    def training_next_epoch() -> bool:
        status, progress = run.status(), run.progress()
        return (
            status.state == "running"
            and status.epochs_completed >= after_epochs
            and progress.phase == "training"
            and progress.epoch == status.epochs_completed + 1
        )

    while True:
        wait_until(training_next_epoch, 90, what=f"{run.name} mid-epoch: {run.log_tail(20)}")
        done = run.status().epochs_completed
        time.sleep(0.2)  # into the epoch, which takes about 0.7 s
        status = run.status()
        if status.epochs_completed == done and run.progress().phase == "training":
            break
    os.kill(status.pid, signal.SIGKILL)
    killed = wait_for_state(run, lambda s: s.state == "interrupted", 15)
    assert killed.epochs_completed == done, (killed, done)
    return done


def worker_pids(run: Run) -> list[int]:
    """Processes whose command line names the run's folder: its training worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(run.path).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def no_worker_left(run: Run) -> Iterator[None]:
    """However the drill ends, no training process of `run` outlives it."""
    try:
        yield
    finally:
        for pid in worker_pids(run):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# --- driving the dashboard -----------------------------------------------------------------------


def messages(at: AppTest) -> list[str]:
    """Every error, warning and info the page shows, in that order, as the reader sees it: the
    pages backslash-escape the punctuation of text they show (`dashboard.text.plain`)."""
    return [shown(e.value) for e in (*at.error, *at.warning, *at.info)]


def shown(markdown: str) -> str:
    """Markdown source as it reads on the page, for text escaped by `dashboard.text.plain`:
    each `\\x` shows as `x`, and the word joiners that break up addresses are invisible."""
    return re.sub(r"\\([!-/:-@[-`{-~])", r"\1", markdown).replace("\u2060", "")
