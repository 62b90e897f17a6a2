"""Starting a run: what is refused before a run exists, and runs whose process dies early.

A wrong dataset path, a single image or a folder without train/ and test/ is refused before a
run folder is made; a Keras backend that is not installed likewise. A worker that dies before it
trains (any early crash) leaves a run that reads `failed`, with the error from its log, never a
run stuck `queued`; one killed without a word reads `interrupted`. Both can be resumed or deleted.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_core import api
from cnn_core.backends import BackendError, check_backend, keras_backend
from cnn_core.config import TrainConfig
from cnn_core.datasets import check_source, inspect_source
from cnn_core.errors import ConfigError, DataError
from cnn_core.runs import (
    LAUNCH,
    Run,
    RunStatus,
    atomic_write_json,
    create_run,
    delete_run,
    first_error,
    list_runs,
    record_launch,
)
from cnn_core.spec import LayerSpec, ModelSpec

TINY = ModelSpec(
    name="Tiny",
    input_shape=(8, 8, 3),
    num_classes=2,
    layers=(LayerSpec("GlobalAveragePooling2D"),),
)


def write_folders(root: Path) -> Path:
    for split in ("train", "test"):
        for name, value in (("dark", 30), ("light", 220)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8, 3), value + i, np.uint8)).save(folder / f"{i}.png")
    return root


# --- refused before a run exists ----------------------------------------------------------


def bad_sources(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photo)
    renamed = tmp_path / "holiday.dat"  # an image by content, whatever its name
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(renamed, "PNG")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "a.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    return {
        "missing": (tmp_path / "no-such-folder", "does not exist"),
        "a photo": (photo, "single image"),
        "an image by content": (renamed, "single image"),
        "no train/test": (flat, "no train/ and test/ folders"),
        "a text file": (notes, "not a recognised dataset source"),
    }


def test_bad_sources_are_refused_before_a_run_folder_is_made(tmp_path):
    for what, (source, words) in bad_sources(tmp_path).items():
        with pytest.raises(DataError, match=words):
            api.start_run(TINY, TrainConfig(epochs=1), data_source=str(source), root=tmp_path / "r")
        assert list_runs(tmp_path / "r") == [], what
        assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir()), what


def test_an_unreadable_folder_is_refused(tmp_path, monkeypatch):
    source = write_folders(tmp_path / "data")
    real = __import__("os").scandir

    def scandir(path="."):
        if Path(path) == source:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr("cnn_core.data.sources.os.scandir", scandir)  # tests run as root
    info = inspect_source(source)
    assert "cannot be read" in info.problem and "permission" in info.problem


def test_good_sources_are_recorded_absolute(tmp_path, monkeypatch):
    source = write_folders(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert check_source("data") == str(source.resolve())
    assert check_source(" cifar10 ") == "cifar10"
    run = api.prepare_run(TINY, TrainConfig(epochs=1), data_source="data", root=tmp_path / "r")
    assert run.dataset()["source"] == str(source.resolve())
    assert run.status().state == "queued"


def test_cifar10_says_whether_it_must_be_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    info = inspect_source("cifar10")
    assert info.needs_network and not info.problem and "170 MB" in info.description
    batches = tmp_path / "keras" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "test_batch").write_bytes(b"x")
    info = inspect_source("cifar10")
    assert not info.needs_network and "already downloaded" in info.description


def test_an_archive_knows_whether_it_was_decoded_at_this_size(tmp_path):
    import shutil

    from cnn_core.datasets import load_dataset

    folders = write_folders(tmp_path / "d")
    archive = Path(shutil.make_archive(str(tmp_path / "data"), "zip", folders))
    assert inspect_source(archive, image_size=(8, 8)).cached is False
    load_dataset(archive, image_size=(8, 8))
    assert inspect_source(archive, image_size=(8, 8)).cached is True
    assert inspect_source(archive, image_size=(16, 16)).cached is False


# --- the Keras backend -------------------------------------------------------------------


def test_a_missing_backend_is_refused_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(
        "cnn_core.backends.importlib.util.find_spec", lambda name: None if name == "jax" else 1
    )
    with pytest.raises(BackendError, match=r"pip install jax"):
        check_backend()
    source = write_folders(tmp_path / "data")
    with pytest.raises(BackendError):
        api.start_run(TINY, TrainConfig(epochs=1), data_source=str(source), root=tmp_path / "r")
    assert list_runs(tmp_path / "r") == []
    monkeypatch.setenv("KERAS_BACKEND", "pytorch")
    with pytest.raises(BackendError, match="not a backend"):
        check_backend()


def test_a_run_resumed_where_the_backend_cannot_run_its_settings_is_refused(tmp_path, monkeypatch):
    source = write_folders(tmp_path / "data")
    config = TrainConfig(epochs=1, steps_per_execution=4)  # made under TensorFlow: allowed
    run = api.prepare_run(TINY, config, data_source=str(source))
    before = run.status()
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # PyTorch's trainer refuses steps_per_execution
    monkeypatch.setattr("cnn_core.backends.importlib.util.find_spec", lambda name: 1)
    with pytest.raises(ConfigError, match="steps_per_execution 4 needs TensorFlow or JAX"):
        api.resume_run(run)
    assert run.status() == before  # refused before anything was written or launched
    assert not (run.path / LAUNCH).exists()


def test_the_backend_comes_from_the_environment_then_keras_json(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    assert keras_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert keras_backend() == "jax"


def test_the_cli_says_what_to_install_with_exit_2(tmp_path):
    import os
    import subprocess

    # A machine without JAX (the tests install it): its import machinery cannot find it.
    hide = tmp_path / "no_jax"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util, sys\n"
        "class NoJax:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'jax' or name.startswith('jax.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoJax())\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'jax' else _find(name, *a)\n"
    )
    source = write_folders(tmp_path / "data")
    command = [sys.executable, "-m", "cnn_core", "train", "fast_cpu", "--data", str(source)]
    done = subprocess.run(
        [*command, "--runs-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(hide)},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install jax" in done.stderr and "bug" not in done.stderr
    assert "Traceback" not in done.stderr
    assert list_runs(tmp_path / "r") == []


# --- a process that dies early -------------------------------------------------------------


def test_first_error_finds_what_a_dying_process_wrote():
    assert first_error("2026 INFO loading\nerror: the Keras backend jax needs jax\n") == (
        "the Keras backend jax needs jax"
    )
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "    import jax\n"
        "ModuleNotFoundError: No module named 'jax'\n"
    )
    assert first_error("noise\n" + traceback) == "ModuleNotFoundError: No module named 'jax'"
    assert first_error("Fatal Python error: Segmentation fault\n").startswith("Fatal Python")
    assert first_error("2026 INFO epoch 1/3 loss 1.0\n") is None


def crashing_worker(run: Run, code: str) -> int:
    """A process in the run's log, as `spawn_worker` starts one, that runs `code` and dies."""
    import subprocess

    with open(run.file("train.log"), "ab") as log:
        offset = log.seek(0, 2)
        process = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)
    record_launch(run, process.pid, log_offset=offset)
    process.wait(timeout=60)
    return process.pid


