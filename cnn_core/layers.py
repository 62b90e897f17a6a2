"""The registry of layer kinds: the one place that says what each kind of layer is.

Each `LayerKind` knows its parameters (types, defaults, bounds, help text) and resolves a layer's
keys once (`LayerKind.resolve`: values normalised, defaults filled), what input it accepts,
how it changes the shape, how many parameters and multiply-adds it costs, and which Keras layers
make it up (as plain `KerasNode` data). Validation, shape inference, the Keras builder, the
dashboard's sidebar widgets and code export all read this table; adding a kind touches only here.

This module is pure Python: it never imports Keras or TensorFlow, so the Build page stays instant.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cnn_core.backbones import (
    BACKBONES,
    CAFFE_MEAN_BGR,
    FRESH_MOMENTUM,
    IMAGENET,
    WEIGHTS_SUFFIX,
)

Shape = tuple[int, ...]  # (height, width, channels) for a feature map, (values,) once flat

ACTIVATIONS = ("relu", "gelu", "elu", "selu", "swish", "tanh", "sigmoid", "leaky_relu", "linear")
PADDINGS = ("valid", "same")
MAX_UNITS = 8192


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # default of a parameter the spec must give


@dataclass(frozen=True)
class Param:
    """One key a layer kind takes, with its type, default and bounds."""

    name: str
    # "int", "pair" (of ints: height, width), "float", "bool", "choice", or "file": null, one of
    # `choices`, or the path of an existing file whose name ends with `suffix`
    type: str
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    high_open: bool = False  # True when `high` itself is not allowed (rates in [0, 1))
    choices: tuple[Any, ...] = ()
    help: str = ""
    example: Any = None  # what to suggest when a required key is missing
    default_from: str | None = None  # left out: the value of this other key (as Keras' pooling)
    always_exported: bool = False  # code export writes it even at its default (pool_size=2)
    suffix: str = ""  # the ending a "file" parameter's path must have

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe_range(self) -> str:
        """The allowed values in words, e.g. 'a whole number from 1 to 8192'."""
        if self.type == "int":
            return f"a whole number from {self.low:g} to {self.high:g}"
        if self.type == "pair":
            return (
                f"a whole number from {self.low:g} to {self.high:g}, or a list of two of them "
                "[height, width]"
            )
        if self.type == "float":
            close = ")" if self.high_open else "]"
            return f"a number in [{self.low:g}, {self.high:g}{close}"
        if self.type == "bool":
            return "true or false"
        if self.type == "file":
            named = "".join(f'"{c}", ' for c in self.choices)
            return f"null, {named}or the path of an existing {self.suffix} file"
        return "one of " + ", ".join(f'"{c}"' for c in self.choices)

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return (normalised value, None), or (None, what is wrong) in words."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value, None
            return None, f"must be true or false, got {_show(value)}"
        if self.type == "file":
            return self._check_file(value)
        if self.type == "choice":
            if isinstance(value, str) and value in self.choices:
                return value, None
            if isinstance(value, str) and value.lower() in self.choices:
                return None, f'must be written in lower case: "{value.lower()}"'
            return None, f"must be {self.describe_range()}, got {_show(value)}"
        if self.type == "pair":  # as Keras' standardize_tuple: n means (n, n)
            items = value if isinstance(value, list | tuple) else [value, value]
            pair = tuple(self._number(item, whole=True) for item in items)
            if len(pair) != 2 or None in pair:
                return None, f"must be {self.describe_range()}, got {_show(value)}"
            return pair, None
        number = self._number(value, whole=self.type == "int")
        if number is None:
            return None, f"must be {self.describe_range()}, got {_show(value)}"
        return number, None

    def _check_file(self, value: Any) -> tuple[Any, str | None]:
        if value is None or value in self.choices:
            return value, None
        if not isinstance(value, str) or not value.endswith(self.suffix):
            return None, f"must be {self.describe_range()}, got {_show(value)}"
        if not os.path.isfile(os.path.expanduser(value)):
            return None, f"names {_show(value)}, which does not exist (or is not a file)"
        return os.path.abspath(os.path.expanduser(value)), None  # why: the same file from anywhere

    def _number(self, value: Any, *, whole: bool) -> int | float | None:
        """`value` as an int (`whole`) or a float within the bounds, or None if it is not one."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if whole:
            if isinstance(value, float):
                if not value.is_integer():
                    return None
                value = int(value)
        else:
            value = float(value)
        too_high = value >= self.high if self.high_open else value > self.high
        if value < self.low or too_high:
            return None
        return value


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class KerasNode:
    """One Keras layer of a kind's graph, as plain data: `keras.layers.<cls>(**kwargs, name=name)`.

    `inputs` names earlier nodes of the same kind's graph, or "@in" for the kind's input.
    The last node of a kind's graph is its output. `defaults` holds the value Keras assumes for
    a keyword left out; code export leaves out each keyword that has it.
    """

    name: str
    cls: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ("@in",)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # what Keras assumes, if left out
    # Our faster subclass of `cls` that the builder creates in its place; code export and the
    # saved model name `cls` (see LayerKind.trains_as).
    trains_as: str = ""


