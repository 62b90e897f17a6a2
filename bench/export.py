"""Export cost per format (SavedModel, ONNX, LiteRT float32 and int8) for the tutorial and fast_cpu
models: seconds to export and prove, file size, single-image latency of each runtime against
Keras, and each proof's agreement, on the real CIFAR-10 copy's test images (the proof takes the
first 2,000). Each model is first trained with its preset's settings (`--epochs`, 3 by default;
`--limit` for a quick try), so that int8's accuracy against the float model means something;
timing does not depend on the weights.

    python -m bench.export [--epochs 3] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import cifar_source, write_result
from cnn_core import api
from cnn_core.config import config_from_dict
from cnn_core.deploy import export_run
from cnn_core.presets import load_preset

MODELS = ("tutorial_cnn", "fast_cpu")
EXPORTS = (("savedmodel", None), ("onnx", None), ("litert", None), ("litert", "int8"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3, help="training epochs before exporting")
    parser.add_argument("--limit", type=int, help="a quick try: train on this many images")
    args = parser.parse_args()
    source = cifar_source()
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for preset in MODELS:
            spec, settings = load_preset(preset).spec, load_preset(preset).config
            config = config_from_dict({**settings, "epochs": args.epochs, "limit": args.limit})
            run = api.start_run(spec, config, data_source=source, root=Path(root), detach=False)
            export_run(run, format="onnx", out=Path(root) / "warm")  # data cache, TensorFlow
            for format, quantize in EXPORTS:
                name = format + (f"-{quantize}" if quantize else "")
                start = time.perf_counter()
                report = export_run(run, format=format, quantize=quantize, out=Path(root) / name)
                seconds = time.perf_counter() - start
                results[f"{preset}/{name}"] = {
                    "export_and_proof_seconds": round(seconds, 2),
                    "convert_seconds": report.export_seconds,
                    "size_bytes": report.size_bytes,
                    "latency_ms": report.latency_ms,
                    "keras_latency_ms": report.keras_latency_ms,
                    "images": report.images,
                    "top1_agreement": report.top1_agreement,
                    "max_abs_diff": report.max_abs_diff,
                    "accuracy": report.accuracy,
                    "keras_accuracy": report.keras_accuracy,
                    "runtime": report.runtime,
                }
                print(f"{preset:<13} {name:<12} {seconds:5.1f} s  {report.summary()}")
    write_result("export", {"epochs": args.epochs, "limit": args.limit, "exports": results})


if __name__ == "__main__":
    main()
