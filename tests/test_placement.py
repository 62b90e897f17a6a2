"""Training on several devices and in several processes, for real, on this CPU.

The CPU is split into two devices (`CNN_CORE_CPU_DEVICES=2`: JAX's virtual host devices,
TensorFlow's logical CPU devices), so Keras' DataParallel and TensorFlow's MirroredStrategy run
their real collectives. Same seed, same global batch: one device and two must learn the same
thing, up to the order of floating-point sums. Every run trains in its own process (the device
split must happen before the backend starts), through the CLI users have.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import ROOT, TINY, free_port, wait_until, write_colours

from cnn_core.config import TrainConfig, config_from_dict, fit_batch
from cnn_core.errors import ConfigError
from cnn_core.runs import FollowingRun, Run
from cnn_core.spec import LayerSpec, ModelSpec

pytest.importorskip("jax")

CONFIG = {"seed": 3, "batch_size": 16, "epochs": 2, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three colours, 80 training images each (240: every batch of 16 divides by 2)."""
    folder = tmp_path_factory.mktemp("devices")
    spec = folder / "tiny.json"
    spec.write_text(TINY.to_json())
    config = folder / "config.json"
    config.write_text(json.dumps(CONFIG))
    return {"data": write_colours(folder / "data"), "spec": spec, "config": config}


def cli(*args: str, backend: str, cpus: int = 2, timeout: float = 240) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend, "CNN_CORE_CPU_DEVICES": str(cpus)}
    command = [sys.executable, "-m", "cnn_core", *args]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return out


def train(setup: dict[str, Path], root: Path, *extra: str, backend: str) -> dict[str, Any]:
    args = ["train", str(setup["spec"]), "--data", str(setup["data"])]
    args += ["--config", str(setup["config"]), "--runs-dir", str(root), "--json", *extra]
    out = finish(cli(*args, backend=backend))
    return json.loads(out.strip().splitlines()[-1])


def two_workers(run_dir: Path, ports: range) -> list[subprocess.Popen]:
    """The run's two processes on JAX, talking over 127.0.0.1 (gloo); one CPU device each, two
    in all, as two machines of one GPU would be. The second starts first."""
    address = f"127.0.0.1:{free_port(ports)}"
    options = ("--coordinator", address, "--num-processes", "2")
    return [
        cli("worker", str(run_dir), *options, "--process-id", str(i), backend="jax", cpus=1)
        for i in (1, 0)
    ]


