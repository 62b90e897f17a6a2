"""Export cost per format (SavedModel, ONNX, LiteRT float32 and int8) for the tutorial and fast_cpu
models: seconds to export and prove, file size, single-image latency of each runtime against
Keras, and each proof's agreement, on the real CIFAR-10 copy's test images (a quick-try limit of
5,000 training images: about 1,000 test images). Untrained weights: timing does not depend on
them, and an untrained model's near-uniform outputs are the hardest case for top-1 agreement.

    python -m bench.export
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import cifar_source, write_result
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.datasets import CIFAR10_CLASSES
from cnn_core.deploy import export_run
from cnn_core.presets import load_preset
from cnn_core.runs import DATASET, MODEL, atomic_write_json, create_run

MODELS = ("tutorial_cnn", "fast_cpu")
EXPORTS = (("savedmodel", None), ("onnx", None), ("litert", None), ("litert", "int8"))


def main() -> None:
    source = cifar_source()
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for preset in MODELS:
            spec = load_preset(preset).spec
            run = create_run(spec, TrainConfig(limit=5000), data_source=source, root=Path(root))
            build_model(spec).save(run.file(MODEL))
            atomic_write_json(
                run.file(DATASET), {"source": source, "class_names": list(CIFAR10_CLASSES)}
            )
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
                    "runtime": report.runtime,
                }
                print(f"{preset:<13} {name:<12} {seconds:5.1f} s  {report.summary()}")
    write_result("export", {"exports": results})


if __name__ == "__main__":
    main()
