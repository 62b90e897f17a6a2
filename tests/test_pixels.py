"""Tests for `cnn_core.data.pixels.Pixels` (issue 12, part 5): decoded rows written straight
into the cache's .npy files (or RAM) in any chunk order, failed rows squeezed out in place, the
files renamed into place and memory-mapped, and a full or unusable disk handled; and for the
`limit` chosen before decoding."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_core.balance import limited_rows
from cnn_core.data import pixels as pixels_module
from cnn_core.data.pixels import Pixels, pixels_file
from cnn_core.datasets import load_dataset
from cnn_core.errors import DataError

ROW = (2, 3, 3)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, *ROW), dtype=np.uint8)


def fill(store: Pixels, data: np.ndarray, chunk: int) -> None:
    """Hand `data` to `store` in chunks, last chunk first (workers finish in any order)."""
    for start in reversed(range(0, len(data), chunk)):
        store.put(start, data[start : start + chunk])


@pytest.mark.parametrize("on_disk", [True, False])
@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_rows_land_in_their_split_and_failed_rows_are_squeezed_out(
    tmp_path: Path, on_disk: bool, chunk: int
) -> None:
    counts = {"x_train": 11, "x_val": 4, "x_test": 6}
    data = rows(21)
    keep = np.ones(21, dtype=bool)
    keep[[0, 5, 12, 20]] = False  # the first row, inside train, inside val, the last row
    cache = tmp_path / "data.npz" if on_disk else None
    store = Pixels(counts, ROW, cache)
    fill(store, data, chunk)
    out = store.finish(keep)
    starts = {"x_train": 0, "x_val": 11, "x_test": 15}
    for name, n in counts.items():
        part = slice(starts[name], starts[name] + n)
        assert np.array_equal(out[name], data[part][keep[part]]), name
        assert isinstance(out[name], np.memmap) == on_disk
        if on_disk:
            assert Path(out[name].filename) == pixels_file(cache, name).resolve()
            assert np.array_equal(np.load(pixels_file(cache, name)), out[name])
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_rows_written_to_disk_are_not_held_in_memory(tmp_path: Path) -> None:
    store = Pixels({"x_train": 3, "x_test": 2}, ROW, tmp_path / "d.npz")
    assert store.files and not store.arrays  # written with pwrite, nothing kept here
    store.put(0, rows(5))
    out = store.finish(np.ones(5, dtype=bool))
    assert out["x_test"].shape == (2, *ROW)


def test_a_disk_too_small_keeps_the_images_in_memory_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(pixels_module.shutil, "disk_usage", lambda _: usage._replace(free=10_000))
    store = Pixels({"x_train": 3, "x_test": 2}, ROW, tmp_path / "d.npz")
    assert store.arrays and not store.files
    assert "0.0 GB free" in (store.note or "")
    store.put(0, rows(5))
    out = store.finish(np.ones(5, dtype=bool))
    assert not isinstance(out["x_train"], np.memmap)


def test_a_disk_that_fills_up_while_decoding_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Pixels({"x_train": 3, "x_test": 2}, ROW, tmp_path / "d.npz")

    def full(*_: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pixels_module.os, "pwrite", full)
    with pytest.raises(DataError, match=r"No space left on device.*CNN_CORE_CACHE"):
        store.put(0, rows(5))
    assert list(tmp_path.iterdir()) == []


def test_a_cache_folder_that_cannot_be_made_keeps_the_images_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = Pixels({"x_train": 2, "x_test": 1}, ROW, blocker / "cache" / "d.npz")
    assert store.arrays and "cannot be used" in (store.note or "")


def test_limited_rows_take_the_limit_from_train_and_the_same_share_of_the_rest() -> None:
    labels = {
        "train": np.repeat(np.arange(4), [400, 200, 100, 100]),
        "val": np.repeat(np.arange(4), 20),
        "test": np.repeat(np.arange(4), [100, 50, 25, 1]),
    }
    chosen = limited_rows(labels, 80)
    assert len(chosen["train"]) == 80
    assert np.bincount(labels["train"][chosen["train"]]).tolist() == [40, 20, 10, 10]
    assert len(chosen["val"]) == 8 and len(chosen["test"]) == 18
    assert set(labels["test"][chosen["test"]]) == {0, 1, 2, 3}  # the single test image is kept
    assert all((np.diff(c) > 0).all() for c in chosen.values())
    again = limited_rows(labels, 80)
    assert all(np.array_equal(chosen[k], again[k]) for k in chosen)  # the same limit, same rows
    assert len(limited_rows(labels, 10_000)["train"]) == 800


def write_photos(folder: Path, counts: dict[str, int]) -> None:
    for label, (name, count) in enumerate(counts.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            value = (40 * label + i) % 255
            Image.new("RGB", (8, 8), (value, 100, 200)).save(folder / name / f"{i:03d}.png")


def test_limit_decodes_only_the_chosen_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNN_CORE_CACHE", str(tmp_path / "cache"))
    write_photos(tmp_path / "photos", {"cat": 30, "dog": 20})
    (tmp_path / "photos" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    from cnn_core.data import layout

    decoded: list[int] = []
    real = layout.decode_images

    def counting(payloads, names, **kwargs):  # type: ignore[no-untyped-def]
        decoded.append(len(payloads))
        return real(payloads, names, **kwargs)

    monkeypatch.setattr(layout, "decode_images", counting)
    whole = load_dataset(tmp_path / "photos", image_size=(8, 8))
    quick = load_dataset(tmp_path / "photos", image_size=(8, 8), limit=8)
    assert decoded[0] == 51 and decoded[1] < 15
    assert len(quick.y_train) == 8 and set(quick.y_train) == {0, 1}
    assert set(quick.train_files) <= set(whole.train_files)  # a subset of the same split
    assert set(quick.test_files) <= set(whole.test_files)
    assert any("limit 8: 8 of" in line for line in quick.warnings)
    assert quick.found == len(quick.y_train) + len(quick.y_test) + quick.skipped
    again = load_dataset(tmp_path / "photos", image_size=(8, 8), limit=8)  # from its own cache
    assert len(decoded) == 2 and again.train_files == quick.train_files
    cached = load_dataset(tmp_path / "photos", image_size=(8, 8))  # the whole cache is still there
    assert len(decoded) == 2 and len(cached.y_train) == len(whole.y_train)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_a_limit_that_is_not_a_count_is_refused(tmp_path: Path, bad: object) -> None:
    write_photos(tmp_path / "photos", {"cat": 3, "dog": 3})
    with pytest.raises(DataError, match="limit must be a whole number"):
        load_dataset(tmp_path / "photos", image_size=(8, 8), limit=bad)  # type: ignore[arg-type]
