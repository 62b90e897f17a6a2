"""Tests for `cnn_core.deploy` (issue 15, point 3): each format exports a trained tiny run and its
proof passes with the format's own runtime; a wrong export fails its proof; int8 reports its
agreement; the folder holds labels.json and README.md; the run records the export; the CLI's
`export --json`; the "Download as …" buttons on the Runs and Predict pages.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import CLASSES, TINY, imported_frameworks, open_page, rerun, write_colours

from cnn_core import api, cli, deploy
from cnn_core.augment import Augmentation
from cnn_core.config import TrainConfig
from cnn_core.deploy import ExportError, ExportMismatchError, export_run, export_zip
from cnn_core.runs import Run, RunError, runs_root

FLOAT_FORMATS = ("savedmodel", "onnx", "litert")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A tiny run trained with augmentation for a few epochs on three colours (10 test images
    each); tests copy it so each sees its own record of exports."""
    base = tmp_path_factory.mktemp("deploy")
    data = write_colours(base / "colours", train=30, test=10)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CNN_CORE_CACHE", str(base / "cache"))
        # random ops, not exported; the rotation stays a layer in the model where the feed flips
        augmentation = Augmentation(flip=True, translation=0.1, rotation=0.02)
        config = TrainConfig(epochs=3, batch_size=16, learning_rate=0.01, augmentation=augmentation)
        run = api.start_run(TINY, config, data_source=str(data), root=base / "runs", detach=False)
    assert run.status().state == "completed", run.status().error
    return run


@pytest.fixture
def run(trained: Run) -> Run:
    target = runs_root() / trained.name
    shutil.copytree(trained.path, target)
    return Run(target)


@pytest.mark.parametrize("format", FLOAT_FORMATS)
def test_each_format_exports_and_its_proof_passes(run: Run, tmp_path: Path, format: str):
    out = tmp_path / "out" / format
    report = export_run(run, format=format, out=out)
    assert report.passed and report.format == format and report.quantize is None
    assert report.images == 30 and "test split" in report.images_from
    assert report.top1_agreement == 1.0 and 0 <= report.max_abs_diff <= deploy.TOLERANCE
    assert report.accuracy == report.keras_accuracy and report.accuracy is not None
    assert report.latency_ms > 0 and report.keras_latency_ms > 0 and report.size_bytes > 0
    assert (out / deploy.MODEL_FILES[format]).exists() and report.out == str(out)
    assert json.loads((out / "labels.json").read_text()) == list(CLASSES)
    readme = (out / "README.md").read_text()
    assert "uint8, shape (N, 8, 8, 3)" in readme and deploy.MODEL_FILES[format] in readme
    assert json.loads((out / "export.json").read_text()) == report.to_dict()
    assert run.exports()[format] == report.to_dict()  # recorded in the run
    assert deploy.stored_exports(run)[format] == report
    assert [p.name for p in out.parent.iterdir()] == [format]  # no temporary folder left


def test_the_exported_model_predicts_what_the_keras_model_does_in_a_fresh_runtime(
    run: Run, tmp_path: Path
):
    """Independently of the proof: onnxruntime on the run's own test images."""
    import onnxruntime

    from cnn_core.predict import load_run_model, run_model
    from cnn_core.testset import choose_test_set, load_test_images

    export_run(run, format="onnx", out=tmp_path / "onnx")
    x = load_test_images(choose_test_set(run, run.dataset()["source"]))
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = run_model(load_run_model(run), x)
    assert got.shape == (30, 3) and np.array_equal(got.argmax(1), expected.argmax(1))
    assert np.abs(got - expected).max() <= deploy.TOLERANCE
    assert any(layer.name.startswith("augment_") for layer in load_run_model(run).layers)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda p: p[:, ::-1].copy(), "other classes"),
        (lambda p: p + np.array([0.002, 0.0, -0.002], np.float32), "probabilities off by 2e-3"),
    ],
)
def test_a_wrong_export_fails_its_proof_and_is_not_kept(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change, what
):
    real = deploy._onnx

    def wrong(path):
        runtime = real(path)
        return deploy.Runtime(runtime.name, lambda x: change(runtime.predict(x)))

    monkeypatch.setattr(deploy, "_onnx", wrong)
    with pytest.raises(ExportMismatchError, match="does not predict what the Keras model") as e:
        export_run(run, format="onnx", out=tmp_path / "onnx")
    assert not e.value.report.passed, what
    assert not (tmp_path / "onnx").exists() and list(tmp_path.iterdir()) == []
    assert "onnx" not in run.exports()


