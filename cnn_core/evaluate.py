"""Test-set evaluation of a run: metrics computed once, stored in the run, read by the dashboard.

`evaluate_run` runs the run's model over the test split of its dataset and returns an
`EvaluationReport` (`cnn_core.runs`: accuracy, loss, top-5 accuracy, per-class precision/recall/F1,
the confusion matrix), which the run stores, atomically, as `evaluation.json`, beside
`predictions.npz` (every test image's true class, predicted class and probabilities), from which
`confident_mistakes` and `cell_examples` pick the test images worth looking at, and
`largest_confusion` the confusion-matrix cell to show first. The stored evaluation is reused
until the model file changes.

Metrics are plain numpy, checked against their textbook definitions; no scikit-learn. This module
does not draw anything, and Keras is imported only when a model is loaded.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from dataclasses import replace
from typing import Any

import numpy as np

from cnn_core.balance import IMBALANCE_HINT, imbalance_ratio
from cnn_core.data.cache import source_fingerprint
from cnn_core.errors import DataError, UserError
from cnn_core.predict import class_names, load_run_model, output_size, run_model, test_time_views
from cnn_core.runs import (
    EvaluationReport,
    Run,
    RunError,
    now_iso,
)
from cnn_core.testset import choose_test_set, load_test_set

EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] as Keras' loss does
TOP_K = 5  # top-k accuracy is reported when there are more classes than this
_ARRAYS = ("y_true", "y_pred", "probabilities")


class ClassMismatchError(UserError):
    """The test data's classes are not the classes the run's model was trained on."""


def evaluate_run(
    run: Run,
    *,
    data_source: str | None = None,
    force: bool = False,
    batch_size: int = 500,
) -> EvaluationReport:
    """The run's test-set evaluation: the stored one if it is current, else computed and stored.

    The stored evaluation is current when the model file has not changed since, it was made on
    the same data source and `force` is False. `data_source` defaults to the run's own. Raises a
    `UserError` when the run has no model, the data cannot be loaded or its classes differ.
    """
    source = data_source if data_source is not None else run.dataset().get("source")
    if not force:
        stored = run.evaluation()
        if _is_current(run, stored, source):
            return stored  # type: ignore[return-value] - current: not None
    if not isinstance(source, str) or not source.strip():
        raise RunError(
            f"run {run.name}: dataset.json records no data source; pass the test data's source."
        )

    started = time.perf_counter()
    model = load_run_model(run)
    model_mtime = run.model_mtime()  # after loading: the file that was loaded
    dataset = load_test_set(choose_test_set(run, source))  # the run's own split: none seen
    names = _check_classes(run, tuple(dataset.class_names), output_size(model))
    if len(dataset.x_test) == 0:
        raise DataError(f"{source} has no test images; put some in its test/<class>/ folders.")

    probabilities = run_model(
        model, dataset.x_test, batch_size=max(1, int(batch_size)), **test_time_views(run)
    )
    if not np.all(np.isfinite(probabilities)):
        raise RunError(
            f"run {run.name}: the model's outputs are not numbers; its training diverged: train "
            "it again with a lower learning rate."
        )
    y_true = np.asarray(dataset.y_test, dtype=np.int64)
    report = EvaluationReport.from_dict(
        {
            **metrics(y_true, probabilities, names),
            "seconds": round(time.perf_counter() - started, 3),
            "data_source": source,
            "data_fingerprint": source_fingerprint(source),
            "evaluated_at": now_iso(),
            "model_mtime": model_mtime,
        }
    )
    assert report is not None  # metrics() makes every part
    predictions = _npz_bytes(y_true, probabilities)
    report = _save(run, report, predictions)
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():  # else MLflow is never imported
        problem = _log_to_mlflow(run, report)
        if problem:  # said wherever the evaluation is shown, until it is evaluated again
            report = replace(report, not_logged=problem)
            if not report.not_saved:
                report = _save(run, report, predictions)
    return report


def _save(run: Run, report: EvaluationReport, predictions: bytes) -> EvaluationReport:
    """`report` stored in the run, predictions first (whoever sees the new evaluation.json finds
    its predictions beside it); in a read-only run folder the figures are still returned."""
    try:
        run.write_evaluation(report, predictions)
    except OSError as exc:
        return replace(
            report,
            not_saved=f"the evaluation could not be saved in {run.path} ({exc.strerror}), so it "
            "will be computed again next time; make the run folder writable to keep it.",
        )
    return report


def _log_to_mlflow(run: Run, report: EvaluationReport) -> str | None:
    """The test-set figures to the run's MLflow run; if MLflow refused them, what to tell."""
    from cnn_core.training.tracking import log_evaluation

    figures = {"test_accuracy": report.accuracy, "test_loss": report.loss}
    if report.top5_accuracy is not None:
        figures["test_top5_accuracy"] = report.top5_accuracy
    problem = log_evaluation(run, figures)
    if problem is None:
        return None
    kept = (
        "the evaluation itself is saved in the run"
        if not report.not_saved
        else "nor could the evaluation be saved in the run (see the other warning)"
    )
    return (
        f"{problem}; {kept}. Evaluate again once MLflow answers to log it there "
        f"(cnn-workbench evaluate {run.name} --force, or Evaluate again on the Evaluate page)."
    )


