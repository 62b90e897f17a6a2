"""The shared test kit (`support`) does what the tests and benchmarks rely on it for."""

from __future__ import annotations

import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from support import (
    TINTED,
    folder_files,
    free_port,
    tar_gz_files,
    tiny_net,
    wait_until,
    write_colours,
    zip_files,
)

from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec


def test_wait_until_returns_once_true_and_names_what_it_waited_for():
    calls = []
    wait_until(lambda: calls.append(1) or len(calls) >= 3, 5, every=0.001)
    assert len(calls) == 3
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for the state: 7"):
        wait_until(lambda: False, 0.05, what=lambda: "the state: 7", every=0.01)


def test_free_port_is_in_the_range_and_can_be_bound():
    port = free_port(range(8650, 8660))
    assert 8650 <= port < 8660
    socket.create_server(("127.0.0.1", port)).close()  # raises if the port is taken


def test_the_colour_dataset_is_an_image_folder_dataset_of_8x8_pictures(tmp_path: Path):
    root = write_colours(tmp_path / "colours", train=3, test=2, colours=TINTED, noise=100)
    for split, count in (("train", 3), ("test", 2)):
        assert sorted(p.name for p in (root / split).iterdir()) == ["blue", "green", "red"]
        for folder in (root / split).iterdir():
            pictures = sorted(folder.iterdir())
            assert len(pictures) == count
            assert Image.open(pictures[0]).size == (8, 8)


def test_archives_hold_the_folder_under_its_name(tmp_path: Path):
    files = folder_files(write_colours(tmp_path / "colours", train=1, test=1))
    assert len(files) == 6 and all(name.startswith("colours/") for name in files)
    with zipfile.ZipFile(io.BytesIO(zip_files(files))) as zf:
        assert {name: zf.read(name) for name in zf.namelist()} == files
    with tarfile.open(fileobj=io.BytesIO(tar_gz_files(files))) as tar:
        assert {m.name: tar.extractfile(m).read() for m in tar.getmembers()} == files


def test_the_tiny_network_is_valid_with_or_without_middle_layers():
    assert analyze(tiny_net()).valid
    with_block = tiny_net(LayerSpec("ResidualBlock", {"filters": 6, "strides": 2}), num_classes=2)
    assert analyze(with_block).valid and with_block.num_classes == 2
