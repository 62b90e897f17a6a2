"""Drill 5: resources. The disk fills up while the third epoch's checkpoint is written; dataset
sources that are missing, empty or corrupt archives; CIFAR-10 asked for on a machine without a
network. Each ends in a message that says what is wrong and what to do; a run ends `failed` with
it, and a run stopped by a full disk resumes from its last complete checkpoint.
"""

from __future__ import annotations

import errno
import gzip
import io
import tarfile
from pathlib import Path

import pytest
from support import TINY, epochs_in, write_colours

from cnn_core import api
from cnn_core.config import TrainConfig
from cnn_core.datasets import load_dataset
from cnn_core.errors import DataError
from cnn_core.runs import list_runs

EPOCHS = 5


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colours(tmp_path_factory.mktemp("colours"), train=20, test=4)


def test_a_full_disk_at_the_third_checkpoint_fails_the_run_and_resume_completes_it(
    colours: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import keras

    real_save_weights = keras.Model.save_weights

    def disk_full_at_epoch_3(self, filepath, *args, **kwargs):
        if "checkpoint-00003" in str(filepath):
            Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\n half a file")  # what was written
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return real_save_weights(self, filepath, *args, **kwargs)

    config = TrainConfig(epochs=EPOCHS, batch_size=16, seed=11)
    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save_weights", disk_full_at_epoch_3)
        run = api.start_run(TINY, config, data_source=str(colours), root=tmp_path, detach=False)
    status = run.status()
    assert status.state == "failed"
    assert "disk is full" in status.error and "resume" in status.error
    assert status.epochs_completed == 2 and status.seed == 11  # what the run really holds
    assert epochs_in(run) == [0, 1]
    assert [p.name for p in run.path.glob("checkpoint-*")] == ["checkpoint-00002.weights.h5"]
    assert not list(run.path.glob(".*tmp*"))  # the half-written checkpoint is gone
    print(f"\nfull disk: {status.state}, {status.epochs_completed}/{EPOCHS}: {status.error}")

    api.resume_run(run, detach=False)  # space freed: the fault is gone
    status = run.status()
    assert status.state == "completed", status.error
    assert status.epochs_completed == EPOCHS
    assert epochs_in(run) == list(range(EPOCHS))  # every epoch exactly once


def corrupt_sources(folder: Path, colours: Path) -> dict[str, Path]:
    """Dataset sources that cannot be used, each in its own way."""
    empty = folder / "empty"
    empty.mkdir()
    no_images = folder / "no-images"
    for split in ("train", "test"):
        (no_images / split / "cat").mkdir(parents=True)
        (no_images / split / "cat" / "readme.txt").write_text("no pictures here")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(colours, arcname="colours")
    truncated = folder / "truncated.tar.gz"
    truncated.write_bytes(archive.getvalue()[: len(archive.getvalue()) // 2])
    not_zip = folder / "images.zip"
    not_zip.write_bytes(b"this is not a zip archive\n" * 10)
    not_gzip = folder / "images.tar.gz"
    not_gzip.write_bytes(gzip.compress(b"plain text, gzipped, not a tar")[:20])
    return {
        "missing": folder / "nowhere",
        "empty folder": empty,
        "folders without images": no_images,
        "truncated .tar.gz": truncated,
        "a .zip that is not a zip": not_zip,
        "a cut gzip": not_gzip,
    }


def test_unusable_dataset_sources_fail_with_a_clear_message(colours: Path, tmp_path: Path):
    sources = corrupt_sources(tmp_path, colours)
    for what, path in sources.items():
        with pytest.raises(DataError) as caught:
            load_dataset(path, image_size=(8, 8))
        message = str(caught.value)
        assert "\n" not in message and "Traceback" not in message, what
        assert path.name in message, (what, message)
        runs_before = list_runs(tmp_path / "runs")
        refused = None
        try:  # refused at once where a look at the source shows it, else a failed run
            run = api.start_run(
                TINY,
                TrainConfig(epochs=1),
                data_source=str(path),
                root=tmp_path / "runs",
                detach=False,
            )
        except DataError as exc:
            refused = str(exc)
        if refused is not None:
            assert path.name in refused and "\n" not in refused, (what, refused)
            assert list_runs(tmp_path / "runs") == runs_before, what  # no run folder left
            print(f"\n{what}: refused before a run: {refused}")
            continue
        status = run.status()
        assert status.state == "failed", what
        assert status.error == message, (what, status.error)
        print(f"\n{what}: a failed run: {message}")


def test_cifar10_without_a_network_says_where_to_put_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import keras

    def offline() -> None:  # what Keras' downloader raises when the name cannot be resolved
        raise Exception(
            "URL fetch failure on https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz: "
            "None -- [Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert "\n" not in message
    assert "cifar-10-python.tar.gz" in message and "dataset source" in message  # page and CLI
    assert "Temporary failure in name resolution" in message
    run = api.start_run(
        TINY, TrainConfig(epochs=1), data_source="cifar10", root=tmp_path, detach=False
    )
    assert run.status().state == "failed"
    assert run.status().error == message
    print(f"\noffline cifar10: {message}")
