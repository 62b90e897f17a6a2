"""What a live run's progress means, in words: the Train page draws it, this module says it.

`progress_view(status, progress)` turns a run's status and progress.json (`runs.Progress`) into
plain data: a waiting message, or a progress bar's fraction and its text (epoch, batch, speed,
time left). Nothing here draws, reads files or imports Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn_core.runs import Phase, Progress, RunStatus, State

_EPOCH_PHASES = (Phase.TRAINING, Phase.VALIDATING, Phase.EPOCH_DONE)


@dataclass(frozen=True)
class ProgressView:
    """How far a live run is: `waiting` text (a queued run), or a bar (`fraction`, `text`);
    neither for a run that is not live."""

    waiting: str | None = None
    fraction: float | None = None  # 0..1, the epoch in progress's batches done
    text: str = ""


def progress_view(status: RunStatus, progress: Progress) -> ProgressView:
    """Where a queued or training run is: waiting, or epoch, batch, speed and time left."""
    if status.state == State.QUEUED:
        # The worker writes phase "queued" only while it waits for a slot: behind a run that
        # trains (runs_ahead counts only queued runs, so it is 0 then) or behind queued ones.
        waiting = progress.phase == Phase.QUEUED
        return ProgressView(
            waiting="Waiting for the run before it to finish." if waiting else "Starting…"
        )
    if status.state != State.RUNNING:
        return ProgressView()
    phase = str(progress.phase or "starting")
    batch, batches = progress.batch or 0, progress.batches or 0
    text = phase.capitalize()
    if batches and progress.phase in _EPOCH_PHASES:
        text = f"Epoch {progress.epoch}/{progress.epochs}, batch {batch}/{batches} ({phase})"
        if progress.images_per_second:
            text += f" · {progress.images_per_second:,.0f} images/s"
            if status.devices and status.devices > 1:
                each = progress.images_per_second / status.devices
                text += f" on {status.placement or f'{status.devices} devices'} ({each:,.0f} each)"
        if progress.eta_seconds is not None:
            text += f" · about {format_seconds(progress.eta_seconds)} left"
        elif progress.phase == Phase.TRAINING:
            text += " · estimating the time left"
    return ProgressView(fraction=min(batch / batches, 1.0) if batches else 0.0, text=text)


def placement_text(status: RunStatus) -> str | None:
    """Where a run trained and how fast, once known: "on 2 GPU devices (…): 9,000 images/s
    (4,500 per device)"; None before its first epoch (or for a run made before devices)."""
    if not status.placement:
        return None
    text = f"on {status.placement}"
    if status.images_per_second:
        text += f": {status.images_per_second:,.0f} images/s"
        if status.devices and status.devices > 1:
            text += f" ({status.images_per_second / status.devices:,.0f} per device)"
    return text


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
