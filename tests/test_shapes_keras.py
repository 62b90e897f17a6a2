"""Shape inference agrees exactly with Keras, on hundreds of random specs (property-based).

For every generated spec: if `analyze` accepts it, the Keras model built from it has the same
output shape at every layer, the same `count_params()` and, counted from the Keras layers' kernels,
the same multiply-adds; if `analyze` rejects it, building the layers one by one in Keras, with no
validation, shows the rule it breaks at the layer it names.
"""

from __future__ import annotations

import math

import keras
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnn_core.builder import apply_nodes, build_model
from cnn_core.layers import ACTIVATIONS, KINDS, keras_nodes, layer_name
from cnn_core.shapes import MAX_PARAMS, analyze
from cnn_core.spec import LayerSpec, ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore")

small_int = st.integers

CONV_OPTIONS = {
    "strides": small_int(1, 4),
    "padding": st.sampled_from(["valid", "same"]),
    "activation": st.sampled_from(ACTIVATIONS),
    "use_bias": st.booleans(),
}
DEPTH_OPTIONS = {**CONV_OPTIONS, "depth_multiplier": small_int(1, 3)}

LAYERS = {
    "Conv2D": st.fixed_dictionaries(
        {"filters": small_int(1, 12), "kernel_size": small_int(1, 7)}, optional=CONV_OPTIONS
    ),
    "DepthwiseConv2D": st.fixed_dictionaries(
        {"kernel_size": small_int(1, 7)}, optional=DEPTH_OPTIONS
    ),
    "SeparableConv2D": st.fixed_dictionaries(
        {"filters": small_int(1, 12), "kernel_size": small_int(1, 7)}, optional=DEPTH_OPTIONS
    ),
    "MaxPooling2D": st.fixed_dictionaries(
        {},
        optional={
            "pool_size": small_int(1, 5),
            "strides": small_int(1, 4),
            "padding": st.sampled_from(["valid", "same"]),
        },
    ),
    "AveragePooling2D": st.fixed_dictionaries(
        {}, optional={"pool_size": small_int(1, 5), "padding": st.sampled_from(["valid", "same"])}
    ),
    "GlobalAveragePooling2D": st.just({}),
    "GlobalMaxPooling2D": st.just({}),
    "BatchNormalization": st.just({}),
    "Activation": st.fixed_dictionaries({"activation": st.sampled_from(ACTIVATIONS)}),
    "Dropout": st.fixed_dictionaries({"rate": st.floats(0, 0.9)}),
    "SpatialDropout2D": st.fixed_dictionaries({"rate": st.floats(0, 0.9)}),
    "Flatten": st.just({}),
    "Dense": st.fixed_dictionaries(
        {"units": small_int(1, 24)},
        optional={"activation": st.sampled_from(ACTIVATIONS), "use_bias": st.booleans()},
    ),
    "ResidualBlock": st.fixed_dictionaries(
        {"filters": small_int(1, 8)}, optional={"strides": small_int(1, 2)}
    ),
}
# Backbones take seconds to build, too slow for hundreds of random specs; tests/test_backbone.py
# checks each against Keras at chosen input sizes instead.
TESTED_APART = {"Backbone"}
assert set(LAYERS) | TESTED_APART == set(KINDS), "a new layer kind needs a strategy here"

layer = st.sampled_from(sorted(LAYERS)).flatmap(
    lambda kind: LAYERS[kind].map(lambda params: LayerSpec(kind, params))
)
ending = st.sampled_from([[], [LayerSpec("Flatten")], [LayerSpec("GlobalAveragePooling2D")]])


@st.composite
def specs(draw: st.DrawFn) -> ModelSpec:
    body = draw(st.lists(layer, max_size=7)) + draw(ending)
    return ModelSpec(
        input_shape=(draw(small_int(3, 34)), draw(small_int(3, 34)), draw(st.sampled_from([1, 3]))),
        num_classes=draw(small_int(2, 12)),
        layers=tuple(body),
    )


def first_violation(spec: ModelSpec) -> int | None:
    """Build layer by layer in Keras without validation; the 0-based index where a rule breaks,
    len(layers) when the body ends on a feature map, or None when nothing is broken."""
    x = keras.Input(shape=spec.input_shape)
    for index, item in enumerate(spec.layers):
        kind = KINDS[item.type]
        rank = len(x.shape)
        if (kind.accepts == "flat" and rank == 4) or (kind.accepts == "spatial" and rank == 2):
            return index
        nodes = keras_nodes(index, kind, kind.resolve(item.params).params, tuple(x.shape[1:]))
        try:
            x = apply_nodes(nodes, x)
        except ValueError:  # Keras refuses: the output would be empty
            return index
        if any(d is not None and d <= 0 for d in x.shape[1:]):
            return index
    if len(x.shape) == 4:
        return len(spec.layers)
    return None


def keras_macs(model: keras.Model, name: str) -> int:
    """Multiply-adds per image of the Keras layers named `name` or `name_...`, from their kernels:
    each kernel weight is used once per output position (a flat output has one position)."""
    total = 0
    for layer in model.layers:
        if layer.name == name or layer.name.startswith(name + "_"):
            positions = math.prod(layer.output.shape[1:-1])
            kernels = [w for w in layer.weights if "kernel" in w.path.split("/")[-1]]
            total += sum(math.prod(w.shape) for w in kernels) * positions
    return total