def test_int8_litert_reports_its_agreement_and_is_quantized(run: Run, tmp_path: Path):
    from ai_edge_litert.interpreter import Interpreter

    report = export_run(run, format="litert", quantize="int8", out=tmp_path / "int8")
    assert report.quantize == "int8" and report.passed and report.key == "litert-int8"
    assert 0.0 <= report.top1_agreement <= 1.0 and report.accuracy is not None
    assert report.images == 30 and "int8" in (tmp_path / "int8" / "README.md").read_text()
    interpreter = Interpreter(model_path=str(tmp_path / "int8" / "model.tflite"))
    kinds = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert "int8" in kinds  # quantized tensors, not a float model under another name
    details = interpreter.get_input_details()[0]
    assert np.dtype(details["dtype"]) == np.uint8 and list(details["shape"][1:]) == [8, 8, 3]
    assert set(run.exports()) == {"litert-int8"}


def test_without_its_data_a_float_export_is_proved_on_synthetic_images_and_int8_refused(
    tmp_path: Path,
):
    from reliability.kit import make_model_run

    run = make_model_run(runs_root(), data_source=str(tmp_path / "gone"))
    report = export_run(run, format="onnx", out=tmp_path / "onnx")
    assert report.passed and report.images == deploy.SYNTHETIC_IMAGES
    assert "synthetic images" in report.images_from and "cannot be loaded" in report.images_from
    assert report.accuracy is None
    with pytest.raises(ExportError, match="calibrates on the run's training images"):
        export_run(run, format="litert", quantize="int8", out=tmp_path / "int8")


def test_a_diverged_model_is_refused_as_such_not_blamed_on_the_export(tmp_path: Path):
    from reliability.kit import make_model_run

    from cnn_core.builder import build_model
    from cnn_core.runs import MODEL

    run = make_model_run(runs_root(), data_source=str(tmp_path / "gone"))
    model = build_model(TINY)
    head = model.get_layer("classifier")
    head.set_weights([np.full_like(w, np.nan) for w in head.get_weights()])
    model.save(run.file(MODEL))
    with pytest.raises(RunError, match="training diverged"):
        export_run(run, format="onnx", out=tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_options_and_output_folders_are_checked(run: Run, tmp_path: Path):
    with pytest.raises(ExportError, match="LiteRT only"):
        export_run(run, format="onnx", quantize="int8", out=tmp_path / "x")
    with pytest.raises(ExportError, match="unknown export format"):
        export_run(run, format="coreml", out=tmp_path / "x")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an export"):
        export_run(run, format="onnx", out=busy)
    assert [p.name for p in busy.iterdir()] == ["thesis.txt"]
    first = export_run(run, format="onnx", out=tmp_path / "again")
    second = export_run(run, format="onnx", out=tmp_path / "again")  # an export is replaced
    assert second.exported_at >= first.exported_at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "busy"]


def test_a_damaged_record_reads_as_no_exports(run: Run):
    run.write_export("onnx", {"format": "onnx"})  # not a whole report
    assert deploy.stored_exports(run) == {} and "onnx" in run.exports()
    run.file("exports.json").write_text("{not json")
    assert run.exports() == {}


