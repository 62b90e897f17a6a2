"""Bookkeeping overhead: what a run's recording (history, progress, status, checkpoint every
epoch, the per-batch stop and NaN checks, and the TensorBoard event files) costs against a bare
`model.fit`, tutorial model.

Same model, data, batch size and process; the two modes alternate so that drift hits both.
Also times the recorder's own methods directly, which is the steadier figure.

`--hooks` trains nothing: it calls every callback's hooks as `fit` would for epochs of
`--train` images (a 13 ms sleep standing for each batch's step, so that progress is written as
often as in a real epoch) and times each hook of each callback; no data needed, seconds to run.

    python -m bench.bookkeeping [--train 10000] [--epochs 2] [--trials 2]
    python -m bench.bookkeeping --hooks [--epochs 6]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import cifar_source, write_result
from bench.timers import EpochTimer
from cnn_core._keras import keras
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.datasets import load_dataset
from cnn_core.presets import load_preset
from cnn_core.runs import create_run
from cnn_core.train import RunRecorder
from cnn_core.training.tracking import Tracking

CALLBACK_METHODS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_epoch_end",
    "on_train_end",
)


ONCE = ("on_train_begin", "on_train_end")  # once a run (TensorBoard writes the model then)


def timed(callbacks: list, spent: list[float]) -> None:
    """Wrap the callbacks' methods to add up the time spent inside them: every epoch's into
    `spent[0]`, the once-a-run methods' into `spent[1]`."""
    for callback in callbacks:
        _timed(callback, spent)


def _timed(recorder, spent: list[float]) -> None:
    for name in CALLBACK_METHODS:
        slot = 1 if name in ONCE else 0
        method = getattr(recorder, name)

        def wrapper(*args, _method=method, _slot=slot, **kwargs):
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[_slot] += time.perf_counter() - start

        setattr(recorder, name, wrapper)


