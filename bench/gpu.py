"""The GPU check of issue 16: the tutorial model and the ResNet preset on CIFAR-10, on one device
and on all devices, through our own `train` command, against the bare Keras tutorial on the same
GPU. It prints a table and writes `gpu.json`; it is not in `python -m bench`'s suite, which runs on
a CPU (`python -m bench --only gpu` runs it).

For each model and device count: seconds per epoch (median after the first, which compiles),
the first epoch, the sum of all epochs, the command's wall time, images per second (all devices
and per device, as our engine measures its training batches), an MFU estimate and the test
accuracy. MFU: training FLOPs per image, from our own shape inference (`cnn_core.shapes`:
multiply-adds x 2 FLOPs x 3 for forward and backward), times images per second per device,
divided by the device's dense peak (`PEAK_TFLOPS`; "unknown" for any other device).

The goals of issue 16 it judges (only on a full run, not with --quick):
- the tutorial model through our engine at least as fast per epoch as the bare Keras tutorial
  (`bench/tutorial_script.py`, run here on the same backend and device);
- the ResNet preset (`resnet_gpu`) at 93% test accuracy within 60 s of training (the sum of its
  epochs) on one H100 or H200.

On a GPU machine: the wheels below, our package as this clone (on PYTHONPATH; not `pip install
-e .`, whose requirements.txt brings TensorFlow and Streamlit; `pip install --no-deps -e .` does
too), the CIFAR-10 copy, no network and no TensorFlow (the JAX training path does not import it;
Keras only looks whether it is there when seeding). No GPU was lent to the session that wrote
this, so its GPU figures are not measured yet; a few minutes on one GPU is an estimate.

    pip install "jax[cuda12]" "keras>=3.15.1" pillow numpy
    cd cnn-workbench && export PYTHONPATH=$PWD KERAS_BACKEND=jax
    python -m bench.gpu --data /path/to/cifar10-jpeg.tar.gz    # writes bench/results/gpu.json

then copy the table it prints into BENCHMARKS.md's GPU section (`python -m bench --report` renders
the same from gpu.json, but rewrites the whole file from bench/results/, which does not hold every
section BENCHMARKS.md has).

A smoke test on a CPU (1 epoch on 600 training images in batches of 32, two virtual devices),
as tests/test_bench_gpu.py runs it (`--quick 120`) on a tiny synthetic JPEG tar:

    KERAS_BACKEND=jax CNN_CORE_CPU_DEVICES=2 python -m bench.gpu --quick --out /tmp/gpu
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

from bench.common import RESULTS, ROOT, cifar_source, machine
from bench.training import measured
from cnn_core.config import TrainConfig, fit_batch
from cnn_core.presets import load_preset
from cnn_core.runs import Run
from cnn_core.shapes import analyze

PRESETS = ("tutorial_cnn", "resnet_gpu")
# Dense peaks in TFLOP/s from NVIDIA's data sheets, looked up by the first name the device's
# name contains: (bfloat16, float32). Float32 is the TF32 tensor-core peak: XLA's default
# precision runs float32 matmuls and convolutions as TF32 on these GPUs.
PEAK_TFLOPS = (
    ("H200 NVL", 835.0, 417.5),
    ("H200", 989.4, 494.7),
    ("H100 NVL", 835.0, 417.5),
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.4, 494.7),  # SXM
    ("A100", 312.0, 156.0),
)
GOAL_ACCURACY, GOAL_SECONDS = 0.93, 60.0  # the ResNet preset on one H100/H200
QUICK_BATCH = 32  # --quick: small batches, so that even a tiny dataset has batches to time


def peak_tflops(device: str, precision: str) -> float | None:
    """The device's dense peak for `precision` ("bfloat16 mixed" or "float32"), None if unknown."""
    for name, bf16, fp32 in PEAK_TFLOPS:
        if name.lower() in device.lower():
            return bf16 if precision.startswith("bfloat16") else fp32
    return None


def training_flops(preset: str) -> float:
    """FLOPs to train on one image: multiply-adds x 2, x 3 for the forward and backward pass."""
    return analyze(load_preset(preset).spec).total_macs * 2 * 3


