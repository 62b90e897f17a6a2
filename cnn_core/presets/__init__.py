"""Preset architectures shipped with the package, each with its recommended training settings.

A preset is two files in this folder: `<id>.spec.json`, an ordinary architecture spec, and
`<id>.config.json`, the training configuration it is tuned for (keys of the training config).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cnn_core.errors import SpecError
from cnn_core.spec import ModelSpec, parse_spec

ORDER = ("tutorial_cnn", "fast_cpu", "resnet_gpu")  # the tutorial first: users know it


@dataclass(frozen=True)
class Preset:
    """A ready-made architecture and the training settings recommended for it."""

    id: str
    spec: ModelSpec
    config: dict[str, Any]


def preset_ids() -> tuple[str, ...]:
    return ORDER


def load_preset(preset_id: str) -> Preset:
    """Load one preset by id; raise `SpecError` naming the known ids if there is none."""
    if preset_id not in ORDER:
        raise SpecError(
            f'there is no preset "{preset_id[:40]}"; the presets are ' + ", ".join(ORDER) + "."
        )
    folder = resources.files(__name__)
    spec = parse_spec(
        folder.joinpath(f"{preset_id}.spec.json").read_text("utf-8"), source=f"preset {preset_id}"
    )
    config = json.loads(folder.joinpath(f"{preset_id}.config.json").read_text("utf-8"))
    return Preset(id=preset_id, spec=spec, config=config)


def list_presets() -> tuple[Preset, ...]:
    return tuple(load_preset(preset_id) for preset_id in ORDER)
