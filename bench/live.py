"""How good the Train page's "time left" is on a real run: the Fast CPU preset on CIFAR-10.

Trains the preset with its recommended settings in a detached worker, as the dashboard does, and
reads progress.json every 0.1 s as the page does. For every reading while training it compares
the estimate with the time that really was left (until the run's last epoch ended), and reports
when the first estimate appeared and how far off the estimates were. The same readings are
also put through the formula used before issue 11 (time per batch from the start of the epoch,
so the first batch's compilation counted), to show what it would have said.

    python -m bench.live
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.common import cifar_source, write_result
from cnn_core import api
from cnn_core.config import config_from_dict
from cnn_core.presets import load_preset

POLL = 0.1  # seconds between readings of progress.json
TIMEOUT = 30 * 60


def old_estimate(reading: dict, epoch_start: float, last_epoch: float | None) -> float | None:
    """The estimate as the recorder computed it before issue 11."""
    batch, batches = reading["batch"], reading["batches"]
    if not batch:
        return None
    per_batch = (reading["t"] - epoch_start) / batch
    epoch_seconds = last_epoch or per_batch * batches
    return (batches - batch) * per_batch + epoch_seconds * (reading["epochs"] - reading["epoch"])


def main() -> None:
    source = cifar_source()
    preset = load_preset("fast_cpu")
    config = config_from_dict(preset.config, source="fast_cpu")
    with tempfile.TemporaryDirectory() as tmp:
        run = api.start_run(preset.spec, config, data_source=source, root=Path(tmp) / "runs")
        readings: list[dict] = []
        deadline = time.monotonic() + TIMEOUT
        while not run.status().finished:
            if time.monotonic() > deadline:
                api.request_stop(run)
                raise SystemExit(f"the run did not finish in {TIMEOUT} s: {run.status()}")
            progress = run.progress().to_dict()
            if progress.get("phase") in ("training", "validating"):
                reading = {**progress, "t": time.time()}
                if not readings or (reading["epoch"], reading["batch"], reading["phase"]) != (
                    readings[-1]["epoch"],
                    readings[-1]["batch"],
                    readings[-1]["phase"],
                ):
                    readings.append(reading)
            time.sleep(POLL)
        status, history = run.status(), run.history()
    if status.state != "completed" or not readings:
        raise SystemExit(f"the run ended {status.state}: {status.error}")
    # The end of training: the last epoch's row, written when its validation ended.
    end = readings[-1]["t"]
    start = readings[0]["t"]  # epoch 1, batch 0: data loaded, model built
    epoch_starts = {r["epoch"]: r["t"] for r in readings if r["batch"] == 0}
    epoch_seconds = {int(row["epoch"]) + 1: row["epoch_seconds"] for row in history}

    errors, old_errors = [], []
    first_new = first_old = None
    for r in readings:
        if r["phase"] != "training":
            continue
        actual = end - r["t"]
        if actual < 1:
            break
        new = r.get("eta_seconds")
        epoch_start = epoch_starts.get(r["epoch"], start)
        old = old_estimate(r, epoch_start, epoch_seconds.get(r["epoch"] - 1))
        if new is not None:
            errors.append(new / actual - 1)
            first_new = first_new or {"after_s": r["t"] - start, "said_s": new, "left_s": actual}
        if old is not None:
            old_errors.append(old / actual - 1)
            first_old = first_old or {"after_s": r["t"] - start, "said_s": old, "left_s": actual}

    def summary(values: list[float]) -> dict:
        return {
            "median_abs_error": statistics.median(abs(v) for v in values),
            "max_error": max(values, key=abs),
        }

    result = {
        "preset": "fast_cpu",
        "epochs": status.epochs_completed,
        "training_seconds": round(end - start, 1),
        "readings": len(errors),
        "first_estimate": first_new,
        "estimates": summary(errors),
        "before_issue_11": {"first_estimate": first_old, "estimates": summary(old_errors)},
    }
    print(
        f"training {result['training_seconds']} s; first estimate {first_new['after_s']:.1f} s "
        f"in: {first_new['said_s']:.0f} s left (really {first_new['left_s']:.0f} s); median "
        f"error {result['estimates']['median_abs_error']:.0%}, worst "
        f"{result['estimates']['max_error']:+.0%}"
    )
    print(
        f"the old formula: first estimate {first_old['said_s']:.0f} s left (really "
        f"{first_old['left_s']:.0f} s); median error "
        f"{result['before_issue_11']['estimates']['median_abs_error']:.0%}, worst "
        f"{result['before_issue_11']['estimates']['max_error']:+.0%}"
    )
    write_result("live", result)


if __name__ == "__main__":
    main()
