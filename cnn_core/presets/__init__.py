"""Preset architectures shipped with the package, each with its recommended training settings.

A preset is two files in this folder: `<id>.spec.json`, an ordinary architecture spec, and
`<id>.config.json`, the training configuration it is tuned for (keys of the training config).
A draft that starts from a preset and is then changed is renamed "<preset> (modified)", so that
different networks do not look alike in the list of runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from cnn_core.errors import SpecError
from cnn_core.spec import ModelSpec, parse_spec

ORDER = (  # the tutorial first: users know it
    "tutorial_cnn",
    "fast_cpu",
    "best_cpu",
    "resnet_gpu",
    "transfer_mobilenet_v3_small",
    "transfer_efficientnet_b0",
)
MODIFIED = " (modified)"  # appended to the name of a changed preset


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


def mark_modified(before: ModelSpec, after: ModelSpec) -> ModelSpec:
    """`after`, renamed "<preset> (modified)" if the edit from `before` changed the network of a
    draft still named after a preset.

    An edit that names the network itself (loading a preset or a file, renaming) keeps its name,
    and so does a spec that is its preset's network, so loading a preset gives its plain name.
    """
    network = (after.layers, after.input_shape)
    if after.name != before.name or network == (before.layers, before.input_shape):
        return after
    preset = next((p.spec for p in list_presets() if p.spec.name == after.name), None)
    if preset is None or network == (preset.layers, preset.input_shape):
        return after
    return replace(after, name=after.name + MODIFIED)
