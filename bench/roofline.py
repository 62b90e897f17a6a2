"""How close training comes to what this CPU can do: the roofline of issue 17.

1. The machine's measured peak, with TensorFlow (oneDNN) on its threads, for the operations our
   models spend their time in: 3x3 convolutions at the tutorial's and fast_cpu's sizes (forward,
   and forward with both backward passes, as a training step runs them) and a large matmul, in
   float32 and bfloat16.
2. The FLOPs per training image of each preset from our own shape inference: the multiply-adds
   of the forward pass (`shapes.analyze`) x 2 FLOPs x 3 (forward, backward to the inputs,
   backward to the weights).
3. Each preset's achieved rate: it trains through our `train` command (`--limit`, a few epochs,
   data cached) and its steady epochs' images per second times its FLOPs per image.
4. The ratio of the achieved rate to the peak of its precision (the convolution training peak):
   how much of the gap to the hardware is the algorithm and how much the machine.
5. Each preset's own convolutions, timed alone at its batch size and precision in each of the
   passes its training step runs (forward, backward to the input, backward to the weights): what
   its convolutions cost a step without anything else, against the whole step of item 3.

    python -m bench.roofline [--limit 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, cifar_source, write_result
from bench.training import GOALS
from cnn_core.presets import load_preset
from cnn_core.runs import Run
from cnn_core.shapes import analyze

PRESETS = ("tutorial_cnn", *GOALS)  # the tutorial beside the presets that have goals
# (name, input HxWxC, filters) of the convolutions measured; batch 64 as the presets train.
CONVOLUTIONS = (
    ("conv3x3 32x32x32->64", (32, 32, 32), 64),
    ("conv3x3 16x16x64->128", (16, 16, 64), 128),
)
MATMUL = 2048
BATCH = 64


def training_flops_per_image(preset: str) -> int:
    """2 FLOPs a multiply-add, 3 passes (forward, backward to inputs, backward to weights)."""
    return 6 * analyze(load_preset(preset).spec).total_macs


def measure_peaks(repeats: int = 20) -> list[dict]:
    """Peak FLOP/s of each measured operation, float32 and bfloat16, in this process."""
    import tensorflow as tf

    rows = []
    for dtype in ("float32", "bfloat16"):
        for name, (h, w, c), filters in CONVOLUTIONS:
            x = tf.random.normal((BATCH, h, w, c), dtype=tf.float32)
            k = tf.random.normal((3, 3, c, filters), dtype=tf.float32)
            x, k = tf.cast(x, dtype), tf.cast(k, dtype)
            macs = BATCH * h * w * 9 * c * filters

            @tf.function
            def forward(x=x, k=k):
                return tf.nn.conv2d(x, k, 1, "SAME")

            @tf.function
            def step(x=x, k=k):
                with tf.GradientTape() as tape:
                    tape.watch([x, k])
                    y = tf.nn.conv2d(x, k, 1, "SAME")
                    loss = tf.reduce_sum(tf.cast(y, tf.float32))
                return tape.gradient(loss, [x, k])

            rows.append(_timed(f"{name} forward", dtype, forward, 2 * macs, repeats))
            rows.append(_timed(f"{name} training", dtype, step, 6 * macs, repeats))
        a = tf.cast(tf.random.normal((MATMUL, MATMUL)), dtype)

        @tf.function
        def matmul(a=a):
            return tf.matmul(a, a)

        rows.append(_timed(f"matmul {MATMUL}x{MATMUL}", dtype, matmul, 2 * MATMUL**3, repeats))
    return rows


PASSES = ("forward", "backward to the input", "backward to the weights")


def preset_convolutions(preset: str, repeats: int = 10) -> list[dict]:
    """Each convolution of `preset`'s model as its training builds it, timed alone at the preset's
    batch size and compute precision in the passes a training step runs: forward, backward to
    the input (not for the first convolution, whose input needs no gradient) and backward to
    the weights; seconds and GFLOP/s per pass (2 FLOPs a multiply-add)."""
    import tensorflow as tf

    from bench.norm import preset_model
    from cnn_core._keras import keras
    from cnn_core.config import config_from_dict

    batch = config_from_dict(dict(load_preset(preset).config)).batch_size
    model = preset_model(preset)
    rows = []
    for layer in model.layers:
        if (
            not isinstance(layer, keras.layers.Conv2D)
            or layer.groups != 1
            or max(layer.dilation_rate) > 1
        ):
            continue
        h, w, c = layer.input.shape[1:]
        oh, ow, filters = layer.output.shape[1:]
        kh, kw = layer.kernel_size
        dtype = layer.compute_dtype
        strides = [1, *layer.strides, 1]
        padding = layer.padding.upper()
        x = tf.cast(tf.random.normal((batch, h, w, c)), dtype)
        k = tf.cast(tf.random.normal((kh, kw, c, filters)), dtype)
        dy = tf.cast(tf.random.normal((batch, oh, ow, filters)), dtype)
        macs = batch * oh * ow * kh * kw * c * filters
        functions = convolution_passes(x, k, dy, strides, padding, input_gradient=bool(rows))
        row = {"layer": layer.name, "shape": f"{h}x{w}x{c}->{filters}", "batch": batch}
        row["dtype"] = dtype
        for name in PASSES:
            if name in functions:
                timed = _timed(name, dtype, functions[name], 2 * macs, repeats)
                row[name] = {"seconds": timed["seconds"], "gflops": timed["gflops"]}
        rows.append(row)
    return rows


def convolution_passes(x, k, dy, strides: list[int], padding: str, *, input_gradient: bool):
    """The passes of one convolution as TensorFlow functions of no arguments; the backward pass
    to the input only with `input_gradient` (the first convolution's input, the pixels, gets
    none)."""
    import tensorflow as tf

    backprop = tf.compat.v1.nn
    functions = {
        "forward": tf.function(lambda: tf.nn.conv2d(x, k, strides, padding)),
        "backward to the weights": tf.function(
            lambda: backprop.conv2d_backprop_filter(x, list(k.shape), dy, strides, padding)
        ),
    }
    if input_gradient:
        functions["backward to the input"] = tf.function(
            lambda: backprop.conv2d_backprop_input(list(x.shape), k, dy, strides, padding)
        )
    return functions


def convolution_step_seconds(rows: list[dict]) -> float:
    """What a training step's convolutions cost when each pass runs alone."""
    return sum(row[name]["seconds"] for row in rows for name in PASSES if name in row)


