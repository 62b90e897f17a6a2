"""`python -m bench.gpu --quick`, end to end, on a tiny synthetic JPEG tar: JAX on two virtual
CPU devices, with TensorFlow made unimportable, as on a GPU machine that has no TensorFlow. So the
GPU check cannot rot between the times a GPU is lent, and its path never needs TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import CLASSES, COLOURS, ROOT, encode, tar_gz_files

NO_TENSORFLOW = (  # what Python says on a machine without it, whoever imports it
    "raise ModuleNotFoundError(\"No module named 'tensorflow'\", name='tensorflow')\n"
)


def write_jpeg_tar(path: Path, *, train: int = 40, test: int = 10) -> Path:
    """cifar/train/<class>/N.jpg and cifar/test/<class>/N.jpg, 32x32 noisy colours, as .tar.gz."""
    rng = np.random.default_rng(0)
    files = {}
    for split, count in (("train", train), ("test", test)):
        for name in CLASSES:
            for i in range(count):
                noise = rng.normal(0, 40, (32, 32, 3))
                pixels = np.clip(np.array(COLOURS[name]) + noise, 0, 255).astype(np.uint8)
                files[f"cifar/{split}/{name}/{i}.jpg"] = encode(Image.fromarray(pixels), "JPEG")
    path.write_bytes(tar_gz_files(files))
    return path


@pytest.mark.slow
def test_gpu_check_runs_quick_on_jax_without_tensorflow(tmp_path: Path):
    blocked = tmp_path / "blocked" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(NO_TENSORFLOW)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocked.parent), str(ROOT)]),
        "KERAS_BACKEND": "jax",
        "CNN_CORE_CPU_DEVICES": "2",
    }
    env.pop("XLA_FLAGS", None)
    data = write_jpeg_tar(tmp_path / "cifar.tar.gz")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bench.gpu", "--quick", "120", "--data", str(data)]
    command += ["--presets", "tutorial_cnn"]  # the ResNet too doubles the time: its own test
    done = subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "gpu-quick.json").read_text())
    runs = result["runs"]
    assert [(r["preset"], r["devices"]) for r in runs] == [("tutorial_cnn", 1), ("tutorial_cnn", 2)]
    assert result["device"] == {"kind": "CPU", "count": 2, "model": ""}
    for run in runs:
        assert run["images_per_second"] > 0 and run["tflops_per_device"] > 0
        assert run["mfu"] is None and run["peak_tflops"] is None  # a CPU: no known peak
        assert 0 <= run["test_accuracy"] <= 1 and len(run["epoch_seconds"]) == 1
    assert result["bare_tutorial"]["params"] == 319_178
    assert set(result["goals"].values()) == {"not judged (--quick)", "not judged"}
    assert "| tutorial_cnn | 2 CPU devices | 32 |" in done.stdout
    assert "| bare Keras tutorial script |" in done.stdout


@pytest.mark.parametrize(
    ("device", "precision", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16 mixed", 989.4),  # SXM
        ("NVIDIA H100 PCIe", "bfloat16 mixed", 756.0),
        ("NVIDIA H200", "float32", 494.7),  # TF32
        ("NVIDIA A100-SXM4-80GB", "bfloat16 mixed", 312.0),
        ("Tesla T4", "bfloat16 mixed", None),
        ("", "float32", None),  # a CPU
    ],
)
def test_peaks_are_looked_up_by_the_device_name(device, precision, peak):
    from bench.gpu import peak_tflops

    assert peak_tflops(device, precision) == peak


def run_row(preset: str, *, accuracy: float, seconds: list[float], per_second: float) -> dict:
    return {
        "preset": preset,
        "devices": 1,
        "placement": "1 GPU device (NVIDIA H200)",
        "precision": "bfloat16 mixed",
        "batch_size": 512,
        "epoch_seconds": seconds,
        "steady_epoch_seconds": seconds[-1],
        "training_seconds": sum(seconds),
        "wall_seconds": sum(seconds) + 10,
        "images_per_second": per_second,
        "images_per_second_per_device": per_second,
        "test_accuracy": accuracy,
    }


def test_goals_are_judged_on_one_h100_or_h200_only():
    from bench.gpu import goals, with_mfu

    h200 = {"kind": "GPU", "count": 1, "model": "NVIDIA H200"}
    bare = {"steady_epoch_seconds": 1.4}
    tutorial = run_row("tutorial_cnn", accuracy=0.70, seconds=[3.0, 1.2], per_second=40_000)
    fast = run_row("resnet_gpu", accuracy=0.935, seconds=[8.0] + [3.0] * 15, per_second=20_000)
    slow = run_row("resnet_gpu", accuracy=0.935, seconds=[8.0] + [4.0] * 15, per_second=15_000)
    weak = run_row("resnet_gpu", accuracy=0.925, seconds=[8.0] + [3.0] * 15, per_second=20_000)
    assert goals([tutorial, fast], bare, h200, quick=0) == {
        "tutorial_vs_bare_keras": "met",
        "resnet_93_in_60s": "met",  # 53 s of training, 93.5%
    }
    assert goals([tutorial, slow], bare, h200, quick=0)["resnet_93_in_60s"] == "not met"  # 68 s
    assert goals([tutorial, weak], bare, h200, quick=0)["resnet_93_in_60s"] == "not met"
    slower = {**tutorial, "steady_epoch_seconds": 1.5}
    assert goals([slower, fast], bare, h200, quick=0)["tutorial_vs_bare_keras"] == "not met"
    a100 = {"kind": "GPU", "count": 1, "model": "NVIDIA A100-SXM4-80GB"}
    assert goals([tutorial, fast], bare, a100, quick=0)["resnet_93_in_60s"].startswith(
        "not judged: the device is NVIDIA A100"
    )
    # MFU: 2.28 GFLOPs per image (our shape inference) x 20,000 images/s over 989.4 TFLOP/s
    row = with_mfu(fast, h200["model"])
    assert row["tflops_per_device"] == pytest.approx(row["training_gflops_per_image"] * 20)
    assert row["mfu"] == pytest.approx(row["tflops_per_device"] / 989.4)
    assert 0.04 < row["mfu"] < 0.05


def test_the_report_shows_a_gpu_result_or_how_to_measure_one():
    from bench.__main__ import gpu_section
    from bench.gpu import with_mfu

    assert "Not measured: no GPU machine was lent" in "\n".join(gpu_section(None))
    h200 = {"kind": "GPU", "count": 1, "model": "NVIDIA H200"}
    rows = [
        with_mfu(
            run_row("tutorial_cnn", accuracy=0.70, seconds=[3.0, 1.2], per_second=4e4), "H200"
        ),
        with_mfu(run_row("resnet_gpu", accuracy=0.935, seconds=[8.0, 3.0], per_second=2e4), "H200"),
    ]
    bare = {"epoch_seconds": [2.0, 1.4], "steady_epoch_seconds": 1.4, "wall_seconds": 30.0}
    verdicts = {"tutorial_vs_bare_keras": "met", "resnet_93_in_60s": "not met"}
    text = "\n".join(
        gpu_section(
            {
                "device": h200,
                "runs": rows,
                "bare_tutorial": {**bare, "test_accuracy": 0.7},
                "goals": verdicts,
            }
        )
    )
    assert "1 GPU device(s), NVIDIA H200." in text
    assert (
        "| resnet_gpu | 1 GPU device (NVIDIA H200) | 512 | bfloat16 mixed | 3.00 | 8.00 | 11.0 |"
        in text
    )
    assert "| 4.6% | 0.9350 |" in text  # 2.28 GFLOPs x 20,000/s of 989.4 TFLOP/s
    assert "93% test accuracy within 60 s of training on one H100/H200: not met" in text


@pytest.mark.parametrize(
    ("preset", "devices", "quick", "batch"),
    [
        ("resnet_gpu", 1, 0, "512"),  # the preset's own
        ("resnet_gpu", 8, 0, "512"),
        ("tutorial_cnn", 3, 0, "63"),  # 64 does not divide by 3: the nearest that does
        ("resnet_gpu", 2, 120, "32"),  # --quick
    ],
)
def test_each_run_trains_the_preset_in_a_global_batch_its_devices_divide(
    preset, devices, quick, batch
):
    from bench.gpu import train_command

    command = train_command(preset, devices, source="data.tar.gz", runs="runs", quick=quick)
    assert command[command.index("--batch-size") + 1] == batch
    assert command[command.index("--devices") + 1] == str(devices)
    assert ("--limit" in command) == bool(quick)