def test_a_worker_that_crashes_before_training_reads_failed(tmp_path):
    run = create_run(TINY, TrainConfig(epochs=3), data_source="unused", root=tmp_path)
    (run.path / "train.log").write_text("error: an older attempt's error\n")  # not this launch's
    crashing_worker(run, "import no_such_package_at_all")
    status = run.status()
    assert status.state == "failed"
    assert "No module named 'no_such_package_at_all'" in status.error
    assert "older attempt" not in status.error
    assert status.finished  # so Stop is not offered, and Resume and Delete work
    delete_run(run)
    assert not run.exists()


def test_a_worker_killed_while_starting_reads_interrupted(tmp_path):
    run = create_run(TINY, TrainConfig(epochs=3), data_source="unused", root=tmp_path)
    crashing_worker(run, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    status = run.status()
    assert status.state == "interrupted" and "resume" in status.error


def test_a_starting_worker_reads_queued_while_it_lives(tmp_path):
    import subprocess

    from cnn_core.runs import claim_run

    run = create_run(TINY, TrainConfig(epochs=3), data_source="unused", root=tmp_path)
    with claim_run(run) as claim:  # handed to the process, as spawn_worker does
        command = [sys.executable, "-c", "import time; time.sleep(30)"]
        process = subprocess.Popen(command, pass_fds=(claim.fd,))
    try:
        record_launch(run, process.pid, log_offset=0)
        assert run.status().state == "queued"
    finally:
        process.kill()
        process.wait()
    assert run.status().state == "interrupted"


def test_a_dead_worker_with_a_pid_reads_failed_with_its_error(tmp_path):
    run = create_run(TINY, TrainConfig(epochs=3), data_source="unused", root=tmp_path)
    pid = crashing_worker(run, "raise RuntimeError('CUDA driver too old')")
    recorded = RunStatus(state="running", pid=pid, pid_started="1", epochs_target=3)
    atomic_write_json(run.file("status.json"), recorded.to_dict())
    status = run.status()
    assert status.state == "failed" and "CUDA driver too old" in status.error


def test_resuming_a_run_whose_worker_died_starts_it_again(tmp_path):
    source = write_folders(tmp_path / "data")
    run = api.prepare_run(TINY, TrainConfig(epochs=1, batch_size=4), data_source=str(source))
    crashing_worker(run, "import no_such_package_at_all")
    assert run.status().state == "failed"
    api.resume_run(run)
    assert (run.path / LAUNCH).is_file()
    deadline = time.monotonic() + 120
    while run.status().state != "completed":
        assert time.monotonic() < deadline, run.status()
        assert run.status().state in ("queued", "running"), run.status()
        time.sleep(0.2)
    assert run.status().error is None


def test_a_background_job_is_started_detached_with_its_output_in_its_log(tmp_path):
    log_path = tmp_path / "job.log"
    with open(log_path, "wb") as log:
        pid = api.spawn_cli(["--help"], log, env_defaults={"TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists():  # reaped by its thread: no zombie is left behind
        assert time.monotonic() < deadline, "the finished job was not reaped"
        time.sleep(0.05)
    assert "usage: cnn-workbench" in log_path.read_text()


def test_the_worker_the_search_and_the_finder_start_through_the_one_spawner(tmp_path, monkeypatch):
    from cnn_core import lr_job, search, settings

    started = []

    def spawn(args, log, **options):
        name = log.name  # the worker's log is opened by descriptor (Run.open_log_for_append)
        started.append((list(args), name if isinstance(name, int) else Path(name).name, options))
        return 4242

    monkeypatch.setattr(api, "spawn_cli", spawn)
    monkeypatch.setattr(settings, "cache_dir", lambda: tmp_path / "cache")
    run = create_run(TINY, TrainConfig(epochs=1), data_source="unused", root=tmp_path)
    assert api.spawn_worker(run, more_epochs=2) == 4242
    job = lr_job.start_lr_job(TINY, TrainConfig(), "colours")
    space = search.default_space(TINY, TrainConfig())
    request = search.SearchRequest(
        "s", TINY, TrainConfig(), space, data_source="colours", trials=3, timeout=60, root=tmp_path
    )
    folder = search.start_search(request)
    (worker, worker_log, worker_options), (finder, finder_log, _), (searcher, search_log, _) = (
        started
    )
    assert worker == ["worker", str(run.path), "--more-epochs", "2"] and isinstance(worker_log, int)
    assert worker_options["env_defaults"] == {"TF_CPP_MIN_LOG_LEVEL": "2"}
    assert finder[:2] == ["lr-find", str(job.path / lr_job.SPEC)] and finder[-2:] == [
        "--data",
        "colours",
    ]
    assert finder_log == lr_job.LOG and (job.path / lr_job.PID).read_text() == "4242"
    assert searcher[:2] == ["search", str(folder / "model.json")] and search_log == "search.log"
    assert searcher[searcher.index("--trials") + 1] == "3"  # the request, carried whole
    assert searcher[searcher.index("--timeout") + 1] == "60.0"


# --- time spent --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "before", "started", "ended", "epochs", "total"),
    [  # the first part, stopped after 100 s; then the part that resumed it and ran for 50 s
        ("stopped", 0.0, "2026-01-01T10:00:00", "2026-01-01T10:01:40", 1, 100),
        ("completed", 100.0, "2026-01-02T10:00:00", "2026-01-02T10:00:50", 3, 150),
    ],
)
def test_duration_sums_every_part_of_a_resumed_run(
    tmp_path, state, before, started, ended, epochs, total
):
    run = create_run(TINY, TrainConfig(epochs=3), data_source="unused", root=tmp_path)
    status = RunStatus(
        state=state,
        seconds_before=before,
        started_at=f"{started}+00:00",
        ended_at=f"{ended}+00:00",
        epochs_completed=epochs,
        epochs_target=3,
    )
    atomic_write_json(run.file("status.json"), status.to_dict())
    assert run.duration() == pytest.approx(total)


def test_a_killed_writers_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    import subprocess

    from cnn_core.runs import remove_dead_writers_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".progress.json.{dead.pid}.x1.tmp").write_text("{")
    (tmp_path / f".checkpoint-00003.{dead.pid}.tmp.weights.h5").write_bytes(b"")
    live = tmp_path / f".status.json.{__import__('os').getpid()}.x2.tmp"
    live.write_text("{")
    remove_dead_writers_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


def test_foreground_training_whose_libraries_fail_to_import_leaves_a_failed_run(
    tmp_path, monkeypatch
):
    source = write_folders(tmp_path / "data")
    run = api.prepare_run(TINY, TrainConfig(epochs=1), data_source=str(source), root=tmp_path)
    monkeypatch.setitem(sys.modules, "cnn_core.train", None)  # importing it now fails
    with pytest.raises(ImportError):
        api.launch_run(run, detach=False)
    status = run.status()
    assert status.state == "failed" and "could not be loaded" in status.error


def test_a_resumed_runs_duration_adds_its_parts(tmp_path):
    source = write_folders(tmp_path / "data")
    config = TrainConfig(epochs=1, batch_size=2)
    run = api.start_run(TINY, config, data_source=str(source), root=tmp_path, detach=False)
    first = run.duration()
    assert run.status().state == "completed" and first is not None  # whole seconds: maybe 0
    api.resume_run(run, more_epochs=1, detach=False)
    status = run.status()
    assert status.state == "completed" and status.epochs_completed == 2
    assert status.seconds_before == pytest.approx(first)
    assert run.duration() >= first  # times are whole seconds: a short part may add 0


def test_an_earlier_workers_error_does_not_fail_a_later_foreground_part(tmp_path):
    source = write_folders(tmp_path / "data")
    run = api.prepare_run(TINY, TrainConfig(epochs=1), data_source=str(source), root=tmp_path)
    crashing_worker(run, "import no_such_package_at_all")  # the first try: its error is logged
    assert run.status().state == "failed"
    api.resume_run(run, detach=False)
    assert run.status().state == "completed"
    # killed in a later part, with no word of its own: interrupted, not the old error
    recorded = replace(run.raw_status(), state="running", pid=999_999_999, pid_started="1")
    atomic_write_json(run.file("status.json"), recorded.to_dict())
    assert run.status().state == "interrupted"


def test_the_dashboard_keeps_keras_off_the_gpus_and_its_workers_do_not(monkeypatch):
    """The server's own Keras computes on the CPU (TensorFlow would take nearly all the memory
    of every GPU it sees); nothing goes into the environment the workers inherit."""
    import os
    import types

    import tensorflow as tf
    from support import ROOT

    from cnn_core import _keras, backends

    hidden = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda d, kind: hidden.append((d, kind)))
    fake = types.SimpleNamespace(
        backend=types.SimpleNamespace(backend=lambda: "tensorflow"),
        distribution=types.SimpleNamespace(list_devices=lambda: ["cpu:0"]),
    )
    monkeypatch.setattr(backends, "_off_gpus", False)
    _keras._start_devices(fake)
    assert hidden == []  # a worker, or the CLI: every device
    environment = dict(os.environ)
    backends.keep_this_process_off_gpus()  # as app.py does
    _keras._start_devices(fake)
    assert hidden == [([], "GPU")]
    assert dict(os.environ) == environment
    app = (ROOT / "app.py").read_text()
    assert "keep_this_process_off_gpus()" in app
