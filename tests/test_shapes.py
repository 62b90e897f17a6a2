"""Validation and shape inference in pure Python: figures, and every rule with its message."""

from __future__ import annotations

import json

import pytest

from cnn_core.errors import SpecError
from cnn_core.layers import KINDS
from cnn_core.presets import load_preset
from cnn_core.shapes import RULES, analyze, check_spec
from cnn_core.spec import LayerSpec, ModelSpec

FLAT = {"type": "Flatten"}


def spec_of(*layers: dict, input_shape=(32, 32, 3), num_classes=10) -> ModelSpec:
    return ModelSpec(
        input_shape=input_shape,
        num_classes=num_classes,
        layers=tuple(
            LayerSpec(d["type"], {k: v for k, v in d.items() if k != "type"}) for d in layers
        ),
    )


def only_problem(spec: ModelSpec):
    problems = analyze(spec).problems
    assert len(problems) == 1, [p.message for p in problems]
    return problems[0]


def test_tutorial_figures():
    analysis = analyze(load_preset("tutorial_cnn").spec)
    assert analysis.valid
    assert analysis.total_params == 319_178
    shapes = [info.output_shape for info in analysis.layers]
    assert shapes == [
        (32, 32, 32),
        (16, 16, 32),
        (16, 16, 64),
        (8, 8, 64),
        (8, 8, 64),
        (4096,),
        (64,),
        (10,),
    ]
    assert [info.params for info in analysis.layers] == [896, 0, 18496, 0, 36928, 0, 262208, 650]
    # multiply-adds: 32*32*32*27 + 16*16*64*288 + 8*8*64*576 + 4096*64 + 64*10
    assert analysis.total_macs == 884_736 + 4_718_592 + 2_359_296 + 262_144 + 640
    assert analysis.final_feature_map == (8, 8, 64)
    assert analysis.layers[-1].head
    assert analysis.layers[-1].index is None
    assert analysis.model_bytes == 319_178 * 4


def test_residual_block_identity_and_projection():
    identity = analyze(spec_of({"type": "ResidualBlock", "filters": 3}, {"type": "Flatten"}))
    assert identity.layers[0].output_shape == (32, 32, 3)
    assert identity.layers[0].params == 9 * 3 * 3 * 2 + 4 * 3 * 2  # no shortcut convolution
    projected = analyze(
        spec_of({"type": "ResidualBlock", "filters": 8, "strides": 2}, {"type": "Flatten"})
    )
    assert projected.layers[0].output_shape == (16, 16, 8)
    assert projected.layers[0].params == 9 * 3 * 8 + 9 * 8 * 8 + 3 * 8 + 3 * 4 * 8


def test_pool_strides_default_to_pool_size_and_odd_sizes_round_like_keras():
    spec = spec_of(
        {"type": "MaxPooling2D", "pool_size": 3},
        {"type": "AveragePooling2D", "pool_size": 2, "strides": 1, "padding": "same"},
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        {"type": "GlobalMaxPooling2D"},
        input_shape=(31, 17, 1),
    )
    shapes = [info.output_shape for info in analyze(spec).layers]
    assert shapes == [(10, 5, 1), (10, 5, 1), (5, 3, 4), (4,), (10,)]


# One spec that breaks each stated rule, and only that rule.
BREAKS = {
    "unknown_kind": [{"type": "Conv3D"}],
    "unknown_key": [{"type": "Conv2D", "filtrs": 32, "filters": 8, "kernel_size": 3}, FLAT],
    "missing_key": [{"type": "Conv2D", "kernel_size": 3}, FLAT],
    "bad_value": [{"type": "Conv2D", "filters": 8.5, "kernel_size": 3}, FLAT],
    "spatial_after_flat": [FLAT, {"type": "Conv2D", "filters": 8, "kernel_size": 3}],
    "dense_on_spatial": [{"type": "Dense", "units": 8}, FLAT],
    "ends_spatial": [{"type": "Conv2D", "filters": 8, "kernel_size": 3}],
    "shrinks_to_zero": [*[{"type": "Conv2D", "filters": 8, "kernel_size": 11}] * 4, FLAT],
    "too_many_params": [FLAT, {"type": "Dense", "units": 8192}, {"type": "Dense", "units": 8192}],
    "not_first": [{"type": "BatchNormalization"}, {"type": "Backbone"}, FLAT],
    "needs_colour": [{"type": "Backbone"}, FLAT],
    "input_too_small": [{"type": "Backbone", "model": "resnet50"}, FLAT],
}
INPUTS = {"needs_colour": (32, 32, 1), "input_too_small": (31, 64, 3)}  # else 32x32x3


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_each_stated_rule_is_what_its_breach_reports(rule: str) -> None:
    spec = spec_of(*BREAKS[rule], input_shape=INPUTS.get(rule, (32, 32, 3)))
    assert [p.rule for p in analyze(spec).problems] == [rule]


