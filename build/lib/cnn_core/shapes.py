"""Validation, shape inference, parameter counts and cost of a spec, in pure Python.

`analyze(spec)` walks the body once with the rules of `cnn_core.layers` and returns every layer's
output shape, parameter count and multiply-adds, the totals, and every problem, each tied to the
layer that causes it and, where there is an obvious one, a one-click `Fix`. It imports neither
Keras nor TensorFlow and takes well under a millisecond for a typical spec, so the Build page can
call it on every edit. The figures agree exactly with Keras (tests/test_shapes_keras.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cnn_core.errors import SpecError
from cnn_core.layers import (
    KINDS,
    LayerKind,
    Shape,
    ShapeError,
    classifier_head,
    fixing_kind,
    format_shape,
    suggest,
)
from cnn_core.spec import LayerSpec, ModelSpec

MAX_PARAMS = 50_000_000
BYTES_PER_VALUE = 4  # float32 weights and activations

# Every rule a spec can break; each `Problem` names one (the tests check this list is closed).
RULES = (
    "unknown_kind",
    "unknown_key",
    "missing_key",
    "bad_value",
    "spatial_after_flat",
    "dense_on_spatial",
    "ends_spatial",
    "shrinks_to_zero",
    "too_many_params",
    "not_first",
    "needs_colour",
    "input_too_small",
)


@dataclass(frozen=True)
class Fix:
    """A one-click repair: insert `layer` at `index`, delete the layer at `index`, move it to the
    top of the body, or set the network's input to `input_shape`."""

    label: str
    action: str  # "insert", "delete", "first" or "input"
    index: int
    layer: Mapping[str, Any] | None = None
    input_shape: Shape | None = None

    def apply(self, spec: ModelSpec) -> ModelSpec:
        if self.action == "insert" and self.layer is not None:
            params = {k: v for k, v in self.layer.items() if k != "type"}
            return spec.insert(self.index, LayerSpec(self.layer["type"], params))
        if self.action == "first":
            others = [i for i in range(len(spec.layers)) if i != self.index]
            return spec.reorder([self.index, *others])
        if self.action == "input" and self.input_shape is not None:
            return replace(spec, input_shape=tuple(self.input_shape))
        return spec.delete(self.index)


@dataclass(frozen=True)
class Problem:
    """Something that stops the spec from building, said so that the user can fix it."""

    message: str
    rule: str
    layer: int | None = None  # 0-based index into spec.layers; None for the whole network
    fix: Fix | None = None


@dataclass(frozen=True)
class LayerInfo:
    """What one layer does to the tensor; `output_shape` is None where it cannot be known."""

    index: int | None  # 0-based index into spec.layers; None for the classifier head
    type: str
    description: str
    output_shape: Shape | None
    params: int
    macs: int
    values: int  # activations this layer keeps per image (for the memory estimate)
    head: bool = False
    frozen: int = 0  # of `params`, those training never changes (Keras' non-trainable weights)
    # The layer's parameters as normalised once (`LayerKind.resolve`), defaults filled; the only
    # form the builder and code export read. None for the head and for a layer with a bad value.
    resolved: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Analysis:
    """The result of `analyze`: per-layer figures, totals and problems."""

    input_shape: Shape
    layers: tuple[LayerInfo, ...]  # the body, then the head
    problems: tuple[Problem, ...]
    total_params: int
    total_macs: int
    activation_bytes: int  # forward activations per image, input included, float32
    total_frozen: int = 0  # of `total_params`, those training never changes

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def model_bytes(self) -> int:
        return self.total_params * BYTES_PER_VALUE

    @property
    def final_feature_map(self) -> Shape | None:
        """The last spatial shape before the network goes flat."""
        last = self.input_shape
        for info in self.layers:
            if info.output_shape is None:
                return None
            if len(info.output_shape) == 3:
                last = info.output_shape
        return last

    def problems_for(self, index: int | None) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.layer == index)

    def to_dict(self) -> dict[str, Any]:
        """The `validate --json` document."""
        return {
            "valid": self.valid,
            "errors": [{"layer": p.layer, "message": p.message} for p in self.problems],
            "layers": [
                {
                    "index": info.index,
                    "type": info.type,
                    "output_shape": list(info.output_shape) if info.output_shape else None,
                    "params": info.params,
                    "macs": info.macs,
                    **({"frozen_params": info.frozen} if info.frozen else {}),
                    **({"head": True} if info.head else {}),
                    **({"resolved": _as_json(info.resolved)} if info.resolved is not None else {}),
                }
                for info in self.layers
            ],
            "total_params": self.total_params,
            "total_frozen_params": self.total_frozen,
            "total_macs": self.total_macs,
            "activation_bytes": self.activation_bytes,
        }