def reporters() -> str:
    """Every run's reporters, as a user's would be: TensorBoard, and MLflow (a SQLite store in a
    scratch folder) where it is installed. Their names."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    if importlib.util.find_spec("mlflow") and importlib.util.find_spec("sqlalchemy"):
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{scratch / 'mlflow.db'}")
        os.chdir(scratch)  # the store's artifacts go below the working folder
    tracked = "TensorBoard and MLflow" if os.environ.get("MLFLOW_TRACKING_URI") else "TensorBoard"
    print(f"recorded runs report to {tracked}")
    return tracked


STEP_SECONDS = 0.013  # stands for a batch's step in --hooks (2.2 s epochs of 157 batches)


def hooks(images: int, epochs: int) -> None:
    """Each callback's hooks called directly, as fit calls them, and timed one by one."""
    import numpy as np

    tracked = reporters()
    spec = load_preset("tutorial_cnn").spec
    model = build_model(spec)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(np.zeros((64, *spec.input_shape)), np.zeros(64))  # optimizer built
    batches = -(-images // 64)
    with tempfile.TemporaryDirectory() as root:
        run = create_run(spec, TrainConfig(), data_source="bench", root=Path(root))
        recorder = RunRecorder(
            run, run.status(), [], batches=batches, batch_size=64, epochs=epochs + 1, echo=False
        )
        tracking = Tracking.start(run, TrainConfig(), spec)
        callbacks = [recorder, *tracking.callbacks]
        spent: dict[str, float] = {}

        def call(hook: str, *args) -> None:
            for callback in callbacks:
                start = time.perf_counter()
                getattr(callback, hook)(*args)
                key = f"{type(callback).__name__}.{hook}"
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - start

        for callback in callbacks:
            callback.set_model(model)
        call("on_train_begin", {})
        figures = {"loss": 1.8, "accuracy": 0.4}
        for epoch in range(epochs + 1):
            if epoch == 1:
                spent.clear()  # the first epoch's first calls set things up
            call("on_epoch_begin", epoch, {})
            for batch in range(batches):
                call("on_train_batch_begin", batch, {})
                time.sleep(STEP_SECONDS)
                call("on_train_batch_end", batch, figures)
            call("on_test_begin", {})
            for batch in range(-(-2000 // 64)):
                call("on_test_batch_begin", batch, {})
                call("on_test_batch_end", batch, figures)
            call("on_test_end", figures)
            val = {"val_loss": 1.9, "val_accuracy": 0.35, "learning_rate": 0.001}
            call("on_epoch_end", epoch, {**figures, **val})
        call("on_train_end", {})
        tracking.close()
    per_epoch = {key: seconds / epochs * 1000 for key, seconds in spent.items()}
    per_epoch = {k: round(v, 2) for k, v in sorted(per_epoch.items(), key=lambda kv: -kv[1])}
    for key, ms in per_epoch.items():
        if ms >= 0.1:
            print(f"{key:<40} {ms:8.2f} ms per epoch")
    total = sum(per_epoch.values())
    print(f"inside the recorder and {tracked}, hooks called directly: {total:.1f} ms per epoch")
    write_result(
        "bookkeeping_hooks",
        {
            "train_images": images,
            "epochs": epochs,
            "tracked": tracked,
            "ms_per_epoch": round(total, 2),
            "hooks_ms_per_epoch": per_epoch,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--hooks", action="store_true", help="time each hook, training nothing")
    args = parser.parse_args()
    if args.hooks:
        hooks(args.train, args.epochs)
        return

    data = load_dataset(cifar_source())
    tracked = reporters()
    x, y = data.x_train[: args.train], data.y_train[: args.train]
    x_val, y_val = data.x_train[-2000:], data.y_train[-2000:]
    spec = load_preset("tutorial_cnn").spec
    results: dict[str, list[float]] = {"bare": [], "recorded": []}
    inside: list[float] = []
    once: list[float] = []  # seconds a run spends in the reporters' start and end
    with tempfile.TemporaryDirectory() as root:
        for trial in range(args.trials):
            for mode in ("bare", "recorded") if trial % 2 == 0 else ("recorded", "bare"):
                keras.utils.set_random_seed(trial)
                model = build_model(spec)
                model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
                timer = EpochTimer()
                callbacks: list = [timer]
                if mode == "recorded":
                    run = create_run(spec, TrainConfig(), data_source="bench", root=Path(root))
                    status = run.status()
                    recorder = RunRecorder(
                        run,
                        status,
                        [],
                        batches=-(-len(y) // 64),
                        batch_size=64,
                        epochs=args.epochs,
                        echo=False,
                    )
                    # TensorBoard, and MLflow (a SQLite store beside the runs) as every run has them
                    trackers = Tracking.start(run, TrainConfig(), spec).callbacks
                    spent = [0.0, 0.0]
                    timed([recorder, *trackers], spent)
                    callbacks[:0] = [recorder, *trackers]
                model.fit(
                    x,
                    y,
                    batch_size=64,
                    epochs=args.epochs,
                    validation_data=(x_val, y_val),
                    callbacks=callbacks,
                    verbose=0,
                )
                results[mode] += timer.seconds[1:]  # the first epoch includes tracing
                if mode == "recorded":
                    inside.append(spent[0] / args.epochs)
                    once.append(spent[1])
                print(f"trial {trial} {mode:>8}: epochs {[round(s, 2) for s in timer.seconds]}")
    bare, recorded = statistics.median(results["bare"]), statistics.median(results["recorded"])
    per_epoch_inside = statistics.median(inside)
    epoch = min(bare, recorded)  # a noisy, long bare epoch would flatter the share
    print(f"bare model.fit:     {bare:.2f} s per epoch ({args.train:,} images, batch 64)")
    print(f"recorded ({tracked}): {recorded:.2f} s per epoch ({(recorded / bare - 1) * 100:+.1f}%)")
    print(
        f"inside the recorder and {tracked}: {per_epoch_inside * 1000:.0f} ms per epoch "
        f"({per_epoch_inside / epoch * 100:.2f}% of an epoch of {epoch:.2f} s), and "
        f"{statistics.median(once) * 1000:.0f} ms once a run (start and end)"
    )
    write_result(
        "bookkeeping",
        {
            "train_images": args.train,
            "bare_epoch_seconds": bare,
            "recorded_epoch_seconds": recorded,
            "overhead_percent_ab": (recorded / bare - 1) * 100,
            "recorder_seconds_per_epoch": per_epoch_inside,
            "recorder_percent": per_epoch_inside / epoch * 100,  # as BENCHMARKS.md has it
            "once_per_run_seconds": statistics.median(once),
            "tracked": tracked,
        },
    )


if __name__ == "__main__":
    main()
