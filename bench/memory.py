"""Memory of the data path, and the training feed's speed, each phase in a fresh process:

1. N synthetic 128x128 PNG photos in class folders (a temp folder): peak RSS of the first load
   (decode + cache), of a cached load, and of one training epoch of a small model fed from the
   memory-mapped cache through `cnn_core.feed.Feed`, against the same epoch fed today's way
   (the training rows copied out by fancy indexing, `model.fit` on arrays);
2. CIFAR-10 with the tutorial model, in one process: seconds per epoch fed by `Feed` from the
   memory-mapped cache against `model.fit` on in-RAM arrays, alternated in A B B A blocks
   because this machine's speed drifts; the ratio is the median of the blocks' ratios.

    python -m bench.memory [--images 40000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, ROOT, cifar_source, write_result

SIZE = 128
CLASSES = 4
BATCH = 64


def synthesise(folder: Path, n: int) -> int:
    """`n` PNG photos of 128x128, smooth colour fields with a little noise; returns bytes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, SIZE, dtype=np.float32)
    total = 0
    for i in range(n):
        label = i % CLASSES
        base = rng.integers(0, 200, 3).astype(np.float32)
        picture = base + 55 * ramp[:, None, None] * (label + 1) / CLASSES
        picture = picture + rng.integers(0, 8, (SIZE, SIZE, 3))
        path = folder / f"class{label}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(path, compress_level=1)
        total += path.stat().st_size
    return total


def phase(name: str, **options: object) -> dict:
    """Run one phase in a fresh process; its result, with its peak RSS in MB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if "cache" in options:
        env["CNN_CORE_CACHE"] = str(options["cache"])
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--phase", name, "--options", json.dumps(options)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peaks() -> dict:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the parent's peak across exec) and
    its largest child's (decode workers; forked, so counted from the parent's pages), in MB."""
    status = Path("/proc/self/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "peak_rss_mb": round(int(hwm.split()[1]) / 1024, 1),
        "worker_peak_rss_mb": round(children, 1),
    }


def run_phase(name: str, options: dict) -> dict:
    from cnn_core.datasets import load_dataset

    started = time.perf_counter()
    data = load_dataset(options["folder"], image_size=(SIZE, SIZE))
    loaded = time.perf_counter() - started
    result = {"load_seconds": round(loaded, 3), "train_images": len(data.y_train)}
    if name in ("feed", "arrays"):
        result.update(epoch(data, feed=name == "feed"))
    return {**result, **peaks()}


def small_model() -> object:
    from cnn_core._keras import keras

    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def epoch(data: object, *, feed: bool) -> dict:
    """One epoch of a small model on 90% of the training images (10% held out, as `_train`
    splits them), fed from the cache, or copied out the way training did before the feed."""
    from cnn_core.feed import Feed

    rows = np.arange(len(data.y_train))
    train, val = rows[: int(len(rows) * 0.9)], rows[int(len(rows) * 0.9) :]
    model = small_model()
    started = time.perf_counter()
    if feed:
        model.fit(
            Feed(data.x_train, data.y_train, train, batch_size=BATCH, shuffle=True),
            validation_data=Feed(data.x_train, data.y_train, val, batch_size=BATCH),
            epochs=1,
            shuffle=False,
            verbose=0,
        )
    else:
        x, y = data.x_train[train], data.y_train[train]
        vx, vy = data.x_train[val], data.y_train[val]
        model.fit(x, y, batch_size=BATCH, validation_data=(vx, vy), epochs=1, verbose=0)
    return {"epoch_seconds": round(time.perf_counter() - started, 2)}


