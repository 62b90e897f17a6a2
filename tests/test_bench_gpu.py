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
    assert [(r["preset"], r["devices"]) for r in runs] == [
        ("tutorial_cnn", 1),
        ("tutorial_cnn", 2),
        ("resnet_gpu", 1),
        ("resnet_gpu", 2),
    ]
    assert result["device"] == {"kind": "CPU", "count": 2, "model": ""}
    for run in runs:
        assert run["images_per_second"] > 0 and run["tflops_per_device"] > 0
        assert run["mfu"] is None and run["peak_tflops"] is None  # a CPU: no known peak
        assert 0 <= run["test_accuracy"] <= 1 and len(run["epoch_seconds"]) == 1
    # ResNet-9 costs far more per image than the tutorial network
    assert runs[2]["training_gflops_per_image"] > 10 * runs[0]["training_gflops_per_image"]
    assert result["bare_tutorial"]["params"] == 319_178
    assert set(result["goals"].values()) == {"not judged (--quick)", "not judged"}
    assert "| resnet_gpu | 2 CPU devices |" in done.stdout
    assert "| bare Keras tutorial script |" in done.stdout
