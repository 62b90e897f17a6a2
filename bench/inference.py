"""Responsiveness of a trained model: single-image prediction latency (the Predict page's path,
decoding included) and evaluation of the whole 10,000-image test set, tutorial model.

    python -m bench.inference
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import cifar_source, write_result
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.datasets import CIFAR10_CLASSES
from cnn_core.evaluate import evaluate_run
from cnn_core.predict import predict_images
from cnn_core.presets import load_preset
from cnn_core.runs import DATASET, MODEL, atomic_write_json, create_run


def main() -> None:
    source = cifar_source()
    spec = load_preset("tutorial_cnn").spec
    with tempfile.TemporaryDirectory() as root:
        run = create_run(spec, TrainConfig(), data_source=source, root=Path(root))
        build_model(spec).save(run.file(MODEL))  # timing does not depend on the weights
        atomic_write_json(
            run.file(DATASET), {"source": source, "class_names": list(CIFAR10_CLASSES)}
        )

        rng = np.random.default_rng(0)
        photos = {}
        for label, size in (("32x32 PNG", (32, 32)), ("640x480 JPEG", (640, 480))):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, format="PNG" if size == (32, 32) else "JPEG")
            photos[label] = buffer.getvalue()
        latency = {}
        for label, data in photos.items():
            for _ in range(5):
                predict_images(run, [("photo", data)])  # load, trace, warm up
            times = []
            for _ in range(50):
                start = time.perf_counter()
                predict_images(run, [("photo", data)])
                times.append(time.perf_counter() - start)
            latency[label] = statistics.median(times) * 1000
            print(f"predict one {label}: median {latency[label]:.2f} ms (50 calls)")

        evaluate_run(run)  # warm: dataset cache, model, tracing
        times = []
        for _ in range(3):
            start = time.perf_counter()
            report = evaluate_run(run, force=True)
            times.append(time.perf_counter() - start)
        print(
            f"evaluate {report.n:,} test images: best {min(times):.2f} s, "
            f"worst {max(times):.2f} s of 3"
        )
        start = time.perf_counter()
        evaluate_run(run)
        stored = time.perf_counter() - start
        print(f"read a stored evaluation: {stored * 1000:.1f} ms")
    write_result(
        "inference",
        {"predict_ms": latency, "evaluate_seconds": times, "stored_evaluation_ms": stored * 1000},
    )


if __name__ == "__main__":
    main()