def cifar_ratio(rounds: int) -> dict:
    """The tutorial model on CIFAR-10, one process: an epoch fed from the memory-mapped cache
    by `Feed` vs `model.fit` on in-RAM arrays (what training did before), alternated."""
    from cnn_core._keras import keras
    from cnn_core.builder import build_model
    from cnn_core.config import config_from_dict
    from cnn_core.datasets import load_dataset
    from cnn_core.feed import Feed
    from cnn_core.presets import load_preset
    from cnn_core.train import dtype_policy, make_optimizer

    source = cifar_source()
    preset = load_preset("tutorial_cnn")
    spec, config = preset.spec, config_from_dict(preset.config, source="preset tutorial_cnn")
    started = time.perf_counter()
    data = load_dataset(source)
    first = time.perf_counter() - started
    started = time.perf_counter()
    data = load_dataset(source)  # the cached load, memory-mapped
    cached = time.perf_counter() - started
    rows = np.arange(len(data.y_train))
    batch = config.batch_size
    policy = dtype_policy(config)
    model = build_model(spec, augmentation=config.augmentation, dtype_policy=policy)
    model.compile(
        optimizer=make_optimizer(config, len(rows) // batch, 100),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    feed = Feed(data.x_train, data.y_train, rows, batch_size=batch, shuffle=True, seed=1)
    x_ram, y_ram = np.array(data.x_train), np.array(data.y_train)
    model.fit(feed, epochs=1, shuffle=False, verbose=0)  # tracing and compiling, not timed
    model.fit(x_ram, y_ram, batch_size=batch, epochs=1, verbose=0)
    times: dict[str, list[float]] = {"feed": [], "arrays": []}
    cpu: dict[str, list[float]] = {"feed": [], "arrays": []}
    blocks, cpu_blocks = [], []  # each A B B A block's feed time over its arrays time
    for _ in range(rounds):
        block = {"feed": 0.0, "arrays": 0.0}
        cpu_block = {"feed": 0.0, "arrays": 0.0}
        for kind in ("feed", "arrays", "arrays", "feed"):
            started, started_cpu = time.perf_counter(), time.process_time()
            if kind == "feed":
                model.fit(feed, epochs=1, shuffle=False, verbose=0)
            else:
                model.fit(x_ram, y_ram, batch_size=batch, epochs=1, shuffle=True, verbose=0)
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - started_cpu  # every thread of this process
            times[kind].append(round(seconds, 2))
            cpu[kind].append(round(cpu_seconds, 2))
            block[kind] += seconds
            cpu_block[kind] += cpu_seconds
            print(f"  cifar10 epoch, {kind}: {seconds:.2f} s ({cpu_seconds:.2f} s CPU)", flush=True)
        blocks.append(round(block["feed"] / block["arrays"], 4))
        cpu_blocks.append(round(cpu_block["feed"] / cpu_block["arrays"], 4))
    ratio = statistics.median(blocks)
    return {
        "first_load_seconds": round(first, 2),
        "cached_load_seconds": round(cached, 3),
        "epoch_seconds": times,
        "precision": "bfloat16 mixed" if policy else "float32",
        "block_ratios": blocks,
        "ratio": ratio,
        "cpu_seconds": cpu,
        "cpu_block_ratios": cpu_blocks,
        "cpu_ratio": statistics.median(cpu_blocks),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=6, help="A B B A blocks for CIFAR-10")
    parser.add_argument("--phase")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--skip-cifar", action="store_true")
    parser.add_argument(
        "--only-cifar", action="store_true", help="measure CIFAR-10 only; keep the photo figures"
    )
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, json.loads(args.options))))
        return
    result: dict = {}
    if args.only_cifar:
        previous = RESULTS / "memory.json"
        result = json.loads(previous.read_text()) if previous.exists() else {}
        result.pop("machine", None)
        result["cifar10"] = cifar_ratio(args.rounds)
        write_result("memory", result)
        return
    if not args.skip_cifar:  # first: it is the shorter part
        result["cifar10"] = cifar_ratio(args.rounds)
        print(f"  cifar10: {result['cifar10']}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        started = time.perf_counter()
        png_bytes = synthesise(work / "photos", args.images)
        seconds = time.perf_counter() - started
        print(f"{args.images:,} PNGs, {png_bytes / 1e9:.2f} GB in {seconds:.0f} s", flush=True)
        options = {"folder": str(work / "photos"), "cache": str(work / "cache")}
        phases = {}
        for name in ("decode", "cached", "feed", "arrays"):
            phases[name] = phase(name, **options)
            print(f"  {name}: {phases[name]}", flush=True)
        result.update(
            images=args.images,
            size=SIZE,
            pixel_bytes=args.images * SIZE * SIZE * 3,
            png_bytes=png_bytes,
            cache_bytes=sum(p.stat().st_size for p in (work / "cache").iterdir()),
            phases=phases,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result("memory", result)


if __name__ == "__main__":
    main()