class ShapeError(Exception):
    """Raised by a kind's shape rule: the layer cannot take this input.

    `input_shape`, where given, is the network input that would let it (its one-click fix)."""

    def __init__(self, message: str, *, rule: str, input_shape: Shape | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.input_shape = input_shape


@dataclass(frozen=True)
class ParamError:
    """A key of a layer that cannot be normalised, said without naming the layer."""

    key: str
    rule: str  # "unknown_key", "missing_key" or "bad_value"
    message: str  # e.g. 'filters must be a whole number from 1 to 8192, got 8.5'


@dataclass(frozen=True)
class Resolution:
    """What `LayerKind.resolve` makes of a layer's keys.

    `params` is read-only and plain JSON data once `errors` is empty: every key of the kind, with
    normalised values. A key whose value was refused holds None; only an unknown key leaves the
    rest usable (Keras never sees it).
    """

    params: Mapping[str, Any]
    errors: tuple[ParamError, ...] = ()


def suggest(word: str, options: Iterable[str]) -> str | None:
    """The option the user probably meant: the same word in other case, or a close spelling."""
    options = list(options)
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


@dataclass(frozen=True)
class LayerKind:
    """What one kind of layer is, for every part of the program that needs to know."""

    name: str
    summary: str  # one line, for the sidebar
    params: tuple[Param, ...]
    accepts: str  # "spatial" (needs a feature map), "flat" (needs a vector) or "any"
    output: Callable[[Shape, Mapping[str, Any]], Shape]
    count_params: Callable[[Shape, Mapping[str, Any]], int]
    count_macs: Callable[[Shape, Shape, Mapping[str, Any]], int]
    # The Keras layers that make it up, from (resolved params, name, input shape); by default
    # one layer of the kind's own name (or `keras_class`) taking every parameter.
    nodes: Callable[[Mapping[str, Any], str, Shape], list[KerasNode]] | None = None
    keras_class: str = ""
    # Our subclass of that Keras layer that the model is built with, where it trains faster;
    # it computes the same, and is exported and saved as the Keras class (cnn_core.fast_norm).
    trains_as: str = ""
    internal_values: Callable[[Shape, Shape, Mapping[str, Any]], int] = lambda i, o, p: 0
    key_params: tuple[str, ...] = ()  # shown in the stack's one-line description
    fixes: tuple[str, ...] = ()  # the rules whose one-click fix inserts this kind
    # Parameters that training never changes (BatchNormalization's moving statistics, a frozen
    # backbone), of `count_params`.
    count_frozen: Callable[[Shape, Mapping[str, Any]], int] = lambda shape, p: 0
    first_only: bool = False  # allowed only as the body's first layer (it takes the image)
    # Code export's lines for one layer of this kind (reading `x` and assigning the result to
    # `x`), from (resolved params, Keras name, input shape), where printing its `KerasNode`s
    # would not give plain Keras (a layer class of ours); None: its nodes are printed.
    code: Callable[[Mapping[str, Any], str, Shape], list[str]] | None = None
    describe_with: Callable[[Mapping[str, Any]], str] | None = None  # instead of `key_params`

    @functools.cached_property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @functools.cached_property
    def _following(self) -> tuple[Param, ...]:
        """The params whose default is another key's value."""
        return tuple(p for p in self.params if p.default_from)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resolve(self, given: Mapping[str, Any]) -> Resolution:
        """The one normalisation of a layer's keys: the spec's values checked and normalised
        (whole floats to ints), defaults filled, and what cannot be normalised said per key.

        Everything after this (shape inference, the builder, the diagram, code export) reads only
        `Resolution.params`, so what the checks accept is exactly what Keras is given.
        """
        errors = []
        for key in given:
            if key not in self.param_names:
                guess = suggest(key, self.param_names)
                takes = ", ".join(self.param_names) or "no keys besides type"
                hint = f'did you mean "{guess}"? ' if guess else ""
                message = f'unknown key "{key[:40]}"; {hint}{self.name} takes {takes}'
                errors.append(ParamError(key, "unknown_key", message))
        resolved: dict[str, Any] = {}
        for param in self.params:
            if param.name not in given:
                if param.required:
                    example = param.example
                    shown = f'"{example}"' if isinstance(example, str) else str(example)
                    message = f'{param.name} is required; add e.g. "{param.name}": {shown}'
                    errors.append(ParamError(param.name, "missing_key", message))
                default = param.default
                if default is not REQUIRED and default is not None:
                    default = param.check(default)[0]  # why: 1 becomes (1, 1) like a given 1
                resolved[param.name] = default
                continue
            value, error = param.check(given[param.name])
            if error:
                errors.append(ParamError(param.name, "bad_value", f"{param.name} {error}"))
            resolved[param.name] = value
        for param in self._following:
            if resolved[param.name] is None:
                resolved[param.name] = resolved[param.default_from]
        return Resolution(MappingProxyType(resolved), tuple(errors))

    def keras_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The value Keras assumes for each optional key left out (code export leaves it out)."""
        defaults = {}
        for param in self.params:
            if param.default_from:
                defaults[param.name] = params[param.default_from]
            elif not param.required and param.default is not None and not param.always_exported:
                defaults[param.name] = param.check(param.default)[0]
        return defaults

    def keras_nodes(self, params: Mapping[str, Any], name: str, in_shape: Shape) -> list[KerasNode]:
        """The Keras layers that make up one layer of this kind, the last one named `name`."""
        if self.nodes is not None:
            return self.nodes(params, name, in_shape)
        kwargs = {key: params[key] for key in self.param_names}
        return [
            KerasNode(
                name,
                self.keras_class or self.name,
                kwargs,
                defaults=self.keras_defaults(params),
                trains_as=self.trains_as,
            )
        ]

    def describe(self, params: Mapping[str, Any]) -> str:
        """A short description such as 'Conv2D 32, 3x3, same, relu', of resolved parameters."""
        if self.describe_with is not None:
            return f"{self.name} {self.describe_with(params)}"
        parts = []
        for key in self.key_params:
            value = params[key]
            if key in ("kernel_size", "pool_size"):
                parts.append(format_shape(value))
            elif key == "strides":
                origin = self.param(key).default_from
                if value != (1, 1) and not (origin and value == params[origin]):
                    shown = value[0] if value[0] == value[1] else format_shape(value)
                    parts.append(f"stride {shown}")
            elif key == "depth_multiplier":
                if value != 1:
                    parts.append(f"depth x{value}")
            elif key == "rate":
                parts.append(f"{value:g}")
            elif key == "activation" and value == "linear":
                continue
            else:
                parts.append(str(value))
        return " ".join([self.name, ", ".join(parts)]).strip()


# --- shape arithmetic, exactly as Keras computes it ---------------------------------------------


def window_out(size: int, window: int, stride: int, padding: str) -> int:
    """Output length of a convolution or pooling window along one axis (Keras' rule)."""
    if padding == "same":
        return -(-size // stride)  # ceil(size / stride)
    return (size - window) // stride + 1 if size >= window else 0


def _prod(shape: Shape) -> int:
    return math.prod(shape)


def format_shape(shape: Iterable[int] | None) -> str:
    """A shape as users read it everywhere: (28, 28, 32) -> '28x28x32'; None (unknown) -> '?'."""
    return "?" if shape is None else "x".join(str(d) for d in shape)


def _windowed(
    window_key: str, channels: Callable[[int, Mapping[str, Any]], int]
) -> Callable[[Shape, Mapping[str, Any]], Shape]:
    """The output shape of a sliding window of `window_key`; `channels(c, p)` says its depth."""

    def output(shape: Shape, p: Mapping[str, Any]) -> Shape:
        h, w, c = shape
        window, stride, padding = p[window_key], p["strides"], p["padding"]
        sides = zip((h, w), window, stride, strict=True)
        ho, wo = (window_out(n, k, s, padding) for n, k, s in sides)
        if ho < 1 or wo < 1:
            what = "kernel" if window_key == "kernel_size" else "pooling window"
            raise ShapeError(
                f"the {h}x{w} feature map is too small for a {format_shape(window)} {what} with "
                f"padding='valid' (the output would be {max(ho, 0)}x{max(wo, 0)}); remove a "
                "pooling layer or use padding='same'",
                rule="shrinks_to_zero",
            )
        return (ho, wo, channels(c, p))

    return output


def _conv_params(shape: Shape, p: Mapping[str, Any]) -> int:
    (kh, kw), f = p["kernel_size"], p["filters"]
    return kh * kw * shape[-1] * f + (f if p["use_bias"] else 0)


def _conv_macs(inp: Shape, out: Shape, p: Mapping[str, Any]) -> int:
    kh, kw = p["kernel_size"]
    return out[0] * out[1] * out[2] * kh * kw * inp[-1]


def _depthwise_params(shape: Shape, p: Mapping[str, Any]) -> int:
    (kh, kw), maps = p["kernel_size"], shape[-1] * p["depth_multiplier"]
    return kh * kw * maps + (maps if p["use_bias"] else 0)


def _depthwise_macs(inp: Shape, out: Shape, p: Mapping[str, Any]) -> int:
    kh, kw = p["kernel_size"]
    return out[0] * out[1] * out[2] * kh * kw


def _separable_params(shape: Shape, p: Mapping[str, Any]) -> int:
    (kh, kw), maps, f = p["kernel_size"], shape[-1] * p["depth_multiplier"], p["filters"]
    return kh * kw * maps + maps * f + (f if p["use_bias"] else 0)  # the depthwise step: no bias


def _separable_macs(inp: Shape, out: Shape, p: Mapping[str, Any]) -> int:
    kh, kw = p["kernel_size"]
    maps = inp[-1] * p["depth_multiplier"]
    return out[0] * out[1] * maps * (kh * kw + out[2])


def _residual_output(shape: Shape, p: Mapping[str, Any]) -> Shape:
    (h, w, _), (sh, sw) = shape, p["strides"]
    return (-(-h // sh), -(-w // sw), p["filters"])


def _residual_projects(shape: Shape, p: Mapping[str, Any]) -> bool:
    """A projection shortcut is needed when the channel count or the size changes."""
    return shape[-1] != p["filters"] or p["strides"] != (1, 1)


def _residual_params(shape: Shape, p: Mapping[str, Any]) -> int:
    c, f = shape[-1], p["filters"]
    total = 9 * c * f + 4 * f + 9 * f * f + 4 * f
    if _residual_projects(shape, p):
        total += c * f + 4 * f
    return total


def _residual_frozen(shape: Shape, p: Mapping[str, Any]) -> int:
    norms = 3 if _residual_projects(shape, p) else 2  # each with a moving mean and variance
    return norms * 2 * p["filters"]


def _residual_macs(inp: Shape, out: Shape, p: Mapping[str, Any]) -> int:
    c, f = inp[-1], p["filters"]
    pixels = out[0] * out[1]
    macs = pixels * 9 * c * f + pixels * 9 * f * f
    if _residual_projects(inp, p):
        macs += pixels * c * f
    return macs


def _residual_internal(inp: Shape, out: Shape, p: Mapping[str, Any]) -> int:
    # conv_a, bn_a, relu_a, conv_b, bn_b, add (+ shortcut conv and bn); the final ReLU is the output
    tensors = 6 + (2 if _residual_projects(inp, p) else 0)
    return tensors * _prod(out)


def _residual_nodes(p: Mapping[str, Any], name: str, in_shape: Shape) -> list[KerasNode]:
    f, s = p["filters"], p["strides"]
    conv = {"kernel_size": 3, "padding": "same", "use_bias": False}
    known = {"defaults": _CONV_DEFAULTS}
    nodes = []
    shortcut = "@in"
    if _residual_projects(in_shape, p):  # a 1x1 convolution matches the new channel count and size
        nodes += [
            KerasNode(
                f"{name}_shortcut_conv",
                "Conv2D",
                {"filters": f, "kernel_size": 1, "strides": s, "use_bias": False},
                **known,
            ),
            KerasNode(f"{name}_shortcut_bn", "BatchNormalization", {}, (f"{name}_shortcut_conv",)),
        ]
        shortcut = f"{name}_shortcut_bn"
    nodes += [
        KerasNode(f"{name}_conv_a", "Conv2D", {"filters": f, "strides": s, **conv}, **known),
        KerasNode(f"{name}_bn_a", "BatchNormalization", {}, (f"{name}_conv_a",)),
        KerasNode(f"{name}_relu_a", "ReLU", {}, (f"{name}_bn_a",)),
        KerasNode(f"{name}_conv_b", "Conv2D", {"filters": f, **conv}, (f"{name}_relu_a",), **known),
        KerasNode(f"{name}_bn_b", "BatchNormalization", {}, (f"{name}_conv_b",)),
        KerasNode(f"{name}_add", "Add", {}, (f"{name}_bn_b", shortcut)),
        KerasNode(name, "ReLU", {}, (f"{name}_add",)),
    ]
    return nodes


# --- pretrained backbones (the facts about each one are in cnn_core.backbones) -------------------


def _backbone_output(shape: Shape, p: Mapping[str, Any]) -> Shape:
    backbone = BACKBONES[p["model"]]
    h, w, c = shape
    least = backbone.min_size
    if c != 3:
        raise ShapeError(
            f"{backbone.title} takes colour images (3 channels), but the input has {c}; set the "
            "input to 3 channels (grey images are repeated into three)",
            rule="needs_colour",
            input_shape=(h, w, 3),
        )
    if h < least or w < least:
        raise ShapeError(
            f"{backbone.title} needs an input of at least {least}x{least} pixels, but it gets "
            f"{h}x{w}; raise the input size",
            rule="input_too_small",
            input_shape=(max(h, least), max(w, least), c),
        )
    return (*backbone.output_size(h, w), backbone.channels)


def _backbone_frozen(shape: Shape, p: Mapping[str, Any]) -> int:
    backbone = BACKBONES[p["model"]]
    return backbone.frozen_params if p["trainable"] else backbone.params


def _backbone_nodes(p: Mapping[str, Any], name: str, in_shape: Shape) -> list[KerasNode]:
    """One `cnn_core.pretrained.PretrainedBackbone` layer, which holds the whole network."""
    kwargs = {"backbone": p["model"], "weights_source": p["weights"], "trainable": p["trainable"]}
    return [KerasNode(name, "PretrainedBackbone", kwargs)]


def _backbone_code(p: Mapping[str, Any], name: str, in_shape: Shape) -> list[str]:
    """The backbone as plain `keras.applications`, the very network `PretrainedBackbone` holds
    (cnn_core/pretrained.py): the same constructor options, BatchNormalization momentum, freezing
    and input range. ImageNet weights are Keras' own (which adds EfficientNet's extra scaling)."""
    backbone = BACKBONES[p["model"]]
    weights, frozen = p["weights"], not p["trainable"]
    options = {
        **backbone.keras_options,
        "weights": IMAGENET if weights == IMAGENET else None,
        "input_shape": tuple(in_shape),
        "name": name,
    }
    arguments = [f"{key}={_python(value)}" for key, value in options.items()]
    lines = [f"{name} = keras.applications.{backbone.constructor}("]
    if len(", ".join(arguments)) < 90:  # why: indented twice in the script, within 99 columns
        lines += [f"    {', '.join(arguments)}", ")"]
    else:  # one keyword per line, as a formatter would
        lines += [*(f"    {argument}," for argument in arguments), ")"]
    if weights is None:
        lines += [
            "# Random weights: BatchNormalization follows its statistics faster than Keras' 0.999",
            f"for layer in {name}.layers:",
            "    if isinstance(layer, layers.BatchNormalization):",
            f"        layer.momentum = {FRESH_MOMENTUM}",
        ]
    elif weights != IMAGENET:
        lines.append(f"{name}.load_weights({_python(weights)})")
    if frozen:
        lines.append(f"{name}.trainable = False  # frozen: only the layers after it learn")
    lines.append(f"# {backbone.title} takes 0..255 pixels (the Rescaling above gave 0..1)")
    lines.append("x = keras.ops.multiply(x, 255.0)")
    if backbone.preprocessing == "caffe":
        mean = _python(CAFFE_MEAN_BGR)
        lines.append("# as Caffe: BGR channels minus the ImageNet mean")
        lines.append("x = keras.ops.flip(x, axis=-1)")
        lines.append(f"x = x - keras.ops.convert_to_tensor({mean}, x.dtype)")
    if frozen:  # why: BatchNormalization stays in inference mode (Keras' transfer-learning guide)
        lines.append(f"x = {name}(x, training=False)")
    else:
        lines.append(f"x = {name}(x)")
    return lines


def _python(value: Any) -> str:
    """`value` as Python source, strings in double quotes."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _describe_backbone(p: Mapping[str, Any]) -> str:
    backbone = BACKBONES[p["model"]]
    weights = p["weights"]
    source = "random weights" if weights is None else os.path.basename(weights)
    if weights == IMAGENET:
        source = "ImageNet weights"
    state = "trainable" if p["trainable"] else "frozen"
    least = backbone.min_size
    return f"{backbone.title}, {source}, {state}, input {least}x{least} or larger"


def _same_shape(shape: Shape, p: Mapping[str, Any]) -> Shape:
    return shape


def _same_channels(channels: int, p: Mapping[str, Any]) -> int:
    return channels


def _zero(*args: Any) -> int:
    return 0


# --- the parameters, shared between kinds ------------------------------------------------------

_FILTERS = Param(
    "filters",
    "int",
    low=1,
    high=MAX_UNITS,
    example=32,
    help="Number of feature maps this layer learns. More filters: more capacity, more compute.",
)
_KERNEL = Param(
    "kernel_size",
    "pair",
    low=1,
    high=11,
    example=3,
    help="Height and width of the window each filter looks at (3 is the usual choice; [3, 5] is "
    "a 3x5 window).",
)
_STRIDES = Param(
    "strides",
    "pair",
    default=1,
    low=1,
    high=4,
    help="Step between windows. 2 halves the height and width.",
)
_PADDING = Param(
    "padding",
    "choice",
    default="valid",
    choices=PADDINGS,
    help="'same' keeps the size (at stride 1) by padding the border; 'valid' shrinks it.",
)
_ACTIVATION = Param(
    "activation",
    "choice",
    default="linear",
    choices=ACTIVATIONS,
    help="Non-linearity applied to the output. relu is the usual choice; linear means none.",
)
_USE_BIAS = Param(
    "use_bias",
    "bool",
    default=True,
    help="Learn an offset per output. Not needed right before BatchNormalization.",
)
_DEPTH = Param(
    "depth_multiplier",
    "int",
    default=1,
    low=1,
    high=16,
    help="Feature maps each input channel gives (the depthwise step has channels times this).",
)
_POOL = Param(
    "pool_size",
    "pair",
    default=2,
    low=1,
    high=11,
    help="Height and width of the pooling window (or [height, width]). 2 halves the height and "
    "width.",
    always_exported=True,
)
_POOL_STRIDES = Param(
    "strides",
    "pair",
    default=None,
    low=1,
    high=4,
    help="Step between windows; defaults to the pool size.",
    default_from="pool_size",
)
_POOL_PADDING = Param(
    "padding",
    "choice",
    default="valid",
    choices=PADDINGS,
    help="'same' pads the border so no pixel is dropped; 'valid' drops leftover rows.",
)


def _rate(help_text: str) -> Param:
    return Param("rate", "float", low=0.0, high=1.0, high_open=True, example=0.25, help=help_text)


def _pool_kind(name: str, cls: str, summary: str) -> LayerKind:
    return LayerKind(
        name=name,
        summary=summary,
        params=(_POOL, _POOL_STRIDES, _POOL_PADDING),
        accepts="spatial",
        output=_windowed("pool_size", _same_channels),
        count_params=_zero,
        count_macs=_zero,
        keras_class=cls,
        key_params=("pool_size", "strides", "padding"),
    )


def _global_kind(name: str, summary: str, fixes: tuple[str, ...] = ()) -> LayerKind:
    return LayerKind(
        name=name,
        summary=summary,
        params=(),
        accepts="spatial",
        output=lambda shape, p: (shape[-1],),
        count_params=_zero,
        count_macs=_zero,
        fixes=fixes,
    )


_KINDS = (
    LayerKind(
        name="Conv2D",
        summary="Slides learned filters over the image to detect local patterns (edges, textures).",
        params=(_FILTERS, _KERNEL, _STRIDES, _PADDING, _ACTIVATION, _USE_BIAS),
        accepts="spatial",
        output=_windowed("kernel_size", lambda c, p: p["filters"]),
        count_params=_conv_params,
        count_macs=_conv_macs,
        key_params=("filters", "kernel_size", "strides", "padding", "activation"),
    ),
    LayerKind(
        name="DepthwiseConv2D",
        summary="Filters each channel on its own (no mixing across channels): cheap spatial "
        "filtering.",
        params=(_KERNEL, _STRIDES, _PADDING, _DEPTH, _ACTIVATION, _USE_BIAS),
        accepts="spatial",
        output=_windowed("kernel_size", lambda c, p: c * p["depth_multiplier"]),
        count_params=_depthwise_params,
        count_macs=_depthwise_macs,
        key_params=("kernel_size", "strides", "padding", "depth_multiplier", "activation"),
    ),
    LayerKind(
        name="SeparableConv2D",
        summary="A depthwise convolution, then a 1x1 one that mixes channels: a Conv2D with far "
        "fewer parameters.",
        params=(_FILTERS, _KERNEL, _STRIDES, _PADDING, _DEPTH, _ACTIVATION, _USE_BIAS),
        accepts="spatial",
        output=_windowed("kernel_size", lambda c, p: p["filters"]),
        count_params=_separable_params,
        count_macs=_separable_macs,
        key_params=(
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "depth_multiplier",
            "activation",
        ),
    ),
    _pool_kind(
        "MaxPooling2D",
        "MaxPooling2D",
        "Keeps the strongest response in each window, shrinking the feature map.",
    ),
    _pool_kind(
        "AveragePooling2D",
        "AveragePooling2D",
        "Averages each window, shrinking the feature map smoothly.",
    ),
    _global_kind(
        "GlobalAveragePooling2D",
        "Averages each feature map to one number: a flat vector with one value per channel.",
        fixes=("ends_spatial",),  # added after a body that ends on a feature map
    ),
    _global_kind(
        "GlobalMaxPooling2D",
        "Keeps the maximum of each feature map: a flat vector with one value per channel.",
    ),
    LayerKind(
        name="BatchNormalization",
        summary="Normalises activations batch by batch; trains faster and more stably.",
        params=(),
        accepts="any",
        output=_same_shape,
        count_params=lambda shape, p: 4 * shape[-1],  # gamma, beta, moving mean and variance
        count_frozen=lambda shape, p: 2 * shape[-1],  # the moving mean and variance
        count_macs=_zero,
        trains_as="FusedBatchNormalization",
    ),
    LayerKind(
        name="Activation",
        summary="Applies a non-linearity on its own (e.g. after BatchNormalization).",
        params=(
            Param(
                "activation", "choice", choices=ACTIVATIONS, example="relu", help="The function."
            ),
        ),
        accepts="any",
        output=_same_shape,
        count_params=_zero,
        count_macs=_zero,
        key_params=("activation",),
    ),
    LayerKind(
        name="Dropout",
        summary="Randomly zeroes a fraction of values while training, against overfitting.",
        params=(_rate("Fraction of values dropped at each training step (0.2 to 0.5 is usual)."),),
        accepts="any",
        output=_same_shape,
        count_params=_zero,
        count_macs=_zero,
        key_params=("rate",),
    ),
    LayerKind(
        name="SpatialDropout2D",
        summary="Drops whole feature maps while training; dropout suited to convolutions.",
        params=(_rate("Fraction of feature maps dropped at each training step."),),
        accepts="spatial",
        output=_same_shape,
        count_params=_zero,
        count_macs=_zero,
        key_params=("rate",),
    ),
    LayerKind(
        name="Flatten",
        summary="Unrolls the feature map into one long vector for Dense layers.",
        params=(),
        accepts="any",
        output=lambda shape, p: (_prod(shape),),
        count_params=_zero,
        count_macs=_zero,
        fixes=("dense_on_spatial",),  # inserted before a layer that needs a flat input
    ),
    LayerKind(
        name="Dense",
        summary="Connects every input value to every output unit (a fully connected layer).",
        params=(
            Param(
                "units",
                "int",
                low=1,
                high=MAX_UNITS,
                example=64,
                help="Number of output values (neurons).",
            ),
            _ACTIVATION,
            _USE_BIAS,
        ),
        accepts="flat",
        output=lambda shape, p: (p["units"],),
        count_params=lambda shape, p: shape[0] * p["units"] + (p["units"] if p["use_bias"] else 0),
        count_macs=lambda inp, out, p: inp[0] * out[0],
        key_params=("units", "activation"),
    ),
    LayerKind(
        name="ResidualBlock",
        summary="Two 3x3 convolutions with a skip connection (ResNet's basic block).",
        params=(
            Param(
                "filters",
                "int",
                low=1,
                high=MAX_UNITS,
                example=64,
                help="Feature maps of both convolutions and of the block's output.",
            ),
            Param(
                "strides",
                "pair",
                default=1,
                low=1,
                high=2,
                help="1 keeps the size; 2 halves the height and width.",
            ),
        ),
        accepts="spatial",
        output=_residual_output,
        count_params=_residual_params,
        count_macs=_residual_macs,
        nodes=_residual_nodes,
        count_frozen=_residual_frozen,
        internal_values=_residual_internal,
        key_params=("filters", "strides"),
    ),
)

_BACKBONE = LayerKind(
    name="Backbone",
    summary="A network pretrained on ImageNet (keras.applications), without its classifier: "
    "transfer learning for your own photos.",
    params=(
        Param(
            "model",
            "choice",
            default="mobilenet_v3_small",
            choices=tuple(BACKBONES),
            help="Which network: MobileNetV3-Small is the fastest, ResNet50 the largest.",
        ),
        Param(
            "weights",
            "file",
            default=None,
            choices=(IMAGENET,),
            suffix=WEIGHTS_SUFFIX,
            help='"imagenet" (downloaded once into ~/.keras/models), null (random initialisation) '
            f"or the path of a {WEIGHTS_SUFFIX} file.",
        ),
        Param(
            "trainable",
            "bool",
            default=False,
            help="False freezes the backbone (its BatchNormalization stays in inference mode): "
            "only the layers after it learn.",
        ),
    ),
    accepts="spatial",
    output=_backbone_output,
    count_params=lambda shape, p: BACKBONES[p["model"]].params,
    count_macs=lambda inp, out, p: BACKBONES[p["model"]].macs(inp[0], inp[1]),
    count_frozen=_backbone_frozen,
    internal_values=lambda i, o, p: BACKBONES[p["model"]].inner_values(i[0], i[1]),
    nodes=_backbone_nodes,
    first_only=True,
    code=_backbone_code,
    describe_with=_describe_backbone,
)
_KINDS = (*_KINDS, _BACKBONE)

KINDS: dict[str, LayerKind] = {kind.name: kind for kind in _KINDS}
_CONV_DEFAULTS = KINDS["Conv2D"].keras_defaults({})  # for the Conv2D layers inside a block
HEAD_NAME = "classifier"  # the Keras name of the classifier head


@dataclass(frozen=True)
class Head:
    """The classifier every model ends with, always added after the spec's layers."""

    kind: LayerKind
    params: Mapping[str, Any]

    @property
    def description(self) -> str:
        return f"{self.kind.describe(self.params)} (classifier)"

    def nodes(self, in_shape: Shape) -> list[KerasNode]:
        return self.kind.keras_nodes(self.params, HEAD_NAME, in_shape)


@functools.lru_cache(maxsize=64)
def classifier_head(num_classes: int) -> Head:
    """Dense(num_classes, softmax): one probability per class."""
    kind = KINDS["Dense"]
    params = {**kind.keras_defaults({}), "units": num_classes, "activation": "softmax"}
    return Head(kind, MappingProxyType(params))


FREEZE_KEY = "trainable"  # a kind with this key can be frozen: what fine-tuning unfreezes
WIDTH_KEYS = ("filters", "units")  # the keys that set how wide a layer is (a search varies them)


def freezable_layers(layers: Iterable[Any]) -> list[tuple[int, bool]]:
    """(index, trainable) of each layer (a `LayerSpec` of a checked spec) whose kind can be
    frozen, with its resolved `trainable` value."""
    return [
        (index, bool(KINDS[layer.type].resolve(layer.params).params[FREEZE_KEY]))
        for index, layer in enumerate(layers)
        if FREEZE_KEY in KINDS[layer.type].param_names
    ]


def backbone_choices(layers: Iterable[Any]) -> list[tuple[str, Any]]:
    """(network, weights) of each Backbone layer (a `LayerSpec` of a checked spec)."""
    found = []
    for layer in layers:
        if layer.type == _BACKBONE.name:
            params = _BACKBONE.resolve(layer.params).params
            found.append((params["model"], params["weights"]))
    return found


def fixing_kind(rule: str) -> LayerKind:
    """The kind whose one-click fix repairs a breach of `rule` (see `LayerKind.fixes`)."""
    return _FIXES[rule]


_FIXES = {rule: kind for kind in _KINDS for rule in kind.fixes}


def snake_name(kind: str) -> str:
    """'MaxPooling2D' -> 'max_pooling2d', for readable Keras layer names."""
    out = []
    for i, ch in enumerate(kind):
        if ch.isupper() and i and kind[i - 1].islower():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def layer_name(index: int, kind: str) -> str:
    """The Keras name of the spec's layer at 0-based `index` ('conv2d_1' for the first)."""
    return f"{snake_name(kind)}_{index + 1}"


def keras_nodes(index: int, kind: LayerKind, params: Mapping[str, Any], in_shape: Shape):
    """The Keras layers that make up one spec layer, named after its 1-based position."""
    return kind.keras_nodes(params, layer_name(index, kind.name), in_shape)
