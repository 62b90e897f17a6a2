"""A pretrained-backbone body against the tutorial CNN, at the same input size, on CIFAR-10.

There is no network here, so the backbone (MobileNetV3-Small, Keras' own) starts from random
weights and trains whole; where a network exists, `"weights": "imagenet"` with `fine_tune` is the
configuration to measure instead. Each contender trains `--epochs` epochs through our `train`
command in its own fresh process (data already cached), then is evaluated on the 10,000 test
images: seconds per steady epoch (the first pays for compiling), wall time, peak memory and test
accuracy.

    python -m bench.transfer [--epochs 3] [--size 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, cifar_source, write_result
from bench.training import ours, steady
from cnn_core.presets import load_preset


def backbone_spec(size: int) -> dict:
    """MobileNetV3-Small (random weights, trained whole), pooled, then the classifier head."""
    return {
        "version": 1,
        "name": "MobileNetV3-Small from scratch",
        "input_shape": [size, size, 3],
        "num_classes": 10,
        "layers": [
            {"type": "Backbone", "model": "mobilenet_v3_small", "weights": None, "trainable": True},
            {"type": "GlobalAveragePooling2D"},
            {"type": "Dropout", "rate": 0.2},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="input height and width for both")
    args = parser.parse_args()
    source = cifar_source()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # warm the dataset cache so that neither side pays the first decode
            [sys.executable, "-m", "cnn_core", "data", source],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        tutorial = load_preset("tutorial_cnn")
        spec = tutorial.spec.to_dict()
        spec["input_shape"] = [args.size, args.size, 3]
        tutorial_path = Path(tmp) / "tutorial.json"
        tutorial_path.write_text(json.dumps(spec))
        backbone_path = Path(tmp) / "backbone.json"
        backbone_path.write_text(json.dumps(backbone_spec(args.size)))
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(tutorial.config))  # the same settings for both
        results = {}
        for name, path in (("tutorial", tutorial_path), ("mobilenet_v3_small", backbone_path)):
            run = ours(str(path), source, tmp, epochs=args.epochs, config=str(config_path))
            results[name] = {**run, "steady_epoch_seconds": steady(run["epoch_seconds"])}
    print(f"CIFAR-10 at {args.size}x{args.size}, {args.epochs} epochs, tutorial settings")
    for name, r in results.items():
        print(
            f"  {name:20} {r['steady_epoch_seconds']:6.1f} s/epoch  wall {r['wall_seconds']:6.1f} s"
            f"  peak {r['peak_rss_mb']:6.0f} MB  test accuracy {r['test_accuracy']:.2%}"
        )
    write_result("transfer", {"epochs": args.epochs, "size": args.size, "contenders": results})


if __name__ == "__main__":
    main()