def pass_rate(rows: list[dict], name: str) -> float:
    """GFLOP/s of one pass over all of a preset's convolutions that run it."""
    timed = [row[name] for row in rows if name in row]
    flops = sum(t["gflops"] * t["seconds"] for t in timed)
    return flops / sum(t["seconds"] for t in timed)


def _timed(name: str, dtype: str, fn, flops: int, repeats: int) -> dict:
    for _ in range(3):  # tracing, oneDNN's first-call set-up
        _block(fn())
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - began)
    best = min(times)
    return {"operation": name, "dtype": dtype, "seconds": best, "gflops": flops / best / 1e9}


def _block(result) -> None:
    import tensorflow as tf

    for tensor in tf.nest.flatten(result):
        tensor.numpy()


def training_peak(peaks: list[dict], dtype: str) -> float:
    """The fastest measured training convolution in `dtype`: the rate a preset is held to."""
    return max(r["gflops"] for r in peaks if r["dtype"] == dtype and "training" in r["operation"])


def achieved(preset: str, source: str, runs: str, *, limit: int, epochs: int) -> dict:
    """The preset trained through our train command; its steady images per second."""
    command = [sys.executable, "-m", "cnn_core", "train", preset, "--data", source]
    command += ["--runs-dir", runs, "--limit", str(limit), "--epochs", str(epochs), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    run_dir = Path(summary["run_dir"])
    history = Run(run_dir).history()
    split = json.loads((run_dir / "split.json").read_text())
    images = len(split["train"])
    seconds = statistics.median(row["epoch_seconds"] for row in history[1:] or history)
    log = (run_dir / "train.log").read_text(errors="replace")
    return {
        "train_images": images,
        "steady_epoch_seconds": seconds,
        "images_per_second": images / seconds,
        "precision": "bfloat16" if "bfloat16 mixed precision" in log else "float32",
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.roofline")
    parser.add_argument("--limit", type=int, default=10_000, help="training images per preset")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--peaks-only", action="store_true")
    args = parser.parse_args()
    threads = os.cpu_count()
    peaks = measure_peaks()
    presets = {}
    if not args.peaks_only:
        source = cifar_source()
        with tempfile.TemporaryDirectory() as runs:
            for preset in PRESETS:
                measured = achieved(preset, source, runs, limit=args.limit, epochs=args.epochs)
                flops = training_flops_per_image(preset)
                rate = measured["images_per_second"] * flops / 1e9
                peak = max(
                    row["gflops"]
                    for row in peaks
                    if row["dtype"] == measured["precision"]
                    and row["operation"].endswith("training")
                )
                convolutions = preset_convolutions(preset)
                batch = convolutions[0]["batch"]
                step = measured["steady_epoch_seconds"] / math.ceil(
                    measured["train_images"] / batch
                )
                presets[preset] = {
                    **measured,
                    "training_mflop_per_image": flops / 1e6,
                    "achieved_gflops": rate,
                    "peak_gflops": peak,
                    "ratio": rate / peak,
                    "batch": batch,
                    "step_seconds": step,
                    "convolutions": convolutions,
                    "convolution_step_seconds": convolution_step_seconds(convolutions),
                }
    print(f"peaks on {threads} threads (TensorFlow, oneDNN), batch {BATCH}:")
    for row in peaks:
        print(f"  {row['operation']:36} {row['dtype']:9} {row['gflops']:8.1f} GFLOP/s")
    for name, r in presets.items():
        print(
            f"  {name:14} {r['training_mflop_per_image']:6.1f} MFLOP/image x "
            f"{r['images_per_second']:7.0f} images/s = {r['achieved_gflops']:6.1f} GFLOP/s, "
            f"{r['ratio']:.0%} of the {r['precision']} peak ({r['peak_gflops']:.0f})"
        )
        print(
            f"    its convolutions alone {r['convolution_step_seconds'] * 1000:.1f} ms of a "
            f"{r['step_seconds'] * 1000:.1f} ms step (batch {r['batch']}); "
            + ", ".join(f"{n} {pass_rate(r['convolutions'], n):.0f} GFLOP/s" for n in PASSES)
        )
    write_result(
        "roofline",
        {"threads": threads, "batch": BATCH, "peaks": peaks, "presets": presets, **vars(args)},
    )


if __name__ == "__main__":
    main()