def stored_evaluation(run: Run) -> tuple[EvaluationReport | None, str | None]:
    """The stored evaluation if its `data_source` can be used (looked at, fingerprinted, its
    test images shown), else None and why not; (None, None) if there is no evaluation."""
    report = run.evaluation()
    if report is None:
        return None, None
    problem = source_problem(run, report.data_source)
    if problem:
        return None, (
            f"run {run.name}: evaluation.json is not used because its data_source {problem}; "
            "evaluate the run again."
        )
    return report, None


def source_problem(run: Run, source: object) -> str | None:
    """Why a data source read from a run's files cannot be used, or None if it can: 'cifar10',
    the run's own source (checked when it was created), or an existing absolute path that looks
    like a dataset. A hand-edited "/" would be walked, file by file, on every view."""
    if not isinstance(source, str):
        return "is not text"
    if source.lower() == "cifar10" or source == run.dataset().get("source"):
        return None
    if "\x00" in source or not os.path.isabs(source) or os.path.normpath(source) != source:
        return f"{source[:80]!r} is not an absolute path"
    if os.path.dirname(source) == source:
        return f"{source!r} is the root of the file system"
    from cnn_core.data.sources import inspect_source

    info = inspect_source(source)
    if info.problem:
        return f"{source[:80]!r} cannot be used ({info.problem.rstrip('.')})"
    return None


def _is_current(run: Run, stored: EvaluationReport | None, source: object) -> bool:
    if stored is None or stored.data_source != source:
        return False
    if source_problem(run, source):
        return False
    try:
        mtime = run.model_mtime()
    except OSError:
        return False  # no model now: recomputing says so in the user's words
    if stored.model_mtime != mtime or not run.has_predictions():
        return False
    return not data_changed(stored)


def data_changed(report: EvaluationReport, *, current: str | None = None) -> bool:
    """Whether the test data's files changed since `report` was made (a report from before
    fingerprints were stored counts as unchanged). `current`: the source's fingerprint now, if
    the caller has it."""
    stored = report.data_fingerprint
    if stored is None:
        return False
    if current is None:
        current = source_fingerprint(report.data_source)
    return current != stored


def _check_classes(run: Run, data_names: tuple[str, ...], outputs: int) -> tuple[str, ...]:
    """The class names to report, after checking the data against the run's model."""
    run_names = class_names(run)
    if not run_names.placeholder and tuple(run_names) != data_names:
        raise ClassMismatchError(
            f"the test data's classes ({', '.join(data_names)}) are not run {run.name}'s classes "
            f"({', '.join(run_names)}); evaluate on data with the classes the run was trained on."
        )
    if len(data_names) != outputs:
        raise ClassMismatchError(
            f"the test data has {len(data_names)} classes ({', '.join(data_names)}) but run "
            f"{run.name}'s model scores {outputs}; evaluate on data with the run's classes."
        )
    return data_names


# ------------------------------------------------------------------------------------- metrics


