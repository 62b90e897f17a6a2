"""What a run reports to the tools people already use, as it trains: TensorBoard event files in
its folder (Keras' own `TensorBoard` callback: loss, accuracy and learning rate per epoch, and
the model's graph where the backend has one), so `tensorboard --logdir runs` shows every run.
Only the run's writer reports (not the other processes of a run trained by several). A missing
package turns its part off with a line in the run's log, never a failed run."""

from __future__ import annotations

import contextlib
import importlib.util
import logging

from cnn_core._keras import keras
from cnn_core.runs import Run

log = logging.getLogger("cnn_core.train")  # one logger for the worker (`_attach_log`)


def tracking_callbacks(run: Run) -> list[keras.callbacks.Callback]:
    """The callbacks that report `run` to TensorBoard (where it can)."""
    if not run.writes:
        return []
    # Keras' callback writes through TensorFlow's summary ops, whatever the backend.
    missing = [p for p in ("tensorflow", "tensorboard") if importlib.util.find_spec(p) is None]
    if missing:
        log.info("TensorBoard logs are off: %s not installed (pip install tensorboard)", missing)
        return []
    return [
        keras.callbacks.TensorBoard(
            log_dir=str(run.tensorboard_dir), write_graph=True, update_freq="epoch"
        )
    ]


def close_trackers(trackers: list[keras.callbacks.Callback]) -> None:
    """Flush and close what the callbacks write, however fit ended (a stop request or a
    divergence ends it without Keras' own end of training; a second close does nothing)."""
    for tracker in trackers:
        with contextlib.suppress(Exception):
            tracker.on_train_end()
