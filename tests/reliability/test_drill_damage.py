"""Drill 4: damaged run directories. A history.csv cut mid-row or full of binary junk, a missing or
garbage model.keras, garbage in status.json, spec.json, config.json, progress.json and
evaluation.json, an evaluation.json missing its figures, and a run folder deleted while a page
shows it: every page stays up (no exception) and says what is wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from support import encode, open_page, rerun

from cnn_core.runs import (
    CONFIG,
    EVALUATION,
    HISTORY,
    MODEL,
    PROGRESS,
    SPEC,
    STATUS,
    Run,
    atomic_write_text,
    format_history,
    runs_root,
)
from reliability.kit import copy_run, make_model_run, messages

PAGES = ("train", "runs", "evaluate", "predict")  # Build reads no run


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = make_model_run(tmp_path_factory.mktemp("damage-runs"))
    rows = [{"epoch": e, "accuracy": 0.5 + e / 10, "loss": 1 - e / 10} for e in range(3)]
    atomic_write_text(run.file(HISTORY), format_history(rows))
    return run


def cut_history(run: Run) -> None:
    text = run.file(HISTORY).read_text()
    run.file(HISTORY).write_text(text[: text.rindex("\n", 0, -1) + 5])  # the last row, cut


DAMAGE: dict[str, Callable[[Run], None]] = {
    "history.csv cut mid-row": cut_history,
    "history.csv binary junk": lambda run: run.file(HISTORY).write_bytes(bytes(range(256))),
    "model.keras missing": lambda run: run.file(MODEL).unlink(),
    "model.keras garbage": lambda run: run.file(MODEL).write_bytes(b"PK\x03\x04 not a model"),
    "status.json garbage": lambda run: run.file(STATUS).write_text("{garbage"),
    "spec.json garbage": lambda run: run.file(SPEC).write_text('{"version": 1, "layers": 7'),
    "config.json garbage": lambda run: run.file(CONFIG).write_text("[]"),
    "progress.json garbage": lambda run: run.file(PROGRESS).write_bytes(b"\xff\xfe\x00"),
    "evaluation.json garbage": lambda run: run.file(EVALUATION).write_text("{'acc'"),
    "evaluation.json incomplete": lambda run: run.file(EVALUATION).write_text('{"accuracy": 1}'),
}
SAYS = {  # what the page in question must say about it
    ("model.keras missing", "evaluate"): "has no trained model yet",
    ("model.keras missing", "predict"): "has no trained model yet",
    ("model.keras garbage", "predict"): "model.keras is damaged",
    ("status.json garbage", "train"): "status.json is missing or damaged",
    ("spec.json garbage", "predict"): "spec.json is missing or damaged",
    ("spec.json garbage", "runs"): "",  # said in the table's "problem" column
}
NOT_EVALUATED = "This run has not been evaluated on the test set yet."


def photo() -> bytes:
    from PIL import Image

    return encode(Image.new("RGB", (12, 10), (200, 30, 30)), "PNG")


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_page_stays_up_and_says_what_is_wrong(damage: str, template: Run):
    run = copy_run(template, runs_root())
    DAMAGE[damage](run)
    for page in PAGES:
        at = open_page(page, run=run.name)
        if page == "predict" and at.get("file_uploader"):
            at.file_uploader(key="photos").set_value([("red.png", photo(), "image/png")])
            rerun(at)
        said = SAYS.get((damage, page))
        if said:
            assert any(said in message for message in messages(at)), (page, messages(at))
        if page == "train":
            history_rows = len(at.dataframe[0].value) if at.dataframe else 0
            assert history_rows == len(run.history())  # only complete rows, nothing invented
        if page == "evaluate" and damage.startswith("evaluation.json"):
            assert NOT_EVALUATED in [m.value for m in at.markdown]  # offered again, not half shown
        if (damage, page) == ("spec.json garbage", "runs"):
            problem = at.dataframe[0].value["problem"][0]
            assert "spec.json is missing or damaged" in problem


@pytest.mark.parametrize("page", ["train", "evaluate", "predict", "runs"])
def test_a_run_deleted_while_its_page_is_open(page: str, template: Run):
    run = copy_run(template, runs_root())
    at = open_page(page, run=run.name)
    shutil.rmtree(run.path)
    rerun(at)
    shown = " ".join(messages(at))
    if page == "runs":
        assert "No runs yet" in shown
    else:
        assert f"no run {run.name}" in shown, shown
