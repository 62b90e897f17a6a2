"""Each uploaded photo is decoded once: `predict_images` hands back the picture to show beside its
prediction, so the Predict page never decodes a photo a second time to draw it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reliability.kit import make_model_run
from support import encode, open_page, rerun

from cnn_core import images
from cnn_core.predict import predict_images
from cnn_core.settings import runs_root


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The label of every picture decoded from now on (the project's one decoding function)."""
    seen: list[str] = []
    real = images._decode

    def counting(raw: bytes, **options: object):
        seen.append(str(options["label"]))
        return real(raw, **options)

    monkeypatch.setattr(images, "_decode", counting)
    return seen


def photos() -> list[tuple[str, bytes]]:
    wide = Image.fromarray(
        np.tile(np.arange(200, dtype=np.uint8), (50, 1)).repeat(3).reshape(50, 200, 3)
    )
    return [
        ("wide.png", encode(wide, "PNG")),
        ("small.jpg", encode(Image.new("RGB", (20, 10), (200, 30, 30)), "JPEG")),
        ("broken.png", b"not an image at all"),
    ]


def test_predict_images_gives_each_photo_to_show_from_its_one_decode(
    tmp_path: Path, decodes: list[str]
):
    run = make_model_run(tmp_path)
    wide, small, broken = predict_images(run, photos(), photo_size=100)
    assert decodes == ["wide.png", "small.jpg", "broken.png"]  # once each, the broken one too
    assert wide.photo.size == (100, 25) and wide.photo.mode == "RGB"  # fitted, shape kept
    assert small.photo.size == (20, 10)  # a small photo is not enlarged
    assert np.asarray(small.photo)[5, 10].tolist() == pytest.approx([200, 30, 30], abs=8)
    assert broken.error and broken.photo is None
    assert wide.pixels.shape == (8, 8, 3)  # the model's input still comes from the same decode
    assert predict_images(run, photos()[:1])[0].photo is None  # none asked for: none kept


def test_the_predict_page_decodes_each_uploaded_photo_once(decodes: list[str]):
    run = make_model_run(runs_root())
    at = open_page("predict", run=run.name)
    at.file_uploader(key="photos").set_value([(name, data, "image/png") for name, data in photos()])
    decodes.clear()
    rerun(at)
    assert not at.exception
    assert sorted(decodes) == ["broken.png", "small.jpg", "wide.png"]
    assert len(at.get("image")) >= 2 * 3  # each good photo: itself, what the model sees, a heat map