def history(run_dir: str | Path) -> np.ndarray:
    with open(Path(run_dir) / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    return np.array([[float(row[k]) for k in keys] for row in rows])


@pytest.fixture(scope="module")
def jax_one(setup, tmp_path_factory) -> dict[str, Any]:
    """The reference: JAX, one device (the CPU split in two, one of them used)."""
    return train(setup, tmp_path_factory.mktemp("one"), "--devices", "1", backend="jax")


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_devices_learn_what_one_learns(setup, tmp_path, backend, jax_one):
    one = jax_one if backend == "jax" else None
    if one is None:
        one = train(setup, tmp_path / "one", "--devices", "1", backend=backend)
    two = train(setup, tmp_path / "two", "--devices", "2", backend=backend)
    assert one["state"] == two["state"] == "completed", two["error"]
    assert (one["devices"], two["devices"]) == (1, 2)
    assert two["placement"] == "2 CPU devices"
    assert two["images_per_second_per_device"] == pytest.approx(
        two["images_per_second"] / 2, abs=0.1
    )
    np.testing.assert_allclose(history(two["run_dir"]), history(one["run_dir"]), atol=1e-4)
    status = json.loads((Path(two["run_dir"]) / "status.json").read_text())
    assert status["devices"] == 2 and status["placement"] == "2 CPU devices"


def test_two_processes_learn_what_one_learns_and_only_the_first_writes(setup, tmp_path, jax_one):
    created = finish(
        cli(
            "train",
            str(setup["spec"]),
            "--data",
            str(setup["data"]),
            "--config",
            str(setup["config"]),
            "--runs-dir",
            str(tmp_path),
            "--create-only",
            backend="jax",
        )
    )
    run_dir = Path(created.strip().splitlines()[-1])
    before = {p.name for p in run_dir.iterdir()}
    workers = two_workers(run_dir, range(12300, 12400))
    for worker in workers:
        finish(worker)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed", status["error"]
    assert status["devices"] == 2 and "2 processes" in status["placement"]
    np.testing.assert_allclose(history(run_dir), history(jax_one["run_dir"]), atol=1e-5)
    written = {p.name for p in run_dir.iterdir()} - before
    # The second process's only file is its log; everything else is the first one's.
    assert "process-1.log" in written
    assert "epoch 2/2" in (run_dir / "process-1.log").read_text()
    assert not [name for name in written if name.startswith("process-") and name != "process-1.log"]
    assert (run_dir / "model.keras").is_file() and (run_dir / "train.log").is_file()


def test_a_run_resumed_on_another_number_of_devices_continues(setup, tmp_path, jax_one):
    first = train(setup, tmp_path, "--devices", "all", "--epochs", "1", backend="jax")
    assert first["devices"] == 2 and first["epochs_completed"] == 1
    # The same run, moved to a machine with one device: "all" is one device now.
    out = finish(cli("resume", first["run_dir"], "--epochs", "1", "--json", backend="jax", cpus=1))
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["state"] == "completed" and resumed["devices"] == 1
    # Epoch 1 on two devices, epoch 2 on one: what two epochs on one device learn. (The
    # schedule is constant, so training 1 + 1 epochs is training 2.)
    np.testing.assert_allclose(history(first["run_dir"]), history(jax_one["run_dir"]), atol=1e-4)


def test_a_diverging_run_on_two_devices_is_told_so(setup, tmp_path):
    bad, linear = tmp_path / "bad.json", tmp_path / "linear.json"
    rates = {"optimizer": "sgd", "learning_rate": 10, "epochs": 3, "batch_size": 4}
    bad.write_text(json.dumps({**CONFIG, **rates}))
    layers = (LayerSpec("Flatten"), *(LayerSpec("Dense", {"units": 64}),) * 3)
    linear.write_text(ModelSpec("Linear", (8, 8, 3), 3, layers).to_json())
    args = ["train", str(linear), "--data", str(setup["data"]), "--config", str(bad)]
    # On TensorFlow: the same net and rate saturate at a finite loss under JAX.
    options = ("--runs-dir", str(tmp_path), "--devices", "2", "--json")
    process = cli(*args, *options, backend="tensorflow")
    out, err = process.communicate(timeout=240)
    result = json.loads(out.strip().splitlines()[-1])
    assert process.returncode == 2 and result["state"] == "diverged", err[-2000:]
    assert "Lower the learning rate" in result["error"] and "Traceback" not in err


def test_more_devices_than_there_are_are_refused_with_what_there_is():
    """In this process (TensorFlow, the CPU not split: one device); the worker fails the run
    with this message (exit 2), as with any other ConfigError."""
    from cnn_core.training.placement import place

    with pytest.raises(ConfigError, match="devices 4 asks for more devices than there are: 1 CPU"):
        place(TrainConfig(devices=4))
    assert place(TrainConfig()).describe() == "1 CPU device"


def test_devices_are_validated_with_a_fix():
    assert config_from_dict({"devices": "all"}).devices is None
    assert config_from_dict({"devices": 2}).devices == 2
    expected = r'devices must be a whole number from 1 to 4,096 or "all"'
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"devices": "two"})
    with pytest.raises(ConfigError, match="use batch_size 63 or another multiple of 3"):
        config_from_dict({"devices": 3, "batch_size": 64})
    assert [fit_batch(64, 3), fit_batch(10, 4), fit_batch(1, 4), fit_batch(66, 4)] == [63, 8, 4, 64]
    assert TrainConfig().devices is None and TrainConfig().scale_lr is False


def test_a_following_process_writes_nothing_into_the_run(tmp_path):
    """Every writer of `Run` is overridden, so a new one cannot be forgotten."""
    writers = [name for name in dir(Run) if name.startswith("write_")]
    writers += ["request_stop", "clear_stop_request"]
    assert len(writers) > 8
    for name in writers:
        assert getattr(FollowingRun, name) is not getattr(Run, name), name
    follower = FollowingRun(tmp_path, 1)
    assert not follower.writes and follower.log_path.name == "process-1.log"


def test_a_stop_reaches_both_processes_of_a_run_at_the_same_batch(setup, tmp_path):
    """The first process reads the stop request and every process gets its answer (a small
    collective each batch): none is left waiting for the other, the run ends stopped."""
    long = tmp_path / "long.json"
    long.write_text(json.dumps({**CONFIG, "epochs": 200}))
    args = ["train", str(setup["spec"]), "--data", str(setup["data"]), "--config", str(long)]
    created = finish(cli(*args, "--runs-dir", str(tmp_path), "--create-only", backend="jax"))
    run = Run(Path(created.strip().splitlines()[-1]))
    workers = two_workers(run.path, range(12400, 12500))
    wait_until(lambda: run.status().epochs_completed >= 1, 180, every=0.2)
    run.request_stop()
    for worker in workers:
        finish(worker, timeout=60)
    status = run.status()
    assert status.state == "stopped" and status.epochs_completed < 200
    assert (run.path / "model.keras").is_file()
    assert "stopped" in (run.path / "process-1.log").read_text()
