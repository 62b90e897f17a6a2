"""A pretrained-backbone body against the tutorial CNN, at the same input size, on CIFAR-10.

There is no network here, so the backbone (MobileNetV3-Small, Keras' own) starts from random
weights and trains whole; where a network exists, `"weights": "imagenet"` with `fine_tune` is the
configuration to measure instead. Each contender trains `--epochs` epochs through our `train`
command in its own fresh process (data already cached), then is evaluated on the 10,000 test
images: seconds per steady epoch (the first pays for compiling), wall time, peak memory and test
accuracy.

    python -m bench.transfer [--epochs 3] [--size 32]

`--presets` instead trains each Transfer preset as shipped (frozen, then fine-tuned with its
own settings) with its weights set to null, on `--limit` training images at `--size`: that
fine-tuning still trains without ImageNet weights (issue 15), not a measure of what it reaches
with them.

    python -m bench.transfer --presets [--epochs 4] [--size 32] [--limit 10000]
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
from cnn_core.runs import Run


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


TRANSFER_PRESETS = ("transfer_mobilenet_v3_small", "transfer_efficientnet_b0")


def offline_preset(preset_id: str, size: int, epochs: int, limit: int) -> tuple[dict, dict]:
    """The preset's spec at `size` with null backbone weights, and its configuration with
    `epochs` (a third of them frozen, as the preset's 3 of 10) on `limit` training images."""
    preset = load_preset(preset_id)
    spec = preset.spec.to_dict()
    spec["input_shape"] = [size, size, 3]
    spec["layers"][0] = {**spec["layers"][0], "weights": None}
    config = {**preset.config, "epochs": epochs, "fine_tune": max(1, epochs // 3)}
    return spec, {**config, "limit": limit}


def presets(args: argparse.Namespace, source: str) -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset_id in TRANSFER_PRESETS:
            spec, config = offline_preset(preset_id, args.size, args.epochs, args.limit)
            spec_path, config_path = Path(tmp) / f"{preset_id}.json", Path(tmp) / "config.json"
            spec_path.write_text(json.dumps(spec))
            config_path.write_text(json.dumps(config))
            run = ours(str(spec_path), source, tmp, config=str(config_path))
            history = Run(Path(run["run_dir"])).history()
            results[preset_id] = {
                **run,
                "config": config,
                "train_accuracy": [round(row["accuracy"], 4) for row in history],
                "lr": [row["lr"] for row in history],
            }
    print(f"Transfer presets with null weights, CIFAR-10 at {args.size}x{args.size}, {args.limit}")
    for name, r in results.items():
        print(
            f"  {name:30} training accuracy by epoch {r['train_accuracy']}  "
            f"test accuracy {r['test_accuracy']:.2%}  wall {r['wall_seconds']:.0f} s"
        )
    write_result(
        "transfer_presets",
        {"epochs": args.epochs, "size": args.size, "limit": args.limit, "presets": results},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="input height and width for both")
    parser.add_argument("--presets", action="store_true", help="the Transfer presets, offline")
    parser.add_argument("--limit", type=int, default=10_000, help="--presets: training images")
    args = parser.parse_args()
    source = cifar_source()
    if args.presets:
        presets(args, source)
        return
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
