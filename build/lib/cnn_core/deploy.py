"""Deployable models: a run's model exported as a SavedModel, ONNX or LiteRT file, with proof.

`export_run` writes a folder that holds the model (`saved_model/`, `model.onnx` or
`model.tflite`), `labels.json` (the class names in output order), a short README.md (input size,
value range, how to call it from Python) and `export.json` (the report). The exported model takes
raw uint8 pixels (N, H, W, C), as the run's `.keras` model does, and outputs class probabilities.

Keras 3's own `model.export(format=...)` does the conversion ("tf_saved_model", "onnx" through
tf2onnx, "litert" through TensorFlow's TFLite converter). What is exported is the run's model
as it predicts: the same weights in a twin built from the run's spec without the augmentation
layers (they do nothing outside training, but their random ops do not convert to ONNX), in
float32 as model.keras is saved.

The proof, every time: the exported file is loaded with its own runtime (`tf.saved_model.load`,
onnxruntime, the LiteRT interpreter) and run on test images (the run's own test split, or, when
its data cannot be loaded, a few synthetic images, and the report says which); its outputs are
compared with the Keras model's. A float export must give the same top-1 class and probabilities
within `TOLERANCE`, else `ExportMismatchError`; an int8 export reports its agreement and
accuracy. The report is stored in the run (`Run.write_export`).

This module imports no Keras, TensorFlow or runtime at import time: the pages import it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_core.errors import DataError, UserError
from cnn_core.files import atomic_folder
from cnn_core.runs import Run, RunError, now_iso

if TYPE_CHECKING:
    import keras

FORMATS = ("savedmodel", "onnx", "litert")
QUANTIZATIONS = ("int8",)  # LiteRT only
FORMAT_LABELS = {"savedmodel": "SavedModel", "onnx": "ONNX", "litert": "LiteRT"}
MODEL_FILES = {"savedmodel": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
RUNTIMES = {"savedmodel": "tensorflow", "onnx": "onnxruntime", "litert": "ai-edge-litert"}
LABELS = "labels.json"
REPORT = "export.json"
README = "README.md"
TOLERANCE = 1e-3  # the largest difference in any probability a float export may show
TIE = 1e-6  # a top-1 "disagreement" between classes scored within this is a tie, not a mismatch
PROOF_IMAGES = 2000  # test images compared at most (evenly spread over the test split)
SYNTHETIC_IMAGES = 16  # compared when the run's data cannot be loaded
REPRESENTATIVE_IMAGES = 200  # training images that calibrate int8 quantization
LATENCY_REPEATS = 20  # single-image calls timed; the median is reported
CHUNK = 64  # images per runtime call


class ExportError(UserError):
    """An export that cannot be made: a format or option this tool does not offer, an output
    folder in the way, a converter or runtime that failed or is not installed."""


class ExportMismatchError(ExportError):
    """The exported model does not predict what the Keras model predicts: a failed proof."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExportReport:
    """What one export made and how its proof went; `to_dict` is what export.json and the run's
    record hold."""

    run: str
    format: str  # savedmodel, onnx or litert
    quantize: str | None  # "int8", or None for float32
    model_file: str  # inside the output folder
    size_bytes: int
    export_seconds: float
    runtime: str  # the runtime that ran the proof, with its version
    latency_ms: float  # one image, this CPU, median of LATENCY_REPEATS calls
    keras_latency_ms: float  # the Keras model's, timed the same way
    images: int  # images compared
    images_from: str  # which images, in words
    max_abs_diff: float  # largest difference in any probability, export vs Keras
    top1_agreement: float  # share of images where both pick the same class
    accuracy: float | None  # the export's, where the images' labels are known
    keras_accuracy: float | None
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    passed: bool  # float: the proof holds; int8: always (its agreement is the figure)
    exported_at: str = ""
    out: str | None = None  # the folder written; None for a download
    not_saved: str | None = None  # why the record could not be stored in the run

    @property
    def key(self) -> str:
        """The run's record holds one export per key: "onnx", "litert-int8"..."""
        return export_key(self.format, self.quantize)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ExportReport | None:
        """The report decoded JSON holds, or None if it is not one (a hand-edited record)."""
        if not isinstance(data, dict):
            return None
        try:
            values = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
            values["input_shape"] = tuple(int(v) for v in values["input_shape"])
            values["class_names"] = tuple(str(v) for v in values["class_names"])
            return cls(**values)
        except (KeyError, TypeError, ValueError):
            return None

    def summary(self) -> str:
        """The proof in one line, for the terminal and the pages."""
        kind = FORMAT_LABELS[self.format] + (" int8" if self.quantize else "")
        line = (
            f"{kind}: {_bytes(self.size_bytes)}, {self.latency_ms:.3g} ms per image with "
            f"{self.runtime} (Keras {self.keras_latency_ms:.3g} ms); on {self.images} "
            f"{self.images_from}: top-1 agreement {self.top1_agreement:.1%}, largest probability "
            f"difference {self.max_abs_diff:.1e}"
        )
        if self.accuracy is not None and self.keras_accuracy is not None:
            line += f", accuracy {self.accuracy:.1%} (Keras {self.keras_accuracy:.1%})"
        if self.quantize is None:
            line += f": {'passed' if self.passed else 'FAILED'} (tolerance {TOLERANCE:g})"
        return line


