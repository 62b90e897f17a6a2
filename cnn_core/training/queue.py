"""The queue: a run waits, as `queued`, for a training slot (one run at a time per runs root
by default, `settings.max_parallel`) and its turn. Slots are `flock`ed files, so the kernel frees
a slot the moment its process dies, however it dies. No Keras here."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator

from cnn_core import access, runs, settings
from cnn_core.runs import Phase, Progress, Run, RunStatus

QUEUE_POLL = 0.5  # seconds between looks at the queue


def max_parallel() -> int:
    """Runs that may train at once per runs root (`settings.max_parallel`)."""
    return settings.max_parallel()


@contextlib.contextmanager
def training_slot(run: Run, status: RunStatus) -> Iterator[bool]:
    """Wait, as `queued`, until this run is first in line and a slot is free; hold it.

    Yields False if a stop was requested while waiting. Slots are `flock`ed files, so a slot is
    freed by the kernel the moment its process dies, however it dies.
    """
    folder = run.path.parent / ".slots"
    folder.mkdir(exist_ok=True)
    handles = [open(folder / f"slot-{i}.lock", "a+") for i in range(max_parallel())]  # noqa: SIM115
    held = None
    try:
        while held is None:
            if run.stop_requested():
                yield False
                return
            # a shared server's user at their limit of runs training waits, passed by others
            allowed = access.may_train_now(run)
            ahead = runs.queued_ahead(run, status, eligible=access.may_train_now)
            if allowed and ahead < len(handles):
                for handle in handles:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    held = handle
                    break
            if held is None:
                run.write_progress(Progress(phase=Phase.QUEUED, runs_ahead=ahead))
                time.sleep(QUEUE_POLL)
        yield True
    finally:
        for handle in handles:
            handle.close()  # closing releases the lock