def metrics(
    y_true: np.ndarray, probabilities: np.ndarray, names: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """Accuracy, loss, top-5 accuracy, per-class figures and confusion matrix, as plain data.

    `y_true` (N,) holds class indices, `probabilities` (N, classes) the model's outputs.
    Precision, recall and F1 are 0.0 where their denominator is zero.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n, classes = probabilities.shape
    y_pred = np.argmax(probabilities, axis=1)

    confusion = np.bincount(y_true * classes + y_pred, minlength=classes * classes)
    confusion = confusion.reshape(classes, classes)  # rows: true class, columns: predicted
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _safe_divide(hits, predicted)
    recall = _safe_divide(hits, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    true_probability = np.clip(probabilities[np.arange(n), y_true], EPSILON, 1 - EPSILON)
    top5 = None
    if classes > TOP_K:
        best = np.argpartition(-probabilities, TOP_K - 1, axis=1)[:, :TOP_K]
        top5 = float(np.mean(np.any(best == y_true[:, None], axis=1))) if n else 0.0
    return {
        "accuracy": float(np.mean(y_pred == y_true)) if n else 0.0,
        "loss": float(np.mean(-np.log(true_probability))) if n else 0.0,
        "top5_accuracy": top5,
        "n": int(n),
        "class_names": list(names),
        "per_class": [
            {
                "class": names[c],
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in range(classes)
        ],
        "confusion_matrix": confusion.astype(int).tolist(),
    }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


# --------------------------------------------------------------------------------- predictions


def _npz_bytes(y_true: np.ndarray, probabilities: np.ndarray) -> bytes:
    classes = probabilities.shape[1]
    label_type = np.int16 if classes <= np.iinfo(np.int16).max else np.int32
    buffer = io.BytesIO()
    np.savez(
        buffer,
        y_true=y_true.astype(label_type),
        y_pred=np.argmax(probabilities, axis=1).astype(label_type),
        probabilities=probabilities.astype(np.float16),  # 10,000 x 10 is 200 kB
    )
    return buffer.getvalue()


def read_predictions(run: Run) -> dict[str, np.ndarray] | None:
    """The stored test-set predictions {"y_true", "y_pred", "probabilities"}, or None.

    None when the run has not been evaluated or the file is damaged or inconsistent.
    """
    try:  # read through Run's reader: a FIFO or a link in its place would hang np.load
        stored = np.load(io.BytesIO(run.predictions()), allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):  # a lone .npy array is not ours
            return None
        with stored:
            arrays = {name: np.asarray(stored[name]) for name in _ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    y_true, y_pred, probs = (arrays[name] for name in _ARRAYS)
    if probs.ndim != 2 or probs.dtype.kind != "f" or y_true.ndim != 1:
        return None
    n, classes = probs.shape
    for labels in (y_true, y_pred):
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            return None
        if n and (labels.min() < 0 or labels.max() >= classes):
            return None
    return arrays


def confident_mistakes(run: Run, *, limit: int = 24) -> list[dict[str, Any]]:
    """The test images the model got wrong, most confident first.

    Each is {"index" (into the test set), "true", "predicted" (class indices), "true_class",
    "predicted_class" (names), "confidence" (the predicted class's probability)}.
    """
    stored = read_predictions(run)
    if stored is None:
        return []
    y_true, y_pred, probs = (stored[name] for name in _ARRAYS)
    wrong = np.flatnonzero(y_true != y_pred)
    confidence = probs[wrong, y_pred[wrong]].astype(np.float32)
    chosen = wrong[np.argsort(-confidence, kind="stable")[: max(0, limit)]]
    names = _stored_names(run, probs.shape[1])
    return [
        {
            "index": int(i),
            "true": int(y_true[i]),
            "predicted": int(y_pred[i]),
            "true_class": names[int(y_true[i])],
            "predicted_class": names[int(y_pred[i])],
            "confidence": float(probs[i, y_pred[i]]),
        }
        for i in chosen
    ]


def cell_examples(run: Run, true_class: int, predicted_class: int, *, limit: int = 24) -> list[int]:
    """Test-set indices in one confusion-matrix cell, most confident prediction first."""
    stored = read_predictions(run)
    if stored is None:
        return []
    y_true, y_pred, probs = (stored[name] for name in _ARRAYS)
    if not (0 <= predicted_class < probs.shape[1]):
        return []
    cell = np.flatnonzero((y_true == true_class) & (y_pred == predicted_class))
    confidence = probs[cell, predicted_class].astype(np.float32)
    return [int(i) for i in cell[np.argsort(-confidence, kind="stable")[: max(0, limit)]]]


def class_findings(report: EvaluationReport) -> dict[str, Any]:
    """What the Evaluate page says about the classes of a stored report: how unbalanced the test
    images are (largest class over smallest), whether that is above the hint, and the classes the
    model never recognises (recall 0 on images it was shown)."""
    rows = report.per_class
    supports = np.array([int(row.support) for row in rows])
    ratio = imbalance_ratio(np.repeat(np.arange(len(rows)), supports), len(rows))
    never = [row.name for row in rows if row.support and not row.recall]
    return {"imbalance": ratio, "unbalanced": ratio > IMBALANCE_HINT, "never_recognised": never}


def largest_confusion(matrix: np.ndarray | list[list[int]]) -> tuple[int, int]:
    """The (true, predicted) cell of a confusion matrix most worth looking at first.

    That is the largest off-diagonal cell, the model's most common mistake; the largest diagonal
    cell only when there are no mistakes at all. Ties go to the first cell, row by row.
    """
    confusion = np.asarray(matrix)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or not confusion.size:
        raise ValueError(
            f"a confusion matrix is square with one row per class, not of shape {confusion.shape}"
        )
    mistakes = confusion.astype(np.float64)  # a copy: the diagonal is masked out below
    np.fill_diagonal(mistakes, -np.inf)
    if mistakes.max() > 0:
        true, predicted = np.unravel_index(np.argmax(mistakes), mistakes.shape)
        return int(true), int(predicted)
    best = int(np.argmax(np.diag(confusion)))
    return best, best


def _stored_names(run: Run, classes: int) -> list[str]:
    report = run.evaluation()
    if report is not None and len(report.class_names) == classes:
        return list(report.class_names)
    return [f"class {i}" for i in range(classes)]


def matching_probabilities(run: Run, images: np.ndarray, *, count: int) -> np.ndarray | None:
    """The stored test-set probabilities (float32, one row per image), or None when there are
    none or they do not fit: the evaluation covered `count` images, and so must `images`."""
    predictions = read_predictions(run)
    if predictions is None or len(images) != count or len(predictions["probabilities"]) != count:
        return None
    return predictions["probabilities"].astype(np.float32)
