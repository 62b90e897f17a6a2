"""The architecture spec: the JSON document users save, load and share (format version 1).

    {"version": 1, "name": "Tutorial CNN", "input_shape": [32, 32, 3], "num_classes": 10,
     "layers": [{"type": "Conv2D", "filters": 32, "kernel_size": 3, "padding": "same"}, ...]}

`layers` is the body; the classifier head, Dense(num_classes, softmax), is always appended by the
builder. This module turns text into a `ModelSpec` and back. A document that is not JSON or not
this format is refused here with a `SpecError`; whether the layers make a buildable network is
decided by `cnn_core.shapes.analyze`, which reports every problem with the layer that causes it.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnn_core.errors import SpecError
from cnn_core.files import FileTooLargeError, NotRegularFileError, read_bounded

FORMAT_VERSION = 1
MAX_SPEC_BYTES = 1_000_000  # a spec is a few kB; anything larger is not a spec
MAX_LAYERS = 200
MAX_NAME_CHARS = 100
MAX_SIDE = 1024  # input height and width
CHANNELS = (1, 3)  # grayscale or RGB: what the dataset loaders produce
MAX_CLASSES = 10_000

_TOP_KEYS = ("version", "name", "description", "input_shape", "num_classes", "layers")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the body: its kind and the keys the document gives (defaults not filled in)."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


@dataclass(frozen=True)
class ModelSpec:
    """A whole architecture: input, body and the number of classes for the head."""

    name: str = "Untitled network"
    input_shape: tuple[int, int, int] = (32, 32, 3)  # height, width, channels
    num_classes: int = 10
    layers: tuple[LayerSpec, ...] = ()
    description: str = ""
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version, "name": self.name}
        if self.description:
            data["description"] = self.description
        data["input_shape"] = list(self.input_shape)
        data["num_classes"] = self.num_classes
        data["layers"] = [layer.to_dict() for layer in self.layers]
        return data

    def to_json(self) -> str:
        """The document, one layer per line so that diffs of saved specs stay readable."""
        data = self.to_dict()
        layers = data.pop("layers")
        head = json.dumps(data, ensure_ascii=False)[:-1]
        if not layers:
            return head + ', "layers": []}\n'
        rows = ",\n    ".join(json.dumps(layer, ensure_ascii=False) for layer in layers)
        return f'{head},\n  "layers": [\n    {rows}\n  ]\n}}\n'

    # Edits used by the dashboard; each returns a new spec.
    def with_layers(self, layers: list[LayerSpec] | tuple[LayerSpec, ...]) -> ModelSpec:
        return replace(self, layers=tuple(layers))

    def insert(self, index: int, layer: LayerSpec) -> ModelSpec:
        layers = list(self.layers)
        layers.insert(index, layer)
        return self.with_layers(layers)

    def delete(self, index: int) -> ModelSpec:
        layers = list(self.layers)
        del layers[index]
        return self.with_layers(layers)

    def move(self, index: int, offset: int) -> ModelSpec:
        target = index + offset
        if not (0 <= index < len(self.layers) and 0 <= target < len(self.layers)):
            return self
        layers = list(self.layers)
        layers[index], layers[target] = layers[target], layers[index]
        return self.with_layers(layers)

    def reorder(self, order: Sequence[int]) -> ModelSpec:
        """The layers rearranged: `order` lists the current indices in their new order."""
        if sorted(order) != list(range(len(self.layers))):  # why: a stale order would lose layers
            raise ValueError(
                f"{list(order)} is not an order of this spec's {len(self.layers)} layers"
            )
        return self.with_layers([self.layers[i] for i in order])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_spec(text: str | bytes, *, source: str = "the spec") -> ModelSpec:
    """Parse a spec document; raise `SpecError` naming `source` if it is not JSON or not a spec."""
    if len(text) > MAX_SPEC_BYTES:
        raise _too_large(source, len(text))
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SpecError(
                f"{source} is not text (not UTF-8); choose a .json architecture file."
            ) from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix the file or export it again from the Build page."
        ) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise SpecError(f"{source} is not a valid spec ({reason}).") from None
    return spec_from_dict(data, source=source)


def _too_large(source: str, size: int) -> SpecError:
    return SpecError(
        f"{source} is {size:,} bytes, too large for an architecture spec (at most "
        f"{MAX_SPEC_BYTES:,}); check that you chose the right file."
    )


def load_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """Read and parse a spec file, with errors that name the file."""
    path = Path(path)
    name = str(path)
    try:
        data = read_bounded(path, MAX_SPEC_BYTES, follow_links=True)
    except FileNotFoundError:
        raise SpecError(f"spec file {name} does not exist; check the path.") from None
    except NotRegularFileError as exc:  # why: /dev/zero never ends, a named pipe may block
        what = "is a folder" if exc.folder else "is not a regular file"
        raise SpecError(f"{name} {what}; give the path of a .json spec file.") from None
    except FileTooLargeError as exc:
        raise _too_large(name, exc.size) from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {name} ({exc.strerror}).") from None
    return parse_spec(data, source=name)


def spec_from_dict(data: Any, *, source: str = "the spec") -> ModelSpec:
    """Build a `ModelSpec` from decoded JSON, refusing anything that is not this format.

    Layer parameters are kept as written (a saved spec reads as its author wrote it); their
    values are checked and normalised once by `LayerKind.resolve`, through `shapes.analyze`, which
    reports every problem next to its layer and keeps the resolved values for the builder.
    """
    if not isinstance(data, dict):
        raise SpecError(
            f"{source} must be a JSON object with version, name, input_shape, num_classes and "
            f"layers, not a JSON {_json_type(data)}."
        )
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise SpecError(
            f"{source} has unknown key {_quote(unknown[0])}; a spec has only "
            + ", ".join(_TOP_KEYS)
            + "."
        )
    version = data.get("version")
    if version is None:
        raise SpecError(f'{source} has no "version"; add "version": {FORMAT_VERSION}.')
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise SpecError(
            f"{source} has format version {_short(version)}, but this program reads version "
            f"{FORMAT_VERSION}; save it again with a matching CNN Workbench."
        )
    name = data.get("name", ModelSpec.name)
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f'{source}: "name" must be a non-empty string.')
    name = " ".join(name.split())  # no newlines or control whitespace in names
    if any(unicodedata.category(ch) == "Cc" for ch in name):  # why: NUL breaks exported code
        raise SpecError(
            f'{source}: "name" contains a control character (such as a null byte); use '
            "printable text."
        )
    if len(name) > MAX_NAME_CHARS:
        raise SpecError(
            f'{source}: "name" is {len(name)} characters long; shorten it to at most '
            f"{MAX_NAME_CHARS}."
        )
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 10_000:
        raise SpecError(f'{source}: "description" must be a string of at most 10,000 characters.')
    return ModelSpec(
        name=name,
        description=description,
        input_shape=_input_shape(data.get("input_shape"), source),
        num_classes=_num_classes(data.get("num_classes"), source),
        layers=_layers(data.get("layers"), source),
    )


def _input_shape(value: Any, source: str) -> tuple[int, int, int]:
    example = '"input_shape": [32, 32, 3]'
    if not isinstance(value, list) or len(value) != 3 or not all(_is_int(v) for v in value):
        raise SpecError(
            f'{source}: "input_shape" must be [height, width, channels], e.g. {example}; '
            f"got {_short(value)}."
        )
    height, width, channels = (int(v) for v in value)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise SpecError(
            f'{source}: "input_shape" height and width must be 1 to {MAX_SIDE} pixels; got '
            f"{height}x{width}."
        )
    if channels not in CHANNELS:
        raise SpecError(
            f'{source}: "input_shape" must end with 3 channels (colour) or 1 (grayscale); got '
            f"{channels}."
        )
    return (height, width, channels)


def _num_classes(value: Any, source: str) -> int:
    if value is None:
        raise SpecError(f'{source} has no "num_classes"; add e.g. "num_classes": 10.')
    if not _is_int(value) or not 2 <= value <= MAX_CLASSES:
        raise SpecError(
            f'{source}: "num_classes" must be a whole number from 2 to {MAX_CLASSES:,} (a '
            f"classifier needs at least two classes); got {_short(value)}."
        )
    return int(value)


def _layers(value: Any, source: str) -> tuple[LayerSpec, ...]:
    if value is None:
        raise SpecError(f'{source} has no "layers"; add "layers": [...] with the body.')
    if not isinstance(value, list):
        raise SpecError(f'{source}: "layers" must be a list of layer objects.')
    if len(value) > MAX_LAYERS:
        raise SpecError(
            f'{source}: "layers" has {len(value)} layers; at most {MAX_LAYERS} are supported.'
        )
    layers = []
    for position, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise SpecError(
                f"{source}: layer {position} must be an object such as "
                f'{{"type": "Dense", "units": 64}}, not a JSON {_json_type(item)}.'
            )
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise SpecError(f'{source}: layer {position} has no "type"; add e.g. "type": "Conv2D".')
        params = {k: v for k, v in item.items() if k != "type"}
        layers.append(LayerSpec(type=kind, params=params))
    return tuple(layers)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return isinstance(value, int)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _quote(key: str) -> str:
    return json.dumps(key[:40])
