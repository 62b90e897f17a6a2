"""The command line, run as users run it: `python -m cnn_core ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_core.cli import main
from cnn_core.presets import load_preset
from cnn_core.shapes import analyze

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: str, cwd: Path = ROOT, command: tuple[str, ...] = (sys.executable, "-m", "cnn_core")
) -> subprocess.CompletedProcess:
    """Run the command line; with another `command` (the installed script), without PYTHONPATH,
    as a user's shell would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if command[0] == sys.executable:
        env["PYTHONPATH"] = str(ROOT)
    else:
        env.pop("PYTHONPATH", None)
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def bad_spec(tmp_path: Path) -> Path:
    data = load_preset("tutorial_cnn").spec.to_dict()
    del data["layers"][5]  # the Flatten: Dense now sits on a feature map
    data["layers"][0]["filtrs"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_validate_prints_a_table_for_a_valid_spec(tmp_path):
    path = tmp_path / "tutorial.json"
    path.write_text(load_preset("tutorial_cnn").spec.to_json(), encoding="utf-8")
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "Conv2D 32, 3x3, same, relu" in done.stdout
    assert "total: 319,178 parameters" in done.stdout
    assert "Dense 10, softmax (classifier)" in done.stdout
    assert done.stderr == ""


def test_validate_json_matches_the_contract():
    done = cli("validate", "tutorial_cnn", "--json")
    assert done.returncode == 0
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    contract = analyze(load_preset("tutorial_cnn").spec).to_dict()  # checked in test_shapes.py
    assert doc == json.loads(json.dumps(contract))
    assert [layer["index"] for layer in doc["layers"]] == [0, 1, 2, 3, 4, 5, 6, None]


def test_invalid_spec_exits_2_with_messages_and_no_traceback(bad_spec):
    done = cli("validate", str(bad_spec))
    assert done.returncode == 2
    assert 'Layer 1 (Conv2D): unknown key "filtrs"; did you mean "filters"?' in done.stderr
    assert "Layer 6 (Dense): needs a flat input" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    as_json = cli("validate", str(bad_spec), "--json")
    assert as_json.returncode == 2
    doc = json.loads(as_json.stdout)
    assert doc["valid"] is False
    assert {error["layer"] for error in doc["errors"]} == {0, 5}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": 7}', "format version 7"),
        ("[]", "JSON object"),
    ],
)
def test_documents_that_are_not_specs_exit_2_in_one_line(tmp_path, content, words):
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    for args in (("validate", str(path)), ("code", str(path))):
        done = cli(*args)
        assert done.returncode == 2
        assert words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    doc = json.loads(cli("validate", str(path), "--json").stdout)
    assert doc["valid"] is False
    assert doc["errors"][0]["layer"] is None


