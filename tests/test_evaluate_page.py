"""The Evaluate page on unbalanced test data, through AppTest: recall per class first, lowest
first, and a warning for a class the model never recognises."""

from __future__ import annotations

from pathlib import Path

from reliability.kit import make_model_run
from support import open_page, write_colours

from cnn_core.evaluate import class_findings, evaluate_run
from cnn_core.runs import ClassFigures, EvaluationReport
from cnn_core.settings import runs_root
from dashboard.state import fingerprint


def report_of(rows: list[tuple[str, float, int]]) -> EvaluationReport:
    figures = tuple(ClassFigures(c, 0.5, r, 0.5, n) for c, r, n in rows)
    names = tuple(c for c, _, _ in rows)
    return EvaluationReport(0.5, 1.0, 10, names, figures, (), data_source="unused")


def test_class_findings_name_imbalance_and_never_recognised_classes():
    found = class_findings(report_of([("a", 0.9, 100), ("b", 0.0, 10), ("c", 0.5, 0)]))
    assert found["imbalance"] == 10.0 and found["unbalanced"]
    assert found["never_recognised"] == ["b"]  # c had no test images: not "never recognised"
    found = class_findings(report_of([("a", 0.9, 30), ("b", 0.8, 20)]))
    assert not found["unbalanced"] and found["never_recognised"] == []


def test_the_page_puts_recall_first_and_warns_of_a_class_never_recognised(tmp_path: Path):
    data = write_colours(tmp_path / "colours", train=4, test=12)
    for extra in sorted((data / "test" / "green").iterdir())[2:]:
        extra.unlink()  # 12 blue, 2 green, 12 red: 6:1
    run = make_model_run(runs_root(), data_source=str(data))  # where the page looks
    report = evaluate_run(run)
    at = open_page("evaluate", run=run.name)
    table = at.dataframe[0].value  # the per-class table
    assert list(table.columns)[:2] == ["class", "recall"]
    assert list(table["recall"]) == sorted(table["recall"])
    assert any("unbalanced (6.0:1)" in info.value for info in at.info)
    never = [row.name for row in report.per_class if not row.recall]
    warnings = " ".join(w.value for w in at.warning)
    assert all(name in warnings for name in never)
    assert bool(never) == ("never recognises" in warnings)


def test_a_stored_evaluation_is_stale_once_the_test_images_change(tmp_path: Path):
    import numpy as np
    from PIL import Image

    data = write_colours(tmp_path / "colours", train=4, test=3)
    run = make_model_run(runs_root(), data_source=str(data))
    first = evaluate_run(run)
    assert evaluate_run(run) == first  # unchanged: the stored one
    at = open_page("evaluate", run=run.name)
    assert not any("changed since" in w.value for w in at.warning)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / "test" / "red" / "new.png")
    fingerprint.clear()  # the page looks at the files again at most every 10 s
    at = open_page("evaluate", run=run.name)
    assert any("changed since this evaluation" in w.value for w in at.warning)
    again = evaluate_run(run)
    assert again.n == first.n + 1 and again.data_fingerprint != first.data_fingerprint