def _as_json(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Resolved parameters as JSON holds them: (height, width) pairs become lists."""
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in resolved.items()
    }


def where(index: int, kind: str) -> str:
    """How messages name a layer: 'Layer 3 (Conv2D)'."""
    return f"Layer {index + 1} ({kind})"


def check_params(
    index: int, layer: LayerSpec
) -> tuple[LayerKind | None, Mapping[str, Any], list[Problem]]:
    """Check one layer's kind and keys; return its kind, resolved parameters and problems."""
    kind = KINDS.get(layer.type)
    if kind is None:
        guess = suggest(layer.type, KINDS)
        hint = f'did you mean "{guess}"? ' if guess else ""
        message = (
            f'Layer {index + 1}: unknown layer type "{layer.type[:40]}"; {hint}known types are '
            + ", ".join(KINDS)
            + "."
        )
        return None, {}, [Problem(message, "unknown_kind", index)]
    resolution = kind.resolve(layer.params)
    problems = [
        Problem(f"{where(index, kind.name)}: {error.message}.", error.rule, index)
        for error in resolution.errors
    ]
    return kind, resolution.params, problems


def analyze(spec: ModelSpec) -> Analysis:
    """Infer every layer's shape and cost and collect every problem, without Keras."""
    problems: list[Problem] = []
    infos: list[LayerInfo] = []
    shape: Shape | None = tuple(spec.input_shape)
    values_total = _prod(shape)
    flattened_at: int | None = None  # index of the layer that made the tensor flat
    for index, layer in enumerate(spec.layers):
        kind, params, layer_problems = check_params(index, layer)
        problems += layer_problems
        out: Shape | None = None
        n_params = macs = values = frozen = 0
        # An unknown key changes nothing Keras would build; a bad or missing value does.
        blocked = any(p.rule != "unknown_key" for p in layer_problems)
        if kind is not None and not blocked and shape is not None:
            problem = _accepts(index, kind, shape, flattened_at)
            if problem is None:
                try:
                    out = kind.output(shape, params)
                except ShapeError as exc:
                    problem = _shape_problem(index, kind, exc)
            if problem is not None:
                problems.append(problem)
            else:
                n_params = kind.count_params(shape, params)
                frozen = kind.count_frozen(shape, params)
                macs = kind.count_macs(shape, out, params)
                values = _prod(out) + kind.internal_values(shape, out, params)
                if len(out) == 1 and len(shape) == 3:
                    flattened_at = index
        values_total += values
        usable = kind is not None and not blocked
        description = kind.describe(params) if usable else layer.type
        infos.append(
            LayerInfo(
                index,
                layer.type,
                description,
                out,
                n_params,
                macs,
                values,
                resolved=params if usable else None,
                frozen=frozen,
            )
        )
        shape = out

    if shape is not None and len(shape) == 3:
        problems.append(_ends_spatial(spec, shape))
        shape = None
    head = classifier_head(spec.num_classes)
    head_out = head.kind.output(shape, head.params) if shape is not None else None
    infos.append(
        LayerInfo(
            index=None,
            type=head.kind.name,
            description=head.description,
            output_shape=head_out,
            params=head.kind.count_params(shape, head.params) if head_out else 0,
            macs=head.kind.count_macs(shape, head_out, head.params) if head_out else 0,
            values=_prod(head_out) if head_out else 0,
            head=True,
        )
    )
    values_total += infos[-1].values
    total = sum(info.params for info in infos)
    if total > MAX_PARAMS:
        biggest = max(infos, key=lambda info: info.params)
        where_ = (
            where(biggest.index, biggest.type) if biggest.index is not None else "the classifier"
        )
        problems.append(
            Problem(
                f"The network has {total:,} parameters, more than the {MAX_PARAMS:,} this tool "
                f"trains; {where_} holds {biggest.params:,} of them: use fewer filters or units, "
                "or shrink the feature map (pooling or global pooling) before "
                f"{fixing_kind('dense_on_spatial').name}.",
                "too_many_params",
                biggest.index,
            )
        )
    return Analysis(
        input_shape=tuple(spec.input_shape),
        layers=tuple(infos),
        problems=tuple(problems),
        total_params=total,
        total_macs=sum(info.macs for info in infos),
        activation_bytes=values_total * BYTES_PER_VALUE,
        total_frozen=sum(info.frozen for info in infos),
    )


def check_spec(spec: ModelSpec) -> Analysis:
    """Analyze and raise `SpecError` listing every problem if the spec cannot be built."""
    analysis = analyze(spec)
    if analysis.problems:
        error = SpecError(" ".join(p.message for p in analysis.problems))
        error.problems = analysis.problems  # type: ignore[attr-defined]
        raise error
    return analysis


def _ends_spatial(spec: ModelSpec, shape: Shape) -> Problem:
    last = len(spec.layers) - 1
    flatten, pool = fixing_kind("dense_on_spatial").name, fixing_kind("ends_spatial").name
    return Problem(
        f"The body ends with a {format_shape(shape)} feature map, but the classifier needs a flat "
        f"input; add {flatten} or {pool} at the end.",
        "ends_spatial",
        last if last >= 0 else None,
        Fix(f"Add {pool} at the end", "insert", last + 1, {"type": pool}),
    )


def _shape_problem(index: int, kind: LayerKind, exc: ShapeError) -> Problem:
    fix = None
    if exc.input_shape is not None:
        shown = format_shape(exc.input_shape)
        fix = Fix(f"Set the input to {shown}", "input", index, input_shape=exc.input_shape)
    return Problem(f"{where(index, kind.name)}: {exc}.", exc.rule, index, fix)


def _accepts(index: int, kind: LayerKind, shape: Shape, flattened_at: int | None) -> Problem | None:
    if kind.first_only and index != 0:
        return Problem(
            f"{where(index, kind.name)}: must be the first layer, since it takes the image "
            "itself; move it to the top.",
            "not_first",
            index,
            Fix("Move it to the top", "first", index),
        )
    if kind.accepts == "flat" and len(shape) == 3:
        flatten = fixing_kind("dense_on_spatial").name
        return Problem(
            f"{where(index, kind.name)}: needs a flat input but gets a {format_shape(shape)} "
            f"feature map; add {flatten} or global pooling before it.",
            "dense_on_spatial",
            index,
            Fix(f"Insert {flatten} before it", "insert", index, {"type": flatten}),
        )
    if kind.accepts == "spatial" and len(shape) == 1:
        after = f" after layer {flattened_at + 1}" if flattened_at is not None else ""
        flatten = fixing_kind("dense_on_spatial").name
        return Problem(
            f"{where(index, kind.name)}: needs a feature map, but the tensor is already flat "
            f"({shape[0]:,} values){after}; move it before the {flatten} or global pooling, or "
            "remove it.",
            "spatial_after_flat",
            index,
            Fix("Remove this layer", "delete", index),
        )
    return None


def _prod(shape: Shape) -> int:
    total = 1
    for d in shape:
        total *= d
    return total