def assert_figures_agree(model: keras.Model, analysis) -> None:
    """Every layer's output shape and multiply-adds, and the parameter count, as Keras has them."""
    for info in analysis.layers[:-1]:
        name = layer_name(info.index, info.type)
        keras_shape = tuple(model.get_layer(name).output.shape[1:])
        assert keras_shape == info.output_shape, (info.index, info.type)
        assert keras_macs(model, name) == info.macs, (info.index, info.type)
    assert tuple(model.output.shape[1:]) == analysis.layers[-1].output_shape
    assert keras_macs(model, "classifier") == analysis.layers[-1].macs
    assert model.count_params() == analysis.total_params
    frozen = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    assert frozen == analysis.total_frozen


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(specs())
def test_inference_agrees_with_keras(spec: ModelSpec):
    analysis = analyze(spec)
    event("valid" if analysis.valid else "invalid")
    if analysis.valid:
        assert_figures_agree(build_model(spec), analysis)
        return
    rules = {problem.rule for problem in analysis.problems}
    assert rules <= {
        "spatial_after_flat",
        "dense_on_spatial",
        "ends_spatial",
        "shrinks_to_zero",
        "too_many_params",
    }, rules  # the strategy only draws valid parameter values
    if rules == {"too_many_params"}:
        assert analysis.total_params > MAX_PARAMS
        return
    violation = first_violation(spec)
    assert violation is not None, [p.message for p in analysis.problems]
    first = analysis.problems[0]
    expected = len(spec.layers) if first.rule == "ends_spatial" else first.layer
    assert violation == expected, (violation, first.message)


@st.composite
def perturbed(draw: st.DrawFn, spec: ModelSpec) -> ModelSpec:
    """`spec` written differently but meaning the same: whole numbers as floats, a window or a
    stride as a pair [n, n] (or the pair as its float twin), keys at their default left out."""
    layers = []
    for item in spec.layers:
        kind = KINDS[item.type]
        params = {}
        for key, value in item.params.items():
            param = kind.param(key)
            if value == param.default and draw(st.booleans()):
                continue  # left out: the default fills it
            if param.type in ("int", "pair") and draw(st.booleans()):
                value = float(value)
            if param.type == "pair" and draw(st.booleans()):
                value = [value, draw(st.sampled_from([value, int(value), float(value)]))]
            params[key] = value
        layers.append(LayerSpec(item.type, params))
    return ModelSpec(
        input_shape=spec.input_shape, num_classes=spec.num_classes, layers=tuple(layers)
    )


SPATIAL = (
    "Conv2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "ResidualBlock",
    "SpatialDropout2D",
)
FLAT = ("Dense", "Dropout", "BatchNormalization", "Activation")


def kinds_layer(kinds: tuple[str, ...]) -> st.SearchStrategy[LayerSpec]:
    return st.sampled_from(kinds).flatmap(
        lambda kind: LAYERS[kind].map(lambda params: LayerSpec(kind, params))
    )


@st.composite
def buildable_specs(draw: st.DrawFn) -> ModelSpec:
    """Specs that mostly pass (feature maps, then a flattening layer, then vectors), so that the
    property below builds many models rather than refusing most of them."""
    body = draw(st.lists(kinds_layer(SPATIAL), min_size=1, max_size=4))
    body += draw(ending.filter(bool)) + draw(st.lists(kinds_layer(FLAT), max_size=2))
    return ModelSpec(
        input_shape=(draw(small_int(12, 34)), draw(small_int(12, 34)), 3),
        num_classes=draw(small_int(2, 12)),
        layers=tuple(body),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_values_written_differently_validate_and_build_the_same(data: st.DataObject):
    # Issue 14: what `analyze` accepts is what Keras builds, however a valid value is written.
    spec = data.draw(st.one_of(buildable_specs(), specs()))
    again = data.draw(perturbed(spec))
    analysis, other = analyze(spec), analyze(again)
    assert other.valid == analysis.valid, [p.message for p in other.problems]
    assert [p.rule for p in other.problems] == [p.rule for p in analysis.problems]
    assert [i.output_shape for i in other.layers] == [i.output_shape for i in analysis.layers]
    assert [i.resolved for i in other.layers] == [i.resolved for i in analysis.layers]
    if other.valid:
        event("valid")
        model = build_model(again)  # raw floats or pairs would make Keras refuse here
        assert tuple(model.output.shape[1:]) == other.layers[-1].output_shape
        assert model.count_params() == other.total_params


window = st.one_of(small_int(1, 5), st.lists(small_int(1, 5), min_size=2, max_size=2))
step = st.one_of(small_int(1, 3), st.lists(small_int(1, 3), min_size=2, max_size=2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=window,
    strides=step,
    pool=window,
    padding=st.sampled_from(["valid", "same"]),
    side=small_int(4, 20),
)
def test_non_square_windows_and_strides_agree_with_keras(kernel, strides, pool, padding, side):
    spec = ModelSpec(
        input_shape=(side, side + 3, 3),
        num_classes=2,
        layers=(
            LayerSpec("Conv2D", {"filters": 3, "kernel_size": kernel, "strides": strides}),
            LayerSpec("MaxPooling2D", {"pool_size": pool, "padding": padding}),
            LayerSpec("DepthwiseConv2D", {"kernel_size": kernel, "padding": padding}),
            LayerSpec("SeparableConv2D", {"filters": 5, "kernel_size": kernel, "strides": strides}),
            LayerSpec("ResidualBlock", {"filters": 4, "strides": [1, 2]}),
            LayerSpec("Flatten"),
        ),
    )
    analysis = analyze(spec)
    if not analysis.valid:
        assert {p.rule for p in analysis.problems} == {"shrinks_to_zero"}
        assert first_violation(spec) == analysis.problems[0].layer
        return
    assert_figures_agree(build_model(spec), analysis)
