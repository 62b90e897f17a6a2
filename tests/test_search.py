"""Hyperparameter search (`cnn-workbench search`): Optuna proposes, every trial trains as a run
in the queue, the study lives in a journal file beside the runs and survives a killed search."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, TINY, wait_until, write_colours

from cnn_core.config import TrainConfig
from cnn_core.errors import ConfigError
from cnn_core.runs import list_runs
from cnn_core.search import apply, default_space, parse_space

optuna = pytest.importorskip("optuna")

SPACE = {
    "version": 1,
    "space": {"learning_rate": {"log_uniform": [0.001, 0.05]}, "1.filters": {"choice": [4, 8]}},
    "pruner": None,
}


def search(*args: str, root: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "cnn_core", "search", *args, "--runs-dir", str(root)]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_killed_search_started_again_goes_on_and_ends_with_four_runs(tmp_path):
    data = write_colours(tmp_path / "colours", train=20, test=4)
    spec, config, space = tmp_path / "tiny.json", tmp_path / "config.json", tmp_path / "space.json"
    spec.write_text(TINY.to_json())
    config.write_text(json.dumps({"epochs": 2, "batch_size": 16, "seed": 1}))
    space.write_text(json.dumps(SPACE))
    root = tmp_path / "runs"
    args = (str(spec), "--data", str(data), "--config", str(config), "--space", str(space))
    args += ("--trials", "4", "--name", "colours")
    first = search(*args, root=root)
    # Killed while its second trial trains: that run's own process trains on.
    wait_until(lambda: len(list_runs(root)) >= 2, 120, every=0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    again = search(*args, "--json", root=root)
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert [t["number"] for t in result["trials"]] == [0, 1, 2, 3]
    assert all(t["state"] == "complete" for t in result["trials"]), result["trials"]
    found = list_runs(root)
    assert len(found) == 4  # every trial is an ordinary run, tagged with its search and number
    tags = sorted((run.trial()["search"], run.trial()["trial"]) for run in found)
    assert tags == [("colours", n) for n in range(4)]
    assert all(run.status().state == "completed" for run in found)
    best = result["best"]
    assert best["run"] in {run.name for run in found} and set(best["values"]) == set(SPACE["space"])
    # The study reopens in Optuna itself.
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(
            str(root / ".searches" / "colours" / "study.log")
        )
    )
    study = optuna.load_study(study_name="colours", storage=storage)
    assert len(study.trials) == 4 and study.best_value == pytest.approx(best["value"])


def test_a_search_space_is_checked_with_messages_that_say_what_to_fix():
    config = TrainConfig()
    assert [d.name for d in parse_space(SPACE, TINY, config).dimensions] == list(SPACE["space"])
    bad = {
        "learning_rat": "neither a setting",
        "9.filters": "there is no layer 9",
        "1.units": "has no 'units'",
    }
    for key, said in bad.items():
        with pytest.raises(ConfigError, match=said):
            parse_space({"space": {key: {"choice": [1]}}}, TINY, config)
    with pytest.raises(ConfigError, match="log_uniform needs a low above 0"):
        parse_space({"space": {"learning_rate": {"log_uniform": [0, 1]}}}, TINY, config)
    with pytest.raises(ConfigError, match="learning_rate = 50"):  # an end that is not allowed
        parse_space({"space": {"learning_rate": {"uniform": [0.1, 50]}}}, TINY, config)
    with pytest.raises(ConfigError, match="grid sampler takes choices only"):
        parse_space({"space": SPACE["space"], "sampler": "grid"}, TINY, config)


def test_a_trial_changes_settings_and_layers_and_the_default_space_spans_widths():
    spec, config = apply(TINY, TrainConfig(), {"learning_rate": 0.01, "1.filters": 16})
    assert config.learning_rate == 0.01 and spec.layers[0].params["filters"] == 16
    assert TINY.layers[0].params["filters"] != 16  # the base spec is left as it was
    names = {d.name: d for d in default_space(TINY, TrainConfig()).dimensions}
    filters = TINY.layers[0].params["filters"]
    assert (names["1.filters"].low, names["1.filters"].high) == (filters // 2, filters * 2)
    assert names["learning_rate"].kind == "log_uniform"
