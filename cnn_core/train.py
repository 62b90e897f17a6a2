"""The training worker: trains one run in this process, recording everything in its directory.

`train_run(run)` waits for a free training slot (one run at a time per runs root by default), loads
the data, builds and compiles the model, and calls `model.fit` with `RunRecorder`, which writes the
history, progress, status and a resumable checkpoint after every epoch, ends training within one
batch of a stop request, and catches a NaN loss. A killed process loses at most the epoch in
progress: `train_run` on the same run continues from the last checkpoint.

This module is the door: the parts live in `cnn_core.training`, one concern each (the queue, the
recorder, checkpoints, optimizers and schedules, the data, the worker's main), and their public
names are here. It imports Keras; the dashboard never imports it (it starts
`python -m cnn_core worker RUN` as a separate process through `cnn_core.api`).
"""

from __future__ import annotations

from cnn_core.training.checkpoints import checkpoints, portable_model, save_checkpoint, save_model
from cnn_core.training.data import class_weights, record_split, split_data, split_indices
from cnn_core.training.optim import OneCycle, dtype_policy, make_optimizer, make_schedule
from cnn_core.training.queue import QUEUE_POLL, max_parallel, training_slot
from cnn_core.training.recorder import (
    PROGRESS_INTERVAL,
    Diverged,
    RunRecorder,
    StopRequested,
    current_learning_rate,
    describe_epoch,
)
from cnn_core.training.worker import Outcome, train_run, write_status

__all__ = [
    "PROGRESS_INTERVAL",
    "QUEUE_POLL",
    "Diverged",
    "OneCycle",
    "Outcome",
    "RunRecorder",
    "StopRequested",
    "checkpoints",
    "class_weights",
    "current_learning_rate",
    "describe_epoch",
    "dtype_policy",
    "make_optimizer",
    "make_schedule",
    "max_parallel",
    "portable_model",
    "record_split",
    "save_checkpoint",
    "save_model",
    "split_data",
    "split_indices",
    "train_run",
    "training_slot",
    "write_status",
]
