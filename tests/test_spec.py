"""The spec document: parsing, round trips, and refusal of anything that is not format 1."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cnn_core.errors import SpecError
from cnn_core.presets import load_preset, mark_modified
from cnn_core.spec import LayerSpec, ModelSpec, load_spec, parse_spec

TUTORIAL = load_preset("tutorial_cnn").spec


def doc(**changes: object) -> dict:
    data = TUTORIAL.to_dict()
    data.update(changes)
    return data


def test_round_trip_through_json_keeps_everything():
    text = TUTORIAL.to_json()
    again = parse_spec(text)
    assert again == TUTORIAL
    assert json.loads(text) == TUTORIAL.to_dict()
    assert text.count("\n") > len(TUTORIAL.layers)  # one layer per line, readable diffs


def test_layers_keep_only_the_keys_written():
    spec = parse_spec(json.dumps(doc(layers=[{"type": "Conv2D", "filters": 8, "kernel_size": 3}])))
    assert spec.layers == (LayerSpec("Conv2D", {"filters": 8, "kernel_size": 3}),)


def test_unicode_name_survives_and_whitespace_is_collapsed():
    spec = parse_spec(json.dumps(doc(name="Réseau  für\nKatzen 🐱")))
    assert spec.name == "Réseau für Katzen 🐱"
    assert parse_spec(spec.to_json()).name == spec.name


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "not valid JSON"),
        ("{'version': 1}", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('"a string"', "JSON object"),
        (
            '{"version": 1, "input_shape": [32, 32, 3], "num_classes": NaN, "layers": []}',
            "NaN",
        ),
        ('{"version": 1, "num_classes": Infinity}', "Infinity"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (" " * 1_000_001, "too large"),
        (b"\xff\xfe\x00binary", "not text"),
    ],
)
def test_documents_that_are_not_json_specs_are_refused(text, words):
    with pytest.raises(SpecError, match=words):
        parse_spec(text)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"version": 2}, "format version 2"),
        ({"version": None}, 'no "version"'),
        ({"verison": 1}, 'unknown key "verison"'),
        ({"input_shape": [32, 32]}, r"\[height, width, channels\]"),
        ({"input_shape": "32x32x3"}, r"\[height, width, channels\]"),
        ({"input_shape": [32, 32, 3.5]}, r"\[height, width, channels\]"),
        ({"input_shape": [0, 32, 3]}, "1 to 1024 pixels"),
        ({"input_shape": [32, 32, 4]}, "3 channels"),
        ({"num_classes": 1}, "at least two classes"),
        ({"num_classes": "10"}, "whole number"),
        ({"num_classes": True}, "whole number"),
        ({"num_classes": 10**400}, "whole number"),
        ({"layers": {"type": "Dense"}}, "must be a list"),
        ({"layers": [["Dense", 64]]}, "layer 1 must be an object"),
        ({"layers": [{"units": 64}]}, 'layer 1 has no "type"'),
        ({"layers": [{"type": "Flatten"}] * 201}, "at most 200"),
        ({"name": "x" * 101}, "at most 100"),
        ({"name": ""}, "non-empty"),
        ({"name": 5}, "non-empty string"),
    ],
)
def test_wrong_fields_are_refused_with_the_field_named(changes, words):
    data = doc(**changes)
    if changes.get("version", 1) is None:
        del data["version"]
    with pytest.raises(SpecError, match=words):
        parse_spec(json.dumps(data), source="net.json")


def test_errors_name_the_source():
    with pytest.raises(SpecError, match=r"^net\.json"):
        parse_spec(json.dumps(doc(num_classes=1)), source="net.json")


def test_load_spec_reads_files_and_names_them_in_errors(tmp_path):
    path = tmp_path / "tutorial.json"
    path.write_text(TUTORIAL.to_json(), encoding="utf-8")
    assert load_spec(path) == TUTORIAL
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 10_000_000)
    with pytest.raises(SpecError, match="too large"):
        load_spec(big)


def test_edits_return_new_specs():
    spec = ModelSpec(layers=(LayerSpec("Flatten"), LayerSpec("Dense", {"units": 4})))
    assert spec.move(1, -1).layers == (LayerSpec("Dense", {"units": 4}), LayerSpec("Flatten"))
    assert spec.move(0, -1) == spec  # nothing above the first layer
    assert spec.delete(0).layers == (LayerSpec("Dense", {"units": 4}),)
    assert spec.insert(1, LayerSpec("Dropout", {"rate": 0.5})).layers[1].type == "Dropout"
    assert len(spec.layers) == 2  # frozen: edits never change the original
    assert spec.reorder([1, 0]) == spec.move(0, 1)
    assert spec.reorder([0, 1]) == spec


@pytest.mark.parametrize("order", [[0], [0, 0], [0, 2], [1, 0, 2]])
def test_reorder_refuses_what_is_not_an_order_of_the_layers(order):
    spec = ModelSpec(layers=(LayerSpec("Flatten"), LayerSpec("Dense", {"units": 4})))
    with pytest.raises(ValueError, match="not an order"):
        spec.reorder(order)


def test_a_changed_preset_is_marked_modified_once_and_loading_it_again_clears_that():
    moved = mark_modified(TUTORIAL, TUTORIAL.move(0, 1))
    assert moved.name == "Tutorial CNN (modified)"
    assert moved.layers == TUTORIAL.move(0, 1).layers
    again = mark_modified(moved, moved.delete(0))
    assert again.name == "Tutorial CNN (modified)"  # once, not "(modified) (modified)"
    resized = replace(TUTORIAL, input_shape=(8, 8, 3))
    assert mark_modified(TUTORIAL, resized).name == "Tutorial CNN (modified)"
    assert mark_modified(moved, TUTORIAL) == TUTORIAL  # loading the preset: its plain name
    stale = TUTORIAL.delete(0)  # a draft that kept the preset's name (saved by an older version)
    assert mark_modified(stale, TUTORIAL) == TUTORIAL


def test_names_the_edit_chose_are_kept():
    fast = load_preset("fast_cpu").spec
    assert mark_modified(TUTORIAL, fast) == fast  # another preset
    own = replace(TUTORIAL, name="My net")
    assert mark_modified(own, own.delete(0)).name == "My net"  # not a preset's name
    assert mark_modified(TUTORIAL, replace(TUTORIAL, name="Mine")).name == "Mine"  # a rename
    assert mark_modified(TUTORIAL, TUTORIAL) == TUTORIAL  # nothing changed
