"""Plain-language advice from a run's history: overfitting, and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WINDOW = 3  # epochs over which a trend must hold before we speak up


def overfitting_advice(history: Sequence[dict[str, Any]]) -> str | None:
    """A warning when validation loss has risen for a few epochs while training loss fell."""
    rows = [r for r in history if r.get("val_loss") is not None and r.get("loss") is not None]
    if len(rows) < WINDOW + 1:
        return None
    recent = rows[-(WINDOW + 1) :]
    best_val = min(r["val_loss"] for r in rows)
    val_rising = (
        recent[-1]["val_loss"] > recent[0]["val_loss"] and recent[-1]["val_loss"] > best_val
    )
    train_falling = recent[-1]["loss"] < recent[0]["loss"]
    if not (val_rising and train_falling):
        return None
    best_epoch = min(rows, key=lambda r: r["val_loss"])["epoch"] + 1
    return (
        f"The model is overfitting: over the last {WINDOW} epochs the validation loss rose "
        f"({recent[0]['val_loss']:.3f} -> {recent[-1]['val_loss']:.3f}) while the training loss "
        f"kept falling. It was best at epoch {best_epoch}. Try data augmentation (flip, "
        "translation), Dropout or SpatialDropout2D layers, weight decay, or fewer epochs "
        "(early stopping does this for you)."
    )