def _bytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def export_key(format: str, quantize: str | None) -> str:
    return format if quantize is None else f"{format}-{quantize}"


def check_options(format: str, quantize: str | None) -> None:
    """Refuse a format or quantization this tool does not offer, before any work."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantize!r}; the one offered is int8.")
    if quantize is not None and format != "litert":
        raise ExportError(
            f"int8 quantization is offered for LiteRT only, not {FORMAT_LABELS[format]}; "
            "use --format litert --quantize int8."
        )


# --------------------------------------------------------------------------------- the entries


def export_run(
    run: Run, *, format: str, out: str | os.PathLike[str], quantize: str | None = None
) -> ExportReport:
    """Export the run's model to the folder `out`, prove it and record it in the run.

    `out` is written whole or not at all (built beside it, then renamed); an existing `out` is
    replaced only if it is empty or an earlier export. Raises `ExportMismatchError` when the
    exported model does not predict what the Keras model does, another `UserError` when the
    run has no model or the export cannot be made.
    """
    check_options(format, quantize)
    out = Path(out).absolute()
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(out) as folder:  # an earlier export there is replaced whole
        report = build_export(run, format=format, folder=folder, quantize=quantize)
        report = replace(report, out=str(out))
        _write_report(folder, report)
        _check_out(out)  # again: something may have appeared there while exporting
    return record(run, report)


def export_zip(run: Run, *, format: str, quantize: str | None = None) -> tuple[ExportReport, bytes]:
    """Export and prove as `export_run`, and return the folder as a zip (for a download); the
    run records the export."""
    check_options(format, quantize)
    name = f"{run.name}-{export_key(format, quantize)}"
    with tempfile.TemporaryDirectory(prefix="cnn-export-") as scratch:
        folder = Path(scratch) / name
        folder.mkdir()
        report = build_export(run, format=format, folder=folder, quantize=quantize)
        _write_report(folder, report)
        data = zip_folder(folder, name)
    return record(run, report), data


def record(run: Run, report: ExportReport) -> ExportReport:
    """Store the report in the run; a read-only run folder keeps the export and says so."""
    try:
        run.write_export(report.key, report.to_dict())
    except OSError as exc:
        return replace(
            report,
            not_saved=f"the export's record could not be saved in {run.path} "
            f"({exc.strerror or exc}); the export itself is complete.",
        )
    return report


def stored_exports(run: Run) -> dict[str, ExportReport]:
    """The exports recorded in the run, by key ("onnx", "litert-int8"...)."""
    found = {}
    for key, data in run.exports().items():
        report = ExportReport.from_dict(data)
        if report is not None:
            found[key] = report
    return found


def zip_folder(folder: Path, name: str) -> bytes:
    """`folder`'s files in a zip, under the folder `name`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.write(path, f"{name}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


# ------------------------------------------------------------------------------- the export


def build_export(
    run: Run, *, format: str, folder: Path, quantize: str | None = None
) -> ExportReport:
    """Write the exported model, labels.json and README.md into `folder` and prove the model.
    Raises `ExportMismatchError` for a failed proof (`folder` holds what failed)."""
    check_options(format, quantize)
    from cnn_core.predict import class_names, load_run_model

    trained = load_run_model(run)
    names = class_names(run)
    model = inference_twin(run, trained)
    images = proof_images(run, names)
    representative = None
    if quantize is not None:
        representative = _representative(run, images)
    started = time.perf_counter()
    model_path = folder / MODEL_FILES[format]
    convert(model, format, model_path, representative)
    seconds = time.perf_counter() - started
    runtime = load_runtime(format, model_path)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    (folder / LABELS).write_text(json.dumps(list(names), indent=1) + "\n", encoding="utf-8")
    (folder / README).write_text(readme_text(run, format, quantize, shape, names), "utf-8")
    names = tuple(names)
    report = prove(run, model, runtime, images, format=format, quantize=quantize, names=names)
    report = replace(
        report,
        model_file=MODEL_FILES[format],
        size_bytes=_size(model_path),
        export_seconds=round(seconds, 3),
    )
    if not report.passed:
        _write_report(folder, report)
        raise ExportMismatchError(
            f"run {run.name}: the {FORMAT_LABELS[format]} export does not predict what the Keras "
            f"model predicts (top-1 agreement {report.top1_agreement:.1%}, largest probability "
            f"difference {report.max_abs_diff:.2e}, tolerance {TOLERANCE:g}, on {report.images} "
            f"{report.images_from}); it was not kept: report this with the run's model.",
            report,
        )
    return report