def devices_here(env: dict[str, str]) -> dict:
    """The kind, count and model of the devices our engine would use (in a child process, so
    that this one never takes GPU memory)."""
    probe = (
        "import json; from cnn_core.training.placement import available; "
        "kind, names, model = available('jax'); "
        "print(json.dumps({'kind': kind, 'count': len(names), 'model': model}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"could not list the devices:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_command(preset: str, devices: int, *, source: str, runs: str, quick: int) -> list[str]:
    """`python -m cnn_core train` for `preset` on `devices`, in the preset's own global batch
    unless that does not divide by `devices` (3 GPUs); `quick`: 1 epoch on that many training
    images, in small batches (0: the preset as it is)."""
    batch = QUICK_BATCH if quick else load_preset(preset).config.get("batch_size")
    batch = fit_batch(batch or TrainConfig.batch_size, devices)
    command = [
        *(sys.executable, "-m", "cnn_core", "train", preset, "--data", source),
        *("--runs-dir", runs, "--json", "--devices", str(devices), "--batch-size", str(batch)),
    ]
    return command + (["--epochs", "1", "--limit", str(quick)] if quick else [])


def ours(preset: str, devices: int, *, source: str, runs: str, env: dict, quick: int) -> dict:
    """One run of `preset` through our `train` command, then its test accuracy."""
    command = train_command(preset, devices, source=source, runs=runs, quick=quick)
    batch = int(command[command.index("--batch-size") + 1])
    lines, stats = measured(command, env=env)
    summary = json.loads(lines[-1])
    evaluation = subprocess.run(
        [sys.executable, "-m", "cnn_core", "evaluate", summary["run_dir"], "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    run = Run(Path(summary["run_dir"]))
    seconds = [row["epoch_seconds"] for row in run.history()]
    log = run.file("train.log").read_text(errors="replace")
    return {
        "preset": preset,
        "devices": summary["devices"],
        "placement": summary["placement"],
        "precision": "bfloat16 mixed" if "bfloat16 mixed precision" in log else "float32",
        "batch_size": batch,
        "epoch_seconds": seconds,
        "steady_epoch_seconds": steady(seconds),
        "training_seconds": sum(seconds),
        "wall_seconds": stats["wall_seconds"],
        "images_per_second": summary["images_per_second"],
        "images_per_second_per_device": summary["images_per_second_per_device"],
        "test_accuracy": json.loads(evaluation.stdout.strip().splitlines()[-1])["accuracy"],
    }


def with_mfu(row: dict, model: str) -> dict:
    """`row` with its achieved TFLOP/s per device and MFU (None where not known)."""
    flops, per_device = training_flops(row["preset"]), row["images_per_second_per_device"]
    achieved = flops * per_device / 1e12 if per_device else None
    peak = peak_tflops(model, row["precision"])
    mfu = achieved / peak if achieved is not None and peak else None
    return {
        **row,
        "training_gflops_per_image": flops / 1e9,
        "tflops_per_device": achieved,
        "peak_tflops": peak,
        "mfu": mfu,
    }


def bare_tutorial(*, source: str, env: dict, quick: int) -> dict:
    command = [sys.executable, "-m", "bench.tutorial_script"]
    command += ["--epochs", "1", "--limit", str(quick)] if quick else ["--epochs", "15"]
    lines, stats = measured(command, env={**env, "CNN_CORE_DATA": source})
    result = {**json.loads(lines[-1]), **stats}
    return {**result, "steady_epoch_seconds": steady(result["epoch_seconds"])}


def steady(seconds: list[float]) -> float:
    """Median epoch time without the first epoch, which includes tracing and compilation."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


GOALS = ("tutorial_vs_bare_keras", "resnet_93_in_60s")


def goals(rows: list[dict], bare: dict, device: dict, *, quick: int) -> dict:
    """Each goal of issue 16: met, not met, or why it was not judged."""
    if quick:
        return {"tutorial_vs_bare_keras": "not judged (--quick)", "resnet_93_in_60s": "not judged"}
    one = {row["preset"]: row for row in rows if row["devices"] == 1}
    if set(one) != set(PRESETS):
        return dict.fromkeys(GOALS, "not judged: --presets left one out")
    tutorial, resnet = one["tutorial_cnn"], one["resnet_gpu"]
    faster = tutorial["steady_epoch_seconds"] <= bare["steady_epoch_seconds"]
    if not any(name in device["model"] for name in ("H100", "H200")):
        fast = f"not judged: the device is {device['model'] or device['kind']}, not an H100/H200"
    else:
        ok = resnet["test_accuracy"] >= GOAL_ACCURACY and resnet["training_seconds"] < GOAL_SECONDS
        fast = "met" if ok else "not met"
    return {"tutorial_vs_bare_keras": "met" if faster else "not met", "resnet_93_in_60s": fast}


def table(rows: list[dict], bare: dict) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "unknown" if value is None else format(value, spec)

    lines = [
        "| model | devices | batch | precision | s/epoch | first epoch s | training s | wall s | "
        "images/s | per device | TFLOP/s per device | MFU | test accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['placement']} | {r['batch_size']} | {r['precision']} | "
            f"{r['steady_epoch_seconds']:.2f} | {r['epoch_seconds'][0]:.2f} | "
            f"{r['training_seconds']:.1f} | {r['wall_seconds']:.1f} | "
            f"{cell(r['images_per_second'], ',.0f')} | "
            f"{cell(r['images_per_second_per_device'], ',.0f')} | "
            f"{cell(r['tflops_per_device'], '.2f')} | {cell(r['mfu'], '.1%')} | "
            f"{r['test_accuracy']:.4f} |"
        )
    lines.append(
        f"| bare Keras tutorial script | 1 | 64 | float32 | {bare['steady_epoch_seconds']:.2f} | "
        f"{bare['epoch_seconds'][0]:.2f} | {sum(bare['epoch_seconds']):.1f} | "
        f"{bare['wall_seconds']:.1f} | | | | | {bare['test_accuracy']:.4f} |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu")
    parser.add_argument(
        "--quick",
        nargs="?",
        const=600,
        default=0,
        type=int,
        metavar="N",
        help="a smoke test: 1 epoch on N training images (default 600), batch 32",
    )
    parser.add_argument("--data", metavar="PATH", help="CIFAR-10 (default: the shared copy)")
    parser.add_argument("--out", metavar="DIR", help="where gpu.json goes (bench/results)")
    parser.add_argument(
        "--presets",
        nargs="+",
        choices=PRESETS,
        default=list(PRESETS),
        help="which presets to train (default: both); the goals need both",
    )
    args = parser.parse_args()
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        raise SystemExit("bench.gpu measures the JAX backend: set KERAS_BACKEND=jax.")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    source = args.data or cifar_source()
    device = devices_here(env)
    counts = sorted({1, device["count"]})  # one device, then all of them (if more than one)
    with tempfile.TemporaryDirectory() as runs:
        if not args.quick:  # warm the dataset cache so that no contender pays the first decode
            subprocess.run(
                [sys.executable, "-m", "cnn_core", "data", source],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
        rows = []
        for preset in args.presets:
            for count in counts:
                print(f"{preset} on {count} {device['kind']} device(s)", flush=True)
                row = ours(preset, count, source=source, runs=runs, env=env, quick=args.quick)
                rows.append(with_mfu(row, device["model"]))
        print("bare Keras tutorial script", flush=True)
        bare = bare_tutorial(source=source, env=env, quick=args.quick)
    verdicts = goals(rows, bare, device, quick=args.quick)
    print(table(rows, bare))
    for goal, verdict in verdicts.items():
        print(f"{goal}: {verdict}")
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("gpu-quick.json" if args.quick else "gpu.json")
    result = {
        "machine": machine(),
        "device": device,
        "quick": args.quick,
        "data": source,
        "runs": rows,
        "bare_tutorial": bare,
        "goals": verdicts,
    }
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
