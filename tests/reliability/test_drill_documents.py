"""Drill 2: hostile architecture specs and training configurations.

Not JSON, wrong types, NaN and Infinity, 1e400 and 10**1000, JSON nested 100,000 levels deep, a
10 MB file, unknown keys, unicode and very long names, null bytes, a device and a named pipe given
as the file: through `parse_spec`/`load_spec`, `parse_config`/`load_config`, the command line
(`validate`, `train --config`: exit 2 with one line on stderr) and the Build and Train pages'
uploaders (a message, never an exception).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import TINY, open_page, rerun

from cnn_core.config import load_config, parse_config
from cnn_core.errors import ConfigError, SpecError
from cnn_core.shapes import analyze
from cnn_core.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "version": 1,
    "name": "x",
    "input_shape": [8, 8, 3],
    "num_classes": 3,
    "layers": [{"type": "Flatten"}],
}


def spec_text(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}, ensure_ascii=False).encode()


def spec_with(key: str, raw: str) -> bytes:
    """The good spec with `key` set to `raw`, JSON text that json.dumps would not write."""
    return spec_text(**{key: "@"}).replace(b'"@"', raw.encode())


def layer_with(raw: str) -> bytes:
    return spec_text(layers=[{"type": "Flatten"}, "@"]).replace(b'"@"', raw.encode())


DEEP = 100_000
# Documents that are not a spec at all: refused by parse_spec with a SpecError.
BAD_SPECS: dict[str, bytes] = {
    "not-json.json": b"hello, world",
    "empty.json": b"",
    "binary.json": bytes(range(256)) * 4,
    "utf16.json": json.dumps(GOOD).encode("utf-16"),
    "list.json": b"[1, 2, 3]",
    "string.json": b'"a spec"',
    "null.json": b"null",
    "version-string.json": spec_text(version="1"),
    "version-true.json": spec_text(version=True),
    "shape-string.json": spec_text(input_shape="32x32x3"),
    "shape-floats.json": spec_text(input_shape=[8.5, 8, 3]),
    "classes-string.json": spec_text(num_classes="10"),
    "layers-object.json": spec_text(layers={"type": "Flatten"}),
    "layer-number.json": spec_text(layers=[3]),
    "name-number.json": spec_text(name=42),
    "nan.json": spec_with("num_classes", "NaN"),
    "infinity.json": spec_with("num_classes", "Infinity"),
    "minus-infinity.json": spec_with("input_shape", "[-Infinity, 8, 3]"),
    "1e400.json": spec_with("num_classes", "1e400"),
    "10-to-1000.json": spec_with("num_classes", "1" + "0" * 1000),
    "10-to-5000.json": spec_with("num_classes", "1" + "0" * 5000),
    "deep-lists.json": b"[" * DEEP + b"]" * DEEP,
    "deep-objects.json": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep-layer.json": layer_with("[" * DEEP + "]" * DEEP),
    "ten-mb.json": spec_text(description="x" * 10 * 2**20),
    "unknown-key.json": spec_text(__proto__={"admin": True}),
    "long-name.json": spec_text(name="n" * 100_000),
    "null-byte-in-name.json": spec_text(name="net\u0000work"),
    "control-char-name.json": spec_text(name="bell\u0007net"),
    "raw-null-bytes.json": spec_text().replace(b", ", b",\x00 ", 1),
}
# Specs that parse but are not a buildable network: every problem is named by `analyze`.
BAD_LAYERS: dict[str, bytes] = {
    "units-1e400.json": layer_with('{"type": "Dense", "units": 1e400}'),
    "units-10-to-1000.json": layer_with('{"type": "Dense", "units": 1' + "0" * 1000 + "}"),
    "units-list.json": layer_with('{"type": "Dense", "units": [3, 3]}'),
    "units-object.json": layer_with('{"type": "Dense", "units": {"$gt": 1}}'),
    "dunder-type.json": layer_with('{"type": "__class__"}'),
    "lambda-type.json": layer_with('{"type": "Lambda", "function": "os.system"}'),
    "evil-activation.json": layer_with('{"type": "Activation", "activation": "os.system"}'),
    "typo-key.json": layer_with('{"type": "Dense", "units": 64, "unitz": 64}'),
    "deep-param.json": layer_with('{"type": "Dense", "units": ' + "[" * 500 + "]" * 500 + "}"),
}
# Accepted as they are: names are any printable text.
ODD_BUT_FINE = {
    "unicode-name.json": spec_text(name="Réseau 🧠 神经网络 \u202eevil"),
    "bom.json": b"\xef\xbb\xbf" + spec_text(),
}

BAD_CONFIGS: dict[str, bytes] = {
    "not-json.json": b"epochs = 3",
    "empty.json": b"",
    "binary.json": bytes(range(256)),
    "list.json": b"[]",
    "epochs-string.json": b'{"epochs": "10"}',
    "epochs-true.json": b'{"epochs": true}',
    "epochs-float.json": b'{"epochs": 2.5}',
    "lr-nan.json": b'{"learning_rate": NaN}',
    "lr-infinity.json": b'{"learning_rate": Infinity}',
    "lr-1e400.json": b'{"learning_rate": 1e400}',
    "lr-negative.json": b'{"learning_rate": -0.1}',
    "epochs-10-to-1000.json": b'{"epochs": 1' + b"0" * 1000 + b"}",
    "seed-10-to-5000.json": b'{"seed": 1' + b"0" * 5000 + b"}",
    "deep.json": b'{"epochs": ' + b"[" * 40_000 + b"]" * 40_000 + b"}",
    "ten-mb.json": b'{"optimizer": "' + b"a" * 10 * 2**20 + b'"}',
    "unknown-key.json": b'{"epohcs": 3}',
    "unicode-key.json": '{"époques": 3}'.encode(),
    "null-byte-key.json": b'{"epochs\\u0000": 3}',
    "raw-null-bytes.json": b'{"epochs":\x00 3}',
    "long-key.json": b'{"' + b"k" * 50_000 + b'": 1}',
    "augmentation-list.json": b'{"augmentation": [1]}',
    "augmentation-nan.json": b'{"augmentation": {"zoom": NaN}}',
    "optimizer-object.json": b'{"optimizer": {"class_name": "Adam"}}',
    "mixed-precision.json": b'{"mixed_precision": "yes"}',
}


def one_line(message: str) -> bool:
    return "\n" not in message and "Traceback" not in message and 0 < len(message) < 1000


# --- the core ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD_SPECS))
def test_hostile_spec_is_refused_with_one_line(name: str, tmp_path: Path):
    with pytest.raises(SpecError) as caught:
        parse_spec(BAD_SPECS[name], source=name)
    assert one_line(str(caught.value)) and name in str(caught.value)
    path = tmp_path / name
    path.write_bytes(BAD_SPECS[name])
    with pytest.raises(SpecError, match="json"):
        load_spec(path)


@pytest.mark.parametrize("name", list(BAD_LAYERS))
def test_unbuildable_spec_is_explained_layer_by_layer(name: str):
    analysis = analyze(parse_spec(BAD_LAYERS[name], source=name))
    assert not analysis.valid
    assert all(one_line(p.message) and p.message.startswith("Layer 2") for p in analysis.problems)


@pytest.mark.parametrize("name", list(ODD_BUT_FINE))
def test_odd_but_valid_specs_load(name: str):
    assert analyze(parse_spec(ODD_BUT_FINE[name])).valid


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_hostile_config_is_refused_with_one_line(name: str, tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        parse_config(BAD_CONFIGS[name], source=name)
    assert one_line(str(caught.value)) and name in str(caught.value)
    assert "\x00" not in str(caught.value)
    path = tmp_path / name
    path.write_bytes(BAD_CONFIGS[name])
    with pytest.raises(ConfigError, match="json"):
        load_config(path)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "folder"])
def test_a_device_pipe_or_folder_is_not_read_as_a_document(target: str, tmp_path: Path):
    """/dev/zero never ends and a named pipe never answers: neither may be read to the end."""
    if target == "fifo":
        path = tmp_path / "pipe.json"
        os.mkfifo(path)
    elif target == "folder":
        path = tmp_path / "folder.json"
        path.mkdir()
    else:
        path = Path(target)
    with pytest.raises(SpecError, match=r"regular file|folder"):
        load_spec(path)
    with pytest.raises(ConfigError, match=r"regular file|folder"):
        load_config(path)


# --- the command line ----------------------------------------------------------------------------


def run_cli_concurrently(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "cnn_core", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=60)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


def test_cli_refuses_every_hostile_document_with_exit_2_and_one_line(tmp_path: Path):
    specs = tmp_path / "specs"
    configs = tmp_path / "configs"
    specs.mkdir()
    configs.mkdir()
    good_spec = tmp_path / "tiny.json"
    good_spec.write_text(TINY.to_json())
    commands = {}
    for name, data in {**BAD_SPECS, **BAD_LAYERS}.items():
        (specs / name).write_bytes(data)
        commands[f"validate {name}"] = ["validate", str(specs / name)]
    for name, data in BAD_CONFIGS.items():
        (configs / name).write_bytes(data)
        commands[f"train --config {name}"] = [
            "train",
            str(good_spec),
            "--config",
            str(configs / name),
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    os.mkfifo(tmp_path / "pipe.json")
    commands["validate /dev/zero"] = ["validate", "/dev/zero"]
    commands["validate a named pipe"] = ["validate", str(tmp_path / "pipe.json")]
    for name, done in run_cli_concurrently(commands).items():
        lines = done.stderr.splitlines()
        assert done.returncode == 2, (name, done.returncode, done.stderr[-500:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, done.stderr[-500:])
    assert not (tmp_path / "runs").exists()  # nothing was started


# --- the pages -----------------------------------------------------------------------------------


def test_build_page_refuses_hostile_specs_with_a_message():
    at = open_page("build")
    draft = at.session_state["draft"]
    for name, data in BAD_SPECS.items():
        at.file_uploader(key="upload_spec").set_value((name, data, "application/json"))
        rerun(at)
        errors = [e.value for e in at.error]
        assert any(name in error and one_line(error) for error in errors), (name, errors)
        assert at.session_state["draft"] == draft, name  # the draft is untouched
    for name, data in BAD_LAYERS.items():
        at.file_uploader(key="upload_spec").set_value((name, data, "application/json"))
        rerun(at)
        assert [e.value for e in at.error if e.value.startswith("Layer 2")], name
        assert "problem(s) to fix" in at.warning[0].value, name
    for name, data in ODD_BUT_FINE.items():
        at.file_uploader(key="upload_spec").set_value((name, data, "application/json"))
        rerun(at)
        assert at.success, name


def test_train_page_refuses_hostile_configs_with_a_message():
    at = open_page("train")
    for name, data in BAD_CONFIGS.items():
        at.file_uploader(key="config_upload").set_value((name, data, "application/json"))
        rerun(at)
        errors = [e.value for e in at.error]
        assert any(name in error and one_line(error) for error in errors), (name, errors)


@pytest.mark.parametrize(
    "config",
    [
        {"learning_rate": 1e-7},
        {"early_stopping_patience": 5000},
        {"label_smoothing": 0.49, "momentum": 0.999, "weight_decay": 0.5},
        {"batch_size": 65536, "epochs": 10000, "seed": 2**31 - 1, "limit": 100_000_000},
    ],
)
def test_train_page_takes_every_valid_config_at_its_edges(config: dict):
    """Every value a configuration file may hold must fit the page's widgets."""
    parse_config(json.dumps(config))
    at = open_page("train")
    at.file_uploader(key="config_upload").set_value(("edge.json", json.dumps(config).encode(), "x"))
    rerun(at)
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["config_base"] == parse_config(json.dumps(config))
