"""Data augmentation settings and the Keras layers that apply them.

`Augmentation` is plain data (it lives in the training configuration); `augmentation_nodes` turns
it into Keras layers, as `KerasNode` data that the builder and code export both read. All are
active only in training. Nothing here imports Keras.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from cnn_core.errors import ConfigError
from cnn_core.layers import KerasNode

_BOUNDS = {  # name: (highest allowed, what it means)
    "translation": (0.5, "the largest shift, as a fraction of the image's height and width"),
    "rotation": (0.5, "the largest rotation, as a fraction of a full turn"),
    "zoom": (0.9, "the largest zoom in or out, as a fraction of the image size"),
    "contrast": (1.0, "the largest change of contrast, as a fraction"),
}


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training image; all off by default (as in the tutorial)."""

    flip: bool = False  # mirror left-right half of the time
    alternate_flip: bool = False  # with flip: each image every other epoch (the feed mirrors)
    translation: float = 0.0  # shift by up to this fraction of height and width
    rotation: float = 0.0  # rotate by up to this fraction of a full turn
    zoom: float = 0.0  # zoom in or out by up to this fraction
    contrast: float = 0.0  # scale contrast by up to this fraction

    @property
    def active(self) -> bool:
        return self != Augmentation()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "augmentation") -> Augmentation:
        """Validate a JSON object such as {"flip": true, "translation": 0.1}."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(
                f'{source} must be an object such as {{"flip": true, "translation": 0.1}}.'
            )
        names = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(
                    f"{source} has unknown key {json.dumps(str(key)[:40], ensure_ascii=False)}; "
                    "it takes " + ", ".join(names) + "."
                )
            if key in ("flip", "alternate_flip"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{source}.{key} must be true or false.")
                values[key] = value
                continue
            high, meaning = _BOUNDS[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not 0 <= value <= high:
                raise ConfigError(
                    f"{source}.{key} is {meaning} and must be a number from 0 to {high:g}; "
                    f"got {str(value)[:40]}."
                )
            values[key] = float(value)
        if values.get("alternate_flip") and not values.get("flip"):
            raise ConfigError(
                f"{source}.alternate_flip says how flip mirrors the images, and flip is off: "
                "turn flip on as well, or alternate_flip off."
            )
        return cls(**values)

    @property
    def model_flips(self) -> bool:
        """Whether the model's own layers mirror at random; with `alternate_flip` the training
        feed mirrors each image in every other epoch instead (`Feed(alternate_flip=True)`)."""
        return self.flip and not self.alternate_flip


def shift_pixels(translation: float, height: int, width: int) -> tuple[int, int]:
    """The largest shift, in whole pixels (rows, columns), of a `translation` fraction of an image
    of `height` x `width`: never the whole image, which reflection cannot fill."""
    return (
        max(min(round(translation * height), height - 1), 0),
        max(min(round(translation * width), width - 1), 0),
    )


def feed_augments(augmentation: Augmentation | None, *, compiled: bool) -> bool:
    """Whether the training feed flips and shifts the images (`cnn_core.feed.Feed`) instead of
    layers in the model: where the training step is not compiled with XLA (TensorFlow on a CPU).
    There Keras' RandomFlip and RandomTranslation add about 7% to Fast CPU's training step and
    the feed's numpy about 2% (`python -m bench.augment`); under XLA `RandomShiftFlip` fuses into
    the step and costs little, and a GPU should not wait for the CPU's numpy."""
    a = augmentation
    return a is not None and not compiled and (a.flip or a.translation > 0)


def augmentation_nodes(
    augmentation: Augmentation | None, *, compiled: bool = False, in_feed: bool = False
) -> tuple[list, list]:
    """The Keras layers for `augmentation`: those that run on the raw uint8 pixels, before
    `Rescaling`, and those that run on the scaled [0, 1] image after it. With `in_feed` the
    training feed flips and shifts (`feed_augments`), so neither has a layer here.

    Flips and shifts: when the training step is compiled with XLA (JAX; TensorFlow on a GPU),
    our `RandomShiftFlip` on the raw pixels, which XLA fuses into a few cheap passes where Keras'
    own layers cost a hundredfold. Without XLA, training takes them from the feed (`in_feed`);
    elsewhere (code export, a caller that asks for layers) Keras' RandomFlip and RandomTranslation,
    the cheaper layers there (native kernels), stand for them.
    """
    if augmentation is None:
        return [], []
    a = augmentation
    raw, scaled = [], []
    flip = a.model_flips and not in_feed
    translation = 0.0 if in_feed else a.translation
    if compiled and (flip or translation):
        raw.append(
            KerasNode("augment_shift_flip", "RandomShiftFlip", {"shift": translation, "flip": flip})
        )
    elif flip or translation:
        if flip:
            scaled.append(KerasNode("augment_flip", "RandomFlip", {"mode": "horizontal"}))
        if translation:
            scaled.append(
                KerasNode(
                    "augment_translation",
                    "RandomTranslation",
                    {
                        "height_factor": a.translation,
                        "width_factor": a.translation,
                        "fill_mode": "reflect",
                    },
                )
            )
    if a.rotation:
        scaled.append(
            KerasNode(
                "augment_rotation", "RandomRotation", {"factor": a.rotation, "fill_mode": "reflect"}
            )
        )
    if a.zoom:
        scaled.append(
            KerasNode(
                "augment_zoom",
                "RandomZoom",
                {"height_factor": (-a.zoom, a.zoom), "fill_mode": "reflect"},
            )
        )
    if a.contrast:
        scaled.append(
            KerasNode(
                "augment_contrast", "RandomContrast", {"factor": a.contrast, "value_range": (0, 1)}
            )
        )
    return _chain(raw), _chain(scaled)


def _chain(nodes: list[KerasNode]) -> list[KerasNode]:
    """Each node takes the previous one's output."""
    return [
        KerasNode(n.name, n.cls, n.kwargs, (nodes[i - 1].name,) if i else ("@in",))
        for i, n in enumerate(nodes)
    ]