def test_missing_file_and_unknown_preset(tmp_path):
    done = cli("validate", str(tmp_path / "nope.json"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    done = cli("code", "resnet9000")
    assert done.returncode == 2
    assert "tutorial_cnn" in done.stderr


def test_code_prints_a_script(tmp_path):
    done = cli("code", "tutorial_cnn")
    assert done.returncode == 0
    compile(done.stdout, "model.py", "exec")
    assert "def build_model() -> keras.Model:" in done.stdout


def test_presets_lists_the_tutorial_first():
    done = cli("presets")
    assert done.returncode == 0
    assert done.stdout.splitlines()[0].startswith("tutorial_cnn")
    doc = json.loads(cli("presets", "--json").stdout)
    assert [p["id"] for p in doc["presets"]] == [
        "tutorial_cnn",
        "fast_cpu",
        "best_cpu",
        "resnet_gpu",
        "transfer_mobilenet_v3_small",
        "transfer_efficientnet_b0",
    ]
    assert doc["presets"][0]["total_params"] == 319_178


def test_usage_errors_exit_2():
    assert cli("validate").returncode == 2
    assert cli("frobnicate").returncode == 2


def test_unexpected_failures_exit_1_in_one_line(monkeypatch, capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("cnn_core.cli.analyze", explode)
    assert main(["validate", "tutorial_cnn"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError: disk on fire" in err
    assert "Traceback" not in err


def write_tiny_folders(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    for split, count in (("train", 12), ("test", 4)):
        for name, value in (("dark", 40), ("light", 210)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.full((8, 8, 3), value + i, np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_the_installed_command_works_from_any_folder_and_runs_keep_absolute_sources(tmp_path):
    """`cnn-workbench` (the console script the set-up installs), not run from the repository:
    train with a relative data path in one folder, evaluate from another."""
    command = Path(sys.executable).with_name("cnn-workbench")
    assert command.is_file(), "cnn-workbench is not installed: pip install -e . (see the README)"
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    write_tiny_folders(work / "photos")
    elsewhere.mkdir()
    runs = ("--runs-dir", str(tmp_path / "runs"))

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return cli(*args, *runs, cwd=cwd, command=(str(command),))

    trained = run(
        *("train", "fast_cpu", "--data", "photos", "--epochs", "1", "--evaluate", "--json"),
        cwd=work,
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout.splitlines()[-1])
    assert summary["state"] == "completed"
    dataset = json.loads((Path(summary["run_dir"]) / "dataset.json").read_text())
    assert dataset["source"] == str((work / "photos").resolve())
    evaluated = run("evaluate", summary["name"], "--json", cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout.splitlines()[-1])
    assert report["n"] == summary["test_images"] == 8
    # train --evaluate stored the evaluation that `evaluate` then finds current
    assert report["accuracy"] == summary["test_accuracy"]
    assert (Path(summary["run_dir"]) / "evaluation.json").is_file()


def test_foreground_train_names_its_run_before_the_first_epoch(tmp_path):
    """So that someone who presses Ctrl-C during a long first epoch knows what to resume."""
    data = write_tiny_folders(tmp_path / "photos")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "cnn_core", "train", "fast_cpu", "--data", str(data)]
    done = subprocess.run(
        [*command, "--epochs", "2", "--evaluate", "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: the order in which a terminal shows them
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout
    first_run_line = next(i for i, line in enumerate(lines) if line.startswith("run: "))
    first_epoch_line = next(i for i, line in enumerate(lines) if line.startswith("epoch 1/"))
    assert first_run_line < first_epoch_line, lines
    assert "resume" in lines[first_run_line]
    tested = [line for line in lines if line.startswith("test accuracy ")]
    assert len(tested) == 1 and tested[0].endswith(" on 8 images"), lines


def test_train_refuses_a_single_image_or_a_wrong_path_with_exit_2_and_no_run(tmp_path):
    from PIL import Image

    photo = tmp_path / "cat.png"
    Image.new("RGB", (16, 16)).save(photo)
    for source, words in ((photo, "single image"), (tmp_path / "nowhere", "does not exist")):
        done = cli("train", "fast_cpu", "--data", str(source), "--runs-dir", str(tmp_path / "r"))
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_train_evaluate_with_detach_is_refused_before_a_run_is_made(tmp_path, capsys):
    data = write_tiny_folders(tmp_path / "photos")
    runs = tmp_path / "runs"
    command = ["train", "fast_cpu", "--data", str(data), "--runs-dir", str(runs), "--evaluate"]
    assert main([*command, "--detach"]) == 2
    assert "leave out --detach" in capsys.readouterr().err
    assert main([*command, "--create-only"]) == 2
    assert "leave out --create-only" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())


# Issue 15: any setting from the command line (`--set`), and `--fine-tune N` to lower a preset's.


def test_train_takes_any_setting_with_set_and_fine_tune_0_turns_it_off(tmp_path, capsys):
    from support import tiny_net

    from cnn_core.runs import open_run

    data = write_tiny_folders(tmp_path / "photos")
    spec = tmp_path / "tiny.json"
    spec.write_text(tiny_net(num_classes=2).to_json(), encoding="utf-8")
    config = tmp_path / "config.json"  # fine_tune without a backbone: refused unless turned off
    config.write_text(json.dumps({"fine_tune": 1, "epochs": 3}), encoding="utf-8")
    command = ["train", str(spec), "--config", str(config), "--data", str(data)]
    command += ["--runs-dir", str(tmp_path / "runs"), "--epochs", "2"]
    assert main(command) == 2
    assert "no Backbone layer" in capsys.readouterr().err
    settings = ["optimizer=sgd", "augmentation.zoom=0.1", "augmentation.flip=true"]
    settings += ["class_weight=balanced", "learning_rate=0.02"]
    done = cli(*command, "--fine-tune", "0", *(f"--set={x}" for x in settings), "--json")
    assert done.returncode == 0, done.stderr
    run = open_run(json.loads(done.stdout.splitlines()[-1])["name"], root=tmp_path / "runs")
    trained = run.config()
    assert trained.fine_tune is None and trained.epochs == 2
    assert (trained.optimizer, trained.class_weight, trained.learning_rate) == (
        "sgd",
        "balanced",
        0.02,
    )
    assert trained.augmentation.zoom == 0.1 and trained.augmentation.flip is True
    assert run.status().state == "completed"


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("epoch=2", 'unknown key "epoch"; did you mean "epochs"?'),
        (
            "augmentation.zom=0.1",
            'unknown key "augmentation.zom"; did you mean "augmentation.zoom"?',
        ),
        ("epochs=many", "epochs must be a whole number"),
    ],
)
def test_train_refuses_a_bad_set_in_one_line_before_making_a_run(tmp_path, capsys, setting, says):
    runs = tmp_path / "runs"
    assert main(["train", "tutorial_cnn", "--set", setting, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.iterdir())


def test_too_few_epochs_for_a_presets_fine_tune_names_the_flags_to_change(tmp_path, capsys):
    runs = ["--runs-dir", str(tmp_path / "runs")]
    assert main(["train", "transfer_mobilenet_v3_small", "--epochs", "2", *runs]) == 2
    err = capsys.readouterr().err
    assert "fine_tune (3) must be fewer than epochs (2)" in err
    assert "raise --epochs or lower --fine-tune N (0 = off)" in err
    assert main(["train", "tutorial_cnn", "--epochs", "2", "--set", "epochs=3", *runs]) == 2
    assert "gives epochs twice" in capsys.readouterr().err