def test_the_zip_holds_the_folder(run: Run):
    report, data = export_zip(run, format="savedmodel")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        folder = f"{run.name}-savedmodel"
        assert {f"{folder}/labels.json", f"{folder}/README.md", f"{folder}/export.json"} <= names
        assert f"{folder}/saved_model/saved_model.pb" in names
    assert report.out is None and run.exports()["savedmodel"]["passed"]


def test_cli_export_json(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "cli"
    assert (
        cli.main(["export", str(run.path), "--format", "litert", "--out", str(out), "--json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["passed"] and doc["format"] == "litert" and doc["images"] == 30
    assert doc == run.exports()["litert"] and (out / "model.tflite").is_file()
    assert (
        cli.main(["export", run.name, "--format", "onnx", "--quantize", "int8", "--out", "x"]) == 2
    )
    assert "LiteRT only" in capsys.readouterr().err


def test_cli_export_mismatch_prints_the_figures_and_exits_2(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    real = deploy._saved_model

    def wrong(path):
        runtime = real(path)
        return deploy.Runtime(runtime.name, lambda x: runtime.predict(x)[:, ::-1].copy())

    monkeypatch.setattr(deploy, "_saved_model", wrong)
    args = ["export", run.name, "--format", "savedmodel", "--out", str(tmp_path / "sm"), "--json"]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["passed"] is False
    assert captured.err.startswith("error: run ") and "does not predict" in captured.err


# --- the pages ---------------------------------------------------------------------------------

BUTTONS = ("savedmodel", "onnx", "litert", "litert-int8")


def test_the_runs_page_exports_proves_and_offers_the_zip(run: Run):
    at = open_page("runs")
    at.session_state["runs_table"] = {"selection": {"rows": [0], "columns": []}}
    rerun(at)
    for key in BUTTONS:
        assert at.button(key=f"runs_export_{key}_{run.name}").label.startswith("Download as ")
    at.button(key=f"runs_export_onnx_{run.name}").click()
    rerun(at)
    assert any("ONNX" in s.value and "passed" in s.value for s in at.success), at.success
    assert "onnx" in run.exports()


def test_the_predict_page_has_a_button_per_format(run: Run):
    at = open_page("predict", run=run.name)
    labels = [at.button(key=f"predict_export_{key}_{run.name}").label for key in BUTTONS]
    assert labels == [
        "Download as SavedModel",
        "Download as ONNX",
        "Download as LiteRT",
        "Download as LiteRT int8",
    ]


def test_the_deploy_module_and_the_buttons_load_no_framework_until_pressed():
    """The pages import them: Keras, TensorFlow and the runtimes load only for an export."""
    frameworks = ("keras", "tensorflow", "onnxruntime", "ai_edge_litert", "tf2onnx", "onnx")
    loaded = imported_frameworks("cnn_core.deploy", "dashboard.exporting", frameworks=frameworks)
    assert loaded == []


def test_a_run_with_a_pretrained_backbone_exports_to_every_format_and_passes_its_proof(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Issue 15: the two halves meet: a MobileNetV3-Small body (random weights: no network) with
    # its own preprocessing inside the model goes out through each runtime and predicts the same.
    from cnn_core.spec import LayerSpec, ModelSpec

    monkeypatch.setenv("CNN_CORE_CACHE", str(tmp_path / "cache"))
    data = write_colours(tmp_path / "colours", train=8, test=4)  # 8x8, resized to 32x32
    spec = ModelSpec(
        name="Backbone",
        input_shape=(32, 32, 3),
        num_classes=len(CLASSES),
        layers=(
            LayerSpec("Backbone", {"model": "mobilenet_v3_small", "weights": None}),
            LayerSpec("GlobalAveragePooling2D"),
        ),
    )
    config = TrainConfig(epochs=1, batch_size=8)
    run = api.start_run(spec, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    assert run.status().state == "completed", run.status().error
    for format in FLOAT_FORMATS:
        report = export_run(run, format=format, out=tmp_path / format)
        assert report.passed and report.top1_agreement == 1.0, report
        assert report.max_abs_diff <= 1e-3
