"""1 device against 2 on this machine's CPU, for JAX and TensorFlow: what data-parallel training
costs, and whether it learns the same thing.

The CPU is split into two virtual devices (`CNN_CORE_CPU_DEVICES=2`) for every run, and each run
trains the tutorial model through our `train` command on `devices` 1 or 2, with the same seed,
the same global batch (64) and float32 (so that 1 and 2 devices differ only by the order of
floating-point sums). Splitting two cores into two devices adds no compute: these figures are
the distribution's overhead, not a speed-up; on a machine with several GPUs the same code spreads
the batch over real devices. Each case runs twice, in mirrored order (this machine's speed
drifts), in its own fresh process (the first decodes the subset, outside its epochs' time).

This is not a GPU benchmark (that is `bench.gpu`), and it judges no goal.

    python -m bench.scaling [--limit 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, cifar_source, write_result
from cnn_core.runs import Run

BACKENDS = ("jax", "tensorflow")
DEVICES = (1, 2)


def train(backend: str, devices: int, *, source: str, runs: str, limit: int, epochs: int) -> dict:
    """One run of the tutorial model on `devices` of the 2 virtual CPU devices of `backend`."""
    env = {**os.environ, "KERAS_BACKEND": backend, "CNN_CORE_CPU_DEVICES": "2"}
    command = [
        *(sys.executable, "-m", "cnn_core", "train", "tutorial_cnn", "--data", source),
        *("--runs-dir", runs, "--json", "--devices", str(devices), "--epochs", str(epochs)),
        *("--limit", str(limit), "--set", "seed=1", "--set", "mixed_precision=false"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    history = Run(Path(summary["run_dir"])).history()
    last = history[-1]
    return {
        "backend": backend,
        "devices": summary["devices"],
        "placement": summary["placement"],
        "epoch_seconds": [row["epoch_seconds"] for row in history],
        "images_per_second": summary["images_per_second"],
        "images_per_second_per_device": summary["images_per_second_per_device"],
        "loss": last["loss"],
        "accuracy": last["accuracy"],
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
    }


def steady(seconds: list[float]) -> float:
    """Median epoch time after the first, which pays for tracing and compiling."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def summarize(first: dict, second: dict) -> dict:
    """A case's two runs: steady epochs pooled, throughput averaged, the first run's result
    (the second has the same seed: how far it strays is `repeat_loss_difference`)."""
    epochs = first["epoch_seconds"][1:] + second["epoch_seconds"][1:]
    return {
        **{k: first[k] for k in ("backend", "devices", "placement", "loss", "accuracy")},
        "runs": [first, second],
        "steady_epoch_seconds": statistics.median(epochs or first["epoch_seconds"]),
        "images_per_second": _mean(first["images_per_second"], second["images_per_second"]),
        "images_per_second_per_device": _mean(
            first["images_per_second_per_device"], second["images_per_second_per_device"]
        ),
        "repeat_loss_difference": abs(first["loss"] - second["loss"]),
    }


def _mean(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2  # None: one batch, nothing timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=10_000, help="training images (a subset)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    source = cifar_source()
    load = os.getloadavg()  # another user of this machine shows here
    cases = [(backend, devices) for backend in BACKENDS for devices in DEVICES]
    with tempfile.TemporaryDirectory() as runs:
        done: dict[tuple[str, int], list[dict]] = {case: [] for case in cases}
        for backend, devices in [*cases, *reversed(cases)]:  # mirrored: A B C D D C B A
            print(f"{backend}, {devices} device(s)", flush=True)
            done[backend, devices].append(
                train(
                    backend, devices, source=source, runs=runs, limit=args.limit, epochs=args.epochs
                )
            )
    results = {f"{b}_{d}": summarize(*done[b, d]) for b, d in cases}
    for backend in BACKENDS:
        one, two = results[f"{backend}_1"], results[f"{backend}_2"]
        two["loss_difference"] = abs(two["loss"] - one["loss"])
        two["accuracy_difference"] = abs(two["accuracy"] - one["accuracy"])
        two["epoch_ratio"] = two["steady_epoch_seconds"] / one["steady_epoch_seconds"]
    print(f"{'case':<16}{'s/epoch':>9}{'images/s':>10}{'per dev':>9}{'loss':>10}{'accuracy':>10}")
    for name, r in results.items():
        print(
            f"{name:<16}{r['steady_epoch_seconds']:>9.2f}{r['images_per_second'] or 0:>10.0f}"
            f"{r['images_per_second_per_device'] or 0:>9.0f}{r['loss']:>10.5f}"
            f"{r['accuracy']:>10.4f}"
        )
    write_result(
        "scaling",
        {
            "limit": args.limit,
            "epochs": args.epochs,
            "batch_size": 64,
            "seed": 1,
            "load_average_before": load,
            "load_average_after": os.getloadavg(),
            "cases": results,
        },
    )


if __name__ == "__main__":
    main()
