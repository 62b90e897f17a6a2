"""The learning-rate finder (`cnn-workbench lr-find`) and the warning for a run that does not
learn, on tiny synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import TINY, write_colours

from cnn_core import api
from cnn_core.config import TrainConfig
from cnn_core.errors import UserError
from cnn_core.runs import list_runs
from cnn_core.training.lr_find import suggest
from cnn_core.training.recorder import not_learning


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colours(tmp_path_factory.mktemp("colours"), train=40, test=4)


def test_the_suggestion_is_the_steepest_fall_before_the_lowest_point():
    rates = list(np.logspace(-7, 1, 81))
    logs = np.log10(rates)
    # Flat, a fall steepest at 1e-3, the lowest point at 1e-1, then a climb.
    losses = list(
        2.0 - 1.5 / (1 + np.exp(-(logs + 3) * 3)) + np.where(logs > -1, (logs + 1) ** 2, 0)
    )
    best, tenth, note = suggest(rates, losses)
    assert best == pytest.approx(1e-3, rel=0.3)
    lowest = rates[int(np.argmin(losses))]
    assert tenth == pytest.approx(lowest / 10)
    assert note is None
    # A smoothed loss that swings with its first batches is not a fall to follow.
    swinging = [3.5, 2.6, *losses[2:]]
    assert suggest(rates, swinging)[0] == pytest.approx(1e-3, rel=0.3)
    flat = suggest(rates, [2.3026] * len(rates))
    assert "hardly moved" in flat[2]
    with pytest.raises(UserError, match="at least 5 batches"):
        suggest(rates[:3], losses[:3])


def test_lr_find_suggests_a_rate_and_writes_no_run(colours, tmp_path):
    out = tmp_path / "found.json"
    command = [sys.executable, "-m", "cnn_core", "lr-find", str(_spec(tmp_path)), "--data"]
    command += [str(colours), "--batch-size", "8", "--steps", "40", "--json", "--out", str(out)]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    rates, losses = found["learning_rates"], found["losses"]
    assert 5 <= len(rates) == len(losses) == found["steps"] <= 40
    assert rates == sorted(rates) and rates[0] == pytest.approx(1e-7)
    assert 1e-7 <= found["suggestion"] <= 10 and found["configured"] == 0.001
    assert min(losses) < losses[0]  # the colours are learnable: the loss falls somewhere
    assert json.loads(out.read_text()) == found
    assert list_runs(tmp_path / "runs") == [] and not (tmp_path / "runs").exists()


def _spec(folder: Path) -> Path:
    path = folder / "tiny.json"
    path.write_text(TINY.to_json())
    return path


def test_a_run_that_does_not_learn_is_told_so_and_one_that_learns_is_not(colours, tmp_path):
    dead = TrainConfig(learning_rate=10.0, epochs=1, batch_size=16, seed=1)
    run = api.start_run(TINY, dead, data_source=str(colours), root=tmp_path, detach=False)
    status = run.status()
    assert status.state == "completed"
    assert status.not_learning and status.not_learning.startswith("Not learning: after the first")
    assert "learning-rate finder" in status.not_learning and "(10)" in status.not_learning
    good = TrainConfig(learning_rate=0.01, epochs=1, batch_size=16, seed=1)
    healthy = api.start_run(TINY, good, data_source=str(colours), root=tmp_path, detach=False)
    assert healthy.status().not_learning is None


@pytest.mark.parametrize(
    ("row", "first", "said"),
    [
        ({"loss": 2.3020, "accuracy": 0.25}, 2.3026, "the training loss stayed at 2.3020"),
        ({"loss": 2.0e12, "accuracy": 0.4}, 2.31, "the training loss rose to 2e+12"),
        ({"loss": 1.5, "accuracy": 0.105}, 2.31, "the training accuracy is 10.5%, chance for 10"),
        ({"loss": 1.5, "accuracy": 0.35}, 2.31, None),
    ],
)
def test_not_learning_names_what_it_saw(row, first, said):
    found = not_learning(row, first, 10, 10.0)
    if said is None:
        assert found is None
    else:
        assert said in found and "learning rate (10)" in found


def test_finished_finder_jobs_are_forgotten_after_a_day(tmp_path, monkeypatch):
    import os
    import time

    from cnn_core import lr_job

    monkeypatch.setenv("CNN_CORE_CACHE", str(tmp_path))
    jobs = tmp_path / "lr-find"
    old, recent = jobs / "old", jobs / "recent"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / lr_job.RESULT).write_text("{}")
    day_ago = time.time() - lr_job.KEEP_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    lr_job._forget_old(jobs)
    assert not old.exists() and recent.exists()