def inference_twin(run: Run, trained: keras.Model) -> keras.Model:
    """The run's model as it predicts: built from its spec without augmentation, holding the
    trained model's weights (layer by layer, by name)."""
    from cnn_core.builder import build_model

    twin = build_model(run.spec())
    for layer in twin.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
        except (ValueError, KeyError) as exc:
            raise RunError(
                f"run {run.name}: model.keras does not match spec.json at layer {layer.name} "
                f"({str(exc).splitlines()[0][:120]}); the run's files do not belong together: "
                "train the run again."
            ) from None
    height, width, channels = run.spec().input_shape
    twin(np.zeros((1, height, width, channels), np.uint8), training=False)  # ONNX's exporter
    return twin  # asks for a model that has been called


def convert(model: keras.Model, format: str, path: Path, representative: np.ndarray | None) -> None:
    """Keras' own `model.export`; raises `ExportError` with the converter's first line."""
    kwargs: dict[str, Any] = {}
    if representative is not None:
        import tensorflow as tf

        def dataset() -> Iterator[list[np.ndarray]]:
            for row in representative:
                yield [row[None]]

        kwargs = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": dataset}
    keras_format = {"savedmodel": "tf_saved_model"}.get(format, format)
    try:
        with _quiet():
            model.export(os.fspath(path), format=keras_format, verbose=False, **kwargs)
    except ImportError as exc:
        raise ExportError(
            f"the {FORMAT_LABELS[format]} export needs a package that is not installed "
            f"({_first_line(exc)}); install the project's requirements (pip install -e .)."
        ) from None
    except Exception as exc:  # a converter can fail in any of its layers' code
        raise ExportError(
            f"the {FORMAT_LABELS[format]} converter failed ({type(exc).__name__}: "
            f"{_first_line(exc)}); this model cannot be exported to {FORMAT_LABELS[format]}."
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """tf2onnx logs each step and numpy warns of its use of np.object: not the user's concern."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# -------------------------------------------------------------------------------- the runtimes


@dataclass(frozen=True)
class Runtime:
    """An exported model loaded in its own runtime: `predict` maps uint8 images to probabilities."""

    name: str  # with its version
    predict: Callable[[np.ndarray], np.ndarray]


def load_runtime(format: str, path: Path) -> Runtime:
    """The exported model at `path`, loaded by its own runtime; `ExportError` if it cannot be."""
    loaders = {"savedmodel": _saved_model, "onnx": _onnx, "litert": _litert}
    try:
        return loaders[format](path)
    except ImportError as exc:
        raise ExportError(
            f"the {FORMAT_LABELS[format]} runtime is not installed ({_first_line(exc)}); "
            "install the project's requirements (pip install -e .)."
        ) from None
    except Exception as exc:  # the runtime refused what the converter wrote
        raise ExportError(
            f"the exported {FORMAT_LABELS[format]} model cannot be loaded by "
            f"{RUNTIMES[format]} ({type(exc).__name__}: {_first_line(exc)}); this model cannot "
            f"be exported to {FORMAT_LABELS[format]}."
        ) from None


def _saved_model(path: Path) -> Runtime:
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(path))

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(loaded.serve(tf.constant(x)), dtype=np.float32)

    return Runtime(f"tf.saved_model (TensorFlow {tf.__version__})", predict)


def _onnx(path: Path) -> Runtime:
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)

    return Runtime(f"onnxruntime {onnxruntime.__version__}", predict)


def _litert(path: Path) -> Runtime:
    from importlib.metadata import version

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    shape: list[tuple[int, ...]] = [()]

    def predict(x: np.ndarray) -> np.ndarray:
        if shape[0] != x.shape:  # resizing reallocates: only when the batch changes
            interpreter.resize_tensor_input(source, x.shape)
            interpreter.allocate_tensors()
            shape[0] = x.shape
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(target), dtype=np.float32)

    return Runtime(f"LiteRT {version('ai-edge-litert')}", predict)


# ---------------------------------------------------------------------------------- the proof


@dataclass(frozen=True, eq=False)
class ProofImages:
    """The images a proof runs on, their labels if known, and what they are in words."""

    x: np.ndarray  # uint8 (N, H, W, C)
    y: np.ndarray | None  # the class of each, in the model's output order
    source: str  # "test images of the run's test split of <source>"
    train: np.ndarray | None  # the run's training images (int8 calibration), if loaded


def proof_images(run: Run, names: tuple[str, ...]) -> ProofImages:
    """The run's stored test split (at most PROOF_IMAGES, evenly spread), or where its data
    cannot be loaded, SYNTHETIC_IMAGES made here, and why."""
    from cnn_core.testset import choose_test_set, load_test_set

    source = run.dataset().get("source")
    try:
        if not isinstance(source, str) or not source.strip():
            raise DataError("dataset.json records no data source")
        data = load_test_set(choose_test_set(run, source))
        if len(data.x_test) == 0:
            raise DataError(f"{source} has no test images")
    except DataError as exc:
        return ProofImages(
            _synthetic(run.spec().input_shape),
            None,
            f"synthetic images (noise and gradients; the run's data cannot be loaded: "
            f"{str(exc).rstrip('.')})",
            None,
        )
    rows = _spread(len(data.x_test), PROOF_IMAGES)
    known = not getattr(names, "placeholder", False) and tuple(data.class_names) == names
    return ProofImages(
        np.ascontiguousarray(data.x_test[rows]),
        np.asarray(data.y_test)[rows] if known else None,
        f"test images of the run's test split of {source}",
        data.x_train,
    )


def _spread(total: int, most: int) -> np.ndarray:
    return np.unique(np.linspace(0, total - 1, min(total, most)).round().astype(np.int64))


def _synthetic(shape: tuple[int, ...]) -> np.ndarray:
    """Uniform noise, and smooth gradients over the whole range: outputs that differ widely."""
    height, width, channels = (int(d) for d in shape)
    rng = np.random.default_rng(0)
    half = SYNTHETIC_IMAGES // 2
    noise = rng.integers(0, 256, (half, height, width, channels), dtype=np.uint8)
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    ramps = []
    for i in range(SYNTHETIC_IMAGES - half):
        angle = np.pi * i / max(1, SYNTHETIC_IMAGES - half)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2
        tint = rng.uniform(0.3, 1.0, channels)
        ramps.append((ramp[..., None] * tint * 255).astype(np.uint8))
    return np.concatenate([noise, np.stack(ramps)])


def _representative(run: Run, images: ProofImages) -> np.ndarray:
    """The training images that calibrate int8 quantization (evenly spread over them)."""
    if images.train is None or len(images.train) == 0:
        raise ExportError(
            f"run {run.name}: int8 quantization calibrates on the run's training images, and "
            f"they cannot be loaded ({images.source}); make the run's data source available, "
            "or export in float32."
        )
    rows = _spread(len(images.train), REPRESENTATIVE_IMAGES)
    return np.ascontiguousarray(images.train[rows])


def prove(
    run: Run,
    model: keras.Model,
    runtime: Runtime,
    images: ProofImages,
    *,
    format: str,
    quantize: str | None,
    names: tuple[str, ...],
) -> ExportReport:
    """Run both models on the proof images and compare; the report says whether it passed."""
    from cnn_core.predict import run_model

    expected = run_model(model, images.x)
    if not np.all(np.isfinite(expected)):
        raise RunError(
            f"run {run.name}: the model's outputs are not numbers; its training diverged: train "
            "it again with a lower learning rate before exporting it."
        )
    got = np.concatenate(
        [runtime.predict(images.x[i : i + CHUNK]) for i in range(0, len(images.x), CHUNK)]
    )
    if got.shape != expected.shape:
        raise ExportError(
            f"the exported {FORMAT_LABELS[format]} model gives outputs of shape {got.shape}, not "
            f"{expected.shape}; this model cannot be exported to {FORMAT_LABELS[format]}."
        )
    finite = bool(np.all(np.isfinite(got)))
    diff = float(np.max(np.abs(got - expected))) if finite else float("inf")
    agree = _agreement(expected, got)
    passed = quantize is not None or (finite and diff <= TOLERANCE and agree == 1.0)
    one = images.x[:1]
    return ExportReport(
        run=run.name,
        format=format,
        quantize=quantize,
        model_file="",
        size_bytes=0,
        export_seconds=0.0,
        runtime=runtime.name,
        latency_ms=_latency(lambda: runtime.predict(one)),
        keras_latency_ms=_latency(lambda: model.predict_on_batch(one)),
        images=len(images.x),
        images_from=images.source,
        max_abs_diff=diff if finite else -1.0,  # JSON has no infinity: -1 says "not numbers"
        top1_agreement=agree,
        accuracy=_accuracy(got, images.y),
        keras_accuracy=_accuracy(expected, images.y),
        input_shape=tuple(int(d) for d in images.x.shape[1:]),
        class_names=names,
        passed=passed,
        exported_at=now_iso(),
    )


def _agreement(expected: np.ndarray, got: np.ndarray) -> float:
    """Share of images whose top-1 class is the same; a different pick among classes the Keras
    model scores within TIE of each other is a tie, and agrees."""
    mine, theirs = expected.argmax(axis=1), got.argmax(axis=1)
    rows = np.arange(len(expected))
    tied = np.abs(expected[rows, mine] - expected[rows, theirs]) <= TIE
    return float(np.mean((mine == theirs) | tied)) if len(expected) else 1.0


def _accuracy(probabilities: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None or len(labels) == 0:
        return None
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def _latency(call: Callable[[], Any]) -> float:
    """Milliseconds per call: the median of LATENCY_REPEATS, after two warm-up calls."""
    for _ in range(2):
        call()
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 4)


# ------------------------------------------------------------------------------ the folder


def readme_text(
    run: Run, format: str, quantize: str | None, shape: tuple[int, ...], names: tuple[str, ...]
) -> str:
    """The exported folder's README: what goes in, what comes out, how to call it."""
    height, width, channels = shape
    kind = FORMAT_LABELS[format] + (" (int8-quantized)" if quantize else "")
    colour = "RGB" if channels == 3 else "greyscale"
    head = f"""# {run.name}: {kind}

Exported by CNN Workbench from run {run.name}: `{MODEL_FILES[format]}`, the class names in output
order in `{LABELS}` ({len(names)} classes), and the proof that it predicts what the Keras model
predicts in `{REPORT}`.

- Input: a batch of {colour} images, uint8, shape (N, {height}, {width}, {channels}), pixel
  values 0..255 as decoded (no scaling or normalisation: the model does it).
- Output: float32 class probabilities, shape (N, {len(names)}), in the order of `{LABELS}`.

```python
import json
import numpy as np
from PIL import Image

labels = json.load(open("{LABELS}"))
image = Image.open("photo.jpg").convert("{"RGB" if channels == 3 else "L"}")
image = image.resize(({width}, {height}))
x = np.asarray(image, dtype=np.uint8).reshape(1, {height}, {width}, {channels})
```
"""
    calls = {
        "savedmodel": f"""
With TensorFlow (`pip install tensorflow`):

```python
import tensorflow as tf

model = tf.saved_model.load("{MODEL_FILES["savedmodel"]}")
probabilities = model.serve(tf.constant(x)).numpy()
print(labels[probabilities[0].argmax()])
```
""",
        "onnx": f"""
With ONNX Runtime (`pip install onnxruntime`):

```python
import onnxruntime

session = onnxruntime.InferenceSession("{MODEL_FILES["onnx"]}")
probabilities = session.run(None, {{session.get_inputs()[0].name: x}})[0]
print(labels[probabilities[0].argmax()])
```
""",
        "litert": f"""
With LiteRT (`pip install ai-edge-litert`):

```python
from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path="{MODEL_FILES["litert"]}")
interpreter.allocate_tensors()  # for one image; resize_tensor_input first for a batch
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print(labels[probabilities[0].argmax()])
```
""",
    }
    note = (
        "\nWeights and activations are int8 (calibrated on the run's training images); input "
        "stays uint8 and output float32. `export.json` says how often it agrees with the float "
        "model.\n"
        if quantize
        else ""
    )
    return head + calls[format] + note


def _write_report(folder: Path, report: ExportReport) -> None:
    text = json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n"
    (folder / REPORT).write_text(text, encoding="utf-8")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _check_out(out: Path) -> None:
    """Refuse an output folder that holds anything but an earlier export."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"{out} is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT).is_file():
        raise ExportError(
            f"{out} already holds files that are not an export; choose another --out or empty it."
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