def test_every_stated_rule_can_be_broken() -> None:
    """A rule added to RULES without a spec that breaks it here fails this test."""
    assert set(RULES) == set(BREAKS)


def test_typo_in_a_key_is_caught_with_a_suggestion():
    problem = only_problem(
        spec_of(
            {"type": "Conv2D", "filtrs": 32, "filters": 8, "kernel_size": 3}, {"type": "Flatten"}
        )
    )
    assert problem.rule == "unknown_key"
    assert problem.layer == 0
    assert 'Layer 1 (Conv2D): unknown key "filtrs"; did you mean "filters"?' in problem.message


def test_unknown_kind_suggests_the_right_spelling():
    problem = only_problem(spec_of({"type": "Conv2d", "filters": 8}))
    assert problem.rule == "unknown_kind"
    assert 'unknown layer type "Conv2d"; did you mean "Conv2D"?' in problem.message


def test_missing_required_key_says_what_to_add():
    problem = only_problem(spec_of({"type": "Conv2D", "filters": 8}, {"type": "Flatten"}))
    assert problem.rule == "missing_key"
    assert 'kernel_size is required; add e.g. "kernel_size": 3' in problem.message


@pytest.mark.parametrize(
    ("layer", "words"),
    [
        (
            {"type": "Conv2D", "filters": 0, "kernel_size": 3},
            "filters must be a whole number from 1 to 8192, got 0",
        ),
        ({"type": "Conv2D", "filters": 8193, "kernel_size": 3}, "from 1 to 8192, got 8193"),
        (
            {"type": "Conv2D", "filters": 8, "kernel_size": 12},
            "kernel_size must be a whole number from 1 to 11",
        ),
        (
            {"type": "Conv2D", "filters": 8, "kernel_size": 3, "strides": 5},
            "strides must be a whole number from 1 to 4",
        ),
        ({"type": "Conv2D", "filters": "32", "kernel_size": 3}, "got '32'"),
        ({"type": "Conv2D", "filters": 3.5, "kernel_size": 3}, "got 3.5"),
        ({"type": "Conv2D", "filters": True, "kernel_size": 3}, "got true"),
        (
            {"type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "SAME"},
            'lower case: "same"',
        ),
        (
            {"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "softmaxx"},
            "activation must be one of",
        ),
        (
            {"type": "Conv2D", "filters": 8, "kernel_size": 3, "use_bias": "no"},
            "use_bias must be true or false",
        ),
        ({"type": "Dropout", "rate": 1.0}, r"rate must be a number in \[0, 1\)"),
        ({"type": "Dropout", "rate": -0.1}, r"rate must be a number in \[0, 1\)"),
        ({"type": "Dropout", "rate": None}, "got null"),
        ({"type": "SpatialDropout2D", "rate": 1}, r"\[0, 1\)"),
        (
            {"type": "ResidualBlock", "filters": 8, "strides": 3},
            "strides must be a whole number from 1 to 2",
        ),
        ({"type": "MaxPooling2D", "pool_size": 0}, "pool_size must be a whole number from 1 to 11"),
        ({"type": "Conv2D", "filters": 8.5, "kernel_size": 3}, "filters must be .*, got 8.5"),
        (
            {"type": "Conv2D", "filters": 8, "kernel_size": [3]},
            r"kernel_size must be .* or a list of two of them \[height, width\], got \[3\]",
        ),
        ({"type": "Conv2D", "filters": 8, "kernel_size": "3"}, "kernel_size must be .*, got '3'"),
        ({"type": "Conv2D", "filters": 8, "kernel_size": [3, 3, 3]}, "kernel_size must be"),
        ({"type": "Conv2D", "filters": 8, "kernel_size": [3, 2.5]}, r"got \[3, 2.5\]"),
        ({"type": "Conv2D", "filters": 8, "kernel_size": 3, "strides": [2, 0]}, "strides must"),
        ({"type": "MaxPooling2D", "strides": [2, True]}, "strides must be"),
    ],
)
def test_values_out_of_bounds_or_of_the_wrong_type(layer, words):
    spec = spec_of(layer, {"type": "Flatten"})
    problems = [p for p in analyze(spec).problems if p.layer == 0]
    assert len(problems) == 1
    assert problems[0].rule == "bad_value"
    assert problems[0].message.startswith(f"Layer 1 ({layer['type']}): ")
    assert __import__("re").search(words, problems[0].message), problems[0].message


def test_parameters_are_resolved_once_for_everything_after_the_checks():
    spec = spec_of(
        {"type": "Conv2D", "filters": 8.0, "kernel_size": [3.0, 5], "padding": "same"},
        {"type": "MaxPooling2D"},
        {"type": "ResidualBlock", "filters": 4, "strides": 2.0},
        {"type": "Flatten"},
    )
    analysis = analyze(spec)
    assert analysis.valid, [p.message for p in analysis.problems]
    conv, pool, block = (info.resolved for info in analysis.layers[:3])
    assert dict(conv) == {
        "filters": 8,
        "kernel_size": (3, 5),
        "strides": (1, 1),  # the default, filled in and written as a pair like the rest
        "padding": "same",
        "activation": "linear",
        "use_bias": True,
    }
    assert type(conv["filters"]) is int
    assert pool["strides"] == pool["pool_size"] == (2, 2)  # Keras: strides default to pool_size
    assert block["strides"] == (2, 2)
    with pytest.raises(TypeError):
        conv["filters"] = 9  # type: ignore[index]  # why: read-only, so no one re-normalises
    assert json.loads(json.dumps(dict(conv)))["kernel_size"] == [3, 5]
    assert analysis.layers[0].description == "Conv2D 8, 3x5, same"
    assert analysis.layers[0].params == 3 * 5 * 3 * 8 + 8
    assert analysis.layers[-1].resolved is None  # the head has no spec parameters
    assert spec.layers[0].params["kernel_size"] == [3.0, 5]  # the spec keeps what was written


def test_a_layer_with_a_bad_value_has_no_resolved_parameters():
    analysis = analyze(spec_of({"type": "Conv2D", "filters": 8.5, "kernel_size": 3}))
    assert analysis.layers[0].resolved is None
    assert analysis.problems[0].message.startswith("Layer 1 (Conv2D): filters must be")


def test_whole_floats_are_accepted_as_integers():
    analysis = analyze(
        spec_of({"type": "Conv2D", "filters": 8.0, "kernel_size": 3}, {"type": "Flatten"})
    )
    assert analysis.valid
    assert analysis.layers[0].output_shape == (30, 30, 8)


def test_dense_on_a_feature_map_offers_to_insert_flatten():
    spec = spec_of(
        {"type": "Conv2D", "filters": 8, "kernel_size": 3}, {"type": "Dense", "units": 4}
    )
    problem = only_problem(spec)
    assert problem.rule == "dense_on_spatial"
    assert problem.layer == 1
    assert "Layer 2 (Dense): needs a flat input but gets a 30x30x8 feature map" in problem.message
    assert "add Flatten or global pooling before it" in problem.message
    fixed = problem.fix.apply(spec)
    assert [layer.type for layer in fixed.layers] == ["Conv2D", "Flatten", "Dense"]
    assert analyze(fixed).valid


def test_spatial_layer_after_flatten_names_the_flatten():
    spec = spec_of(
        {"type": "Flatten"},
        {"type": "Dense", "units": 8},
        {"type": "MaxPooling2D"},
        {"type": "Dense", "units": 4},
    )
    problem = only_problem(spec)
    assert problem.rule == "spatial_after_flat"
    assert problem.layer == 2
    assert (
        "Layer 3 (MaxPooling2D): needs a feature map, but the tensor is already flat"
        in problem.message
    )
    assert "after layer 1" in problem.message
    assert analyze(problem.fix.apply(spec)).valid


def test_body_that_ends_spatial_is_refused_and_fixable():
    spec = spec_of({"type": "Conv2D", "filters": 8, "kernel_size": 3})
    problem = only_problem(spec)
    assert problem.rule == "ends_spatial"
    assert "add Flatten or GlobalAveragePooling2D at the end" in problem.message
    assert analyze(problem.fix.apply(spec)).valid
    assert only_problem(spec_of()).rule == "ends_spatial"  # an empty body too


def test_feature_map_shrinking_to_nothing():
    spec = spec_of(
        {"type": "MaxPooling2D", "pool_size": 4},
        {"type": "Conv2D", "filters": 8, "kernel_size": 5},
        {"type": "Flatten"},
        input_shape=(8, 8, 3),
    )
    problem = only_problem(spec)
    assert problem.rule == "shrinks_to_zero"
    assert problem.layer == 1
    assert "the 2x2 feature map is too small for a 5x5 kernel" in problem.message
    assert "remove a pooling layer or use padding='same'" in problem.message
    same = spec_of(
        {"type": "MaxPooling2D", "pool_size": 4},
        {"type": "Conv2D", "filters": 8, "kernel_size": 5, "padding": "same"},
        {"type": "Flatten"},
        input_shape=(8, 8, 3),
    )
    assert analyze(same).valid


def test_more_than_fifty_million_parameters():
    spec = spec_of(
        {"type": "Flatten"}, {"type": "Dense", "units": 8192}, {"type": "Dense", "units": 8192}
    )
    problem = only_problem(spec)
    assert problem.rule == "too_many_params"
    assert "Layer 2 (Dense) holds" in problem.message or "Layer 3 (Dense) holds" in problem.message
    assert "more than the 50,000,000" in problem.message


def test_problems_after_a_broken_layer_are_still_reported():
    spec = spec_of(
        {"type": "Dense", "units": 4}, {"type": "Dropout", "rate": 2}, {"type": "Flatten", "x": 1}
    )
    rules = sorted(p.rule for p in analyze(spec).problems)
    assert rules == ["bad_value", "dense_on_spatial", "unknown_key"]
    shapes = [info.output_shape for info in analyze(spec).layers]
    assert shapes == [None, None, None, None]  # unknown after the first broken layer


def test_check_spec_raises_with_every_message():
    spec = spec_of({"type": "Dense", "units": 4})
    with pytest.raises(SpecError, match="Layer 1 \\(Dense\\)") as info:
        check_spec(spec)
    assert info.value.problems[0].rule == "dense_on_spatial"


def test_every_kind_has_help_for_every_parameter():
    for kind in KINDS.values():
        assert kind.summary.endswith(".")
        for param in kind.params:
            assert param.help, f"{kind.name}.{param.name} has no help text"


def test_to_dict_matches_the_cli_contract():
    doc = analyze(load_preset("tutorial_cnn").spec).to_dict()
    assert doc["valid"] is True
    assert doc["errors"] == []
    assert doc["total_params"] == 319_178
    convolutions = {0: ([32, 32, 32], 896, 884_736), 2: ([16, 16, 64], 18496, 4_718_592)}
    for index, (shape, params, macs) in convolutions.items():
        resolved = doc["layers"][index].pop("resolved")  # what the builder reads: defaults filled
        assert resolved["kernel_size"] == [3, 3] and resolved["strides"] == [1, 1]
        assert doc["layers"][index] == {
            "index": index,
            "type": "Conv2D",
            "output_shape": shape,
            "params": params,
            "macs": macs,
        }
    assert doc["layers"][-1]["head"] is True
    assert doc["layers"][-1]["type"] == "Dense"
    assert "resolved" not in doc["layers"][-1]  # the head is not the spec's to change


def test_validate_json_shows_each_layers_parameters_as_they_are_built():
    # Issue 14, point 1: a whole float and a single kernel size are shown as the builder gets them.
    spec = spec_of({"type": "Conv2D", "filters": 8.0, "kernel_size": 3.0}, {"type": "Flatten"})
    resolved = analyze(spec).to_dict()["layers"][0]["resolved"]
    assert resolved["filters"] == 8 and type(resolved["filters"]) is int
    assert resolved["kernel_size"] == [3, 3] and resolved["padding"] == "valid"
    assert json.loads(json.dumps(resolved)) == resolved


def test_depthwise_and_separable_convolutions_figures():
    # Issue 14, point 2: two kinds added in the registry alone; figures as Keras counts them.
    spec = spec_of(
        {"type": "DepthwiseConv2D", "kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
        {"type": "SeparableConv2D", "filters": 16, "kernel_size": [3, 5], "strides": 2},
        {"type": "GlobalAveragePooling2D"},
        input_shape=(32, 32, 3),
    )
    analysis = analyze(spec)
    assert analysis.valid, [p.message for p in analysis.problems]
    depthwise, separable = analysis.layers[:2]
    assert depthwise.output_shape == (32, 32, 6)  # 3 channels, 2 maps each
    assert depthwise.params == 3 * 3 * 6 + 6
    assert depthwise.macs == 32 * 32 * 6 * 9
    assert separable.output_shape == (15, 14, 16)
    assert separable.params == 3 * 5 * 6 + 6 * 16 + 16  # depthwise (no bias), pointwise, bias
    assert separable.macs == 15 * 14 * (6 * 15 + 6 * 16)
    assert depthwise.description == "DepthwiseConv2D 3x3, same, depth x2"
    assert separable.description == "SeparableConv2D 16, 3x5, stride 2, valid"


def test_the_classifier_head_comes_from_the_registry():
    from cnn_core.builder import model_nodes
    from cnn_core.layers import classifier_head

    spec = load_preset("tutorial_cnn").spec
    head, info = classifier_head(spec.num_classes), analyze(spec).layers[-1]
    assert (info.type, info.description) == (head.kind.name, "Dense 10, softmax (classifier)")
    assert (info.params, info.macs, info.output_shape) == (64 * 10 + 10, 64 * 10, (10,))
    assert model_nodes(spec)[-1][1] == head.nodes((64,))  # the builder's head is the same one


def test_pool_strides_follow_the_pool_size_they_default_to():
    # The quirk is a Param field (`default_from`), read by resolve, describe and the widgets.
    pool = KINDS["MaxPooling2D"]
    assert pool.param("strides").default_from == "pool_size"
    assert pool.resolve({"pool_size": [3, 2]}).params["strides"] == (3, 2)
    assert pool.resolve({"pool_size": 3, "strides": 1}).params["strides"] == (1, 1)
    assert pool.describe(pool.resolve({"pool_size": 3}).params) == "MaxPooling2D 3x3, valid"
    assert pool.keras_defaults(pool.resolve({"pool_size": 3}).params)["strides"] == (3, 3)


def test_shapes_are_written_as_text_in_one_place():
    # Issue 14, point 8: one `format_shape`, not a `"x".join(...)` in each module that shows one.
    import ast
    from pathlib import Path

    from cnn_core.layers import format_shape

    assert format_shape((28, 28, 32)) == "28x28x32"
    assert format_shape((10,)) == "10"
    assert format_shape(None) == "?"
    root = Path(__file__).resolve().parent.parent
    copies = []
    for folder in ("cnn_core", "pages", "dashboard"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                func = node.func if isinstance(node, ast.Call) else None
                joins = isinstance(func, ast.Attribute) and func.attr == "join"
                if (
                    joins
                    and isinstance(func.value, ast.Constant)
                    and func.value.value in ("x", "×")
                ):
                    copies.append(f"{path.relative_to(root)}:{node.lineno}")
    assert len(copies) == 1 and copies[0].startswith("cnn_core/layers.py:"), copies
