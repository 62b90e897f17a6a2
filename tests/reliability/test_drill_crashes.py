"""Drill 3: crashes without a browser. The training process is killed with SIGKILL in the middle
of an epoch, twice in a row, while the Train page shows the run; the page says "interrupted" and
offers to resume; resuming (once through the API, once from the page) loses and repeats nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import TINY, epochs_in, open_page, rerun, wait_for_state, write_colours

from cnn_core import api
from cnn_core.config import TrainConfig
from cnn_core.runs import runs_root
from reliability.kit import kill_mid_epoch, no_worker_left

EPOCHS = 10


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colours(tmp_path_factory.mktemp("colours"), train=300)  # epochs of ~0.7 s


def state_shown(at) -> str:
    return next(m.value for m in at.metric if m.label == "State")


def test_killed_twice_mid_epoch_while_the_page_watches_then_resumed_without_gaps(colours):
    config = TrainConfig(epochs=EPOCHS, batch_size=1, seed=5)  # one image a step: slow epochs
    run = api.start_run(TINY, config, data_source=str(colours), root=runs_root())
    with no_worker_left(run):
        wait_for_state(run, lambda s: s.state == "running")
        page = open_page("train", run=run.name)
        assert state_shown(page) == "running"

        first = kill_mid_epoch(run, after_epochs=1)
        assert epochs_in(run) == list(range(first))
        rerun(page)
        assert state_shown(page) == "interrupted"
        assert any("resume" in e.value for e in page.error)
        assert page.button(key="resume_run").label.startswith("Resume")

        api.resume_run(run)  # the first resume: through the API, in a new worker
        wait_for_state(run, lambda s: s.state == "running" and s.epochs_completed > first)
        second = kill_mid_epoch(run, after_epochs=first + 1)
        assert first < second < EPOCHS
        assert epochs_in(run) == list(range(second))
        rerun(page)
        assert state_shown(page) == "interrupted"

        page.button(key="resume_run").click()  # the second resume: from the page
        rerun(page)
        status = wait_for_state(run, lambda s: s.state == "completed", 120)
    assert status.epochs_completed == EPOCHS, status
    assert epochs_in(run) == list(range(EPOCHS))  # every epoch exactly once
    assert [p.name for p in run.path.glob("checkpoint-*.weights.h5")] == [
        f"checkpoint-{EPOCHS:05d}.weights.h5"
    ]
    assert not list(run.path.glob(".*.tmp*"))  # the killed writers left no temporary files
    rerun(page)
    assert state_shown(page) == "completed"
    print(f"\nkilled in epoch {first + 1} and in epoch {second + 1}; resumed to {EPOCHS} epochs")
