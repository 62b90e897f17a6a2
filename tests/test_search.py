"""Hyperparameter search (`cnn-workbench search`): Optuna proposes, every trial trains as a run
in the queue, the study lives in a journal file beside the runs and survives a killed search."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
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
    wait_until(lambda: sum(run.trial() is not None for run in list_runs(root)) >= 2, 120, every=0.2)
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


def write_study(name: str, root: Path, told: list[tuple[dict, float]]) -> None:
    """A search's study as `run_search` leaves it: real Optuna trials in its journal file, each
    with the run it trained (made here, completed)."""
    from dataclasses import replace as changed

    from cnn_core.runs import create_run
    from cnn_core.search import _storage, search_folder

    folder = search_folder(name, root)
    folder.mkdir(parents=True)
    study = optuna.create_study(study_name=name, storage=_storage(folder), direction="maximize")
    distributions = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True),
        "1.filters": optuna.distributions.CategoricalDistribution([4, 8]),
    }
    for number, (values, score) in enumerate(told):
        run = create_run(TINY, TrainConfig(), data_source=str(root), root=root)
        run.write_status(changed(run.status(), state="completed", best_val_accuracy=score))
        run.write_trial({"search": name, "trial": number, "values": values})
        trial = optuna.trial.create_trial(
            params=values, distributions=distributions, value=score, user_attrs={"run": run.name}
        )
        study.add_trial(trial)


def test_the_search_page_shows_the_trials_the_best_and_how_the_values_relate(tmp_path):
    from support import open_page

    from cnn_core.runs import runs_root

    root = runs_root()
    told = [
        ({"learning_rate": 0.001, "1.filters": 4}, 0.62),
        ({"learning_rate": 0.01, "1.filters": 8}, 0.81),
        ({"learning_rate": 0.03, "1.filters": 8}, 0.74),
    ]
    write_study("colours", root, told)
    at = open_page("search")
    assert not at.exception
    assert at.metric[1].value == "3" and at.metric[2].value == "81.00%"
    table = at.dataframe[0].value
    assert list(table["validation accuracy"]) == [0.62, 0.81, 0.74]
    assert set(table.columns) >= {"trial", "state", "run", "learning_rate", "1.filters"}
    charts = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any('"parcoords"' in spec for spec in charts)  # the values tried against the score
    assert any("best so far" in spec for spec in charts)
    best = next(b for b in at.button if b.key == "search_best_more")
    assert best.label.startswith("Train the best (trial 1)")


def test_the_search_page_starts_a_search_in_its_own_process(tmp_path):
    from support import open_page

    from cnn_core.runs import runs_root
    from cnn_core.search import list_searches

    data = write_colours(tmp_path / "colours", train=8, test=2)
    at = open_page("search")
    at.text_input(key="search_data").set_value(str(data))
    at.number_input(key="search_trials").set_value(1)
    at.text_input(key="search_name").set_value("from-the-page")
    space = {"space": {"learning_rate": {"log_uniform": [0.001, 0.01]}}, "pruner": None}
    at.toggle(key="search_as_json").set_value(True)
    at.run(timeout=60)
    area = next(t for t in at.text_area if t.key.startswith("search_space_"))
    area.set_value(json.dumps(space))
    at.button(key="search_start").click()
    at.run(timeout=60)
    assert not at.exception and not at.error, [e.value for e in at.error]
    wait_until(lambda: "from-the-page" in list_searches(runs_root()), 60, every=0.5)
    wait_until(lambda: len(list_runs(runs_root())) == 1, 60, every=0.5)
    (run,) = list_runs(runs_root())
    assert run.trial()["search"] == "from-the-page"
    from cnn_core.api import request_stop

    request_stop(run)  # the test need not wait for it to train


def test_a_block_of_layers_can_be_repeated_a_searched_number_of_times():
    from support import tiny_net

    from cnn_core.spec import LayerSpec

    conv = LayerSpec("Conv2D", {"filters": 6, "kernel_size": 3, "padding": "same"})
    spec = tiny_net(conv, LayerSpec("BatchNormalization"))
    space = parse_space({"space": {"2-3.repeats": {"int": [1, 3]}}}, spec, TrainConfig())
    assert space.dimensions[0].name == "2-3.repeats"
    three, _ = apply(spec, TrainConfig(), {"2-3.repeats": 3, "2.filters": 8})
    kinds = [layer.type for layer in three.layers]
    assert kinds == [spec.layers[0].type, *["Conv2D", "BatchNormalization"] * 3, *kinds[7:]]
    assert len(three.layers) == len(spec.layers) + 4
    assert all(layer.params["filters"] == 8 for layer in three.layers[1:7:2])  # each copy
    with pytest.raises(ConfigError, match="within 1 to"):
        parse_space({"space": {"2-30.repeats": {"int": [1, 2]}}}, spec, TrainConfig())
    with pytest.raises(ConfigError, match="whole numbers from 1 to 8"):
        parse_space({"space": {"2.repeats": {"int": [0, 2]}}}, spec, TrainConfig())
    with pytest.raises(ConfigError, match="overlap"):
        parse_space(
            {"space": {"2-3.repeats": {"int": [1, 2]}, "3.repeats": {"int": [1, 2]}}},
            spec,
            TrainConfig(),
        )


def test_the_search_form_makes_the_space_from_the_declared_widgets():
    from support import open_page

    at = open_page("search")
    assert not at.exception
    chosen = at.multiselect(key="space_settings")
    assert "learning_rate" in chosen.value  # the default space's settings, by their labels
    at.number_input(key="space_lr_lo").set_value(0.0005)
    at.number_input(key="space_lr_hi").set_value(0.02)
    layers = at.multiselect(key="space_layers")
    assert layers.value  # each width of the chosen preset, within a factor of two
    at.run(timeout=60)
    space = json.loads(at.code[0].value)["space"]
    assert space["learning_rate"] == {"log_uniform": [0.0005, 0.02]}
    assert set(layers.value) <= set(space)
    parse_space({"space": space}, _preset_spec(at), TrainConfig())  # a valid space


def _preset_spec(at):
    from cnn_core.presets import load_preset

    return load_preset(at.selectbox[0].value).spec


def test_the_search_form_draws_whole_and_decimal_ranges_alike():
    from support import open_page

    from cnn_core.presets import load_preset

    at = open_page("search")
    at.selectbox[0].set_value("transfer_mobilenet_v3_small")  # it has a Dropout: a float param
    at.run(timeout=60)
    at.multiselect(key="space_settings").set_value(["epochs"])  # an integer setting
    at.multiselect(key="space_layers").set_value(["3.rate"])
    at.run(timeout=60)
    assert not at.exception
    epochs = [at.number_input(key=f"space_ep_{end}") for end in ("lo", "hi")]
    rate = [at.number_input(key=f"space_3.rate_{end}") for end in ("lo", "hi")]
    assert [n.label for n in epochs] == ["Epochs: from", "to"]
    assert [n.label for n in rate] == ["layer 3.rate: from", "to"]
    assert all(isinstance(n.value, int) for n in epochs) and epochs[0].value < epochs[1].value
    dropout = load_preset("transfer_mobilenet_v3_small").spec.layers[2].params["rate"]
    assert [n.value for n in rate] == [0.0, dropout] and rate[0].proto.format == "%g"
    space = json.loads(at.code[0].value)["space"]
    assert space["epochs"] == {"int": [epochs[0].value, epochs[1].value]}
    assert space["3.rate"] == {"uniform": [0.0, dropout]}


def test_the_search_page_reads_the_study_again_only_when_its_journal_changed(tmp_path, monkeypatch):
    from support import open_page

    from cnn_core import search
    from cnn_core.runs import runs_root

    root = runs_root()
    write_study("colours", root, [({"learning_rate": 0.001, "1.filters": 4}, 0.6)] * 2)
    loads = []
    real = search.load_search
    monkeypatch.setattr(search, "load_search", lambda *a: loads.append(a) or real(*a))
    at = open_page("search")
    at.run()
    at.run()  # redrawn twice, the journal unchanged: read once
    assert not at.exception and len(loads) == 1 and at.metric[1].value == "2"
    study = optuna.load_study(
        study_name="colours", storage=search._storage(root / ".searches" / "colours")
    )
    study.enqueue_trial({"learning_rate": 0.01, "1.filters": 8})  # a trial written by the search
    at.run()
    assert len(loads) == 2 and at.metric[1].value == "3"
    at.run()
    assert len(loads) == 2


# --- on a shared server --------------------------------------------------------------------

ALICE, BOB = "alice@example.com", "bob@example.com"


def shared_search_page(user: str):
    """The Search page of a shared server (CNN_CORE_SHARED set by the test), `user` signed in."""
    from streamlit.testing.v1 import AppTest
    from support import APP, rerun

    at = AppTest.from_file(str(APP), default_timeout=90)
    at.secrets["auth"] = {"providers": "configured"}  # sign-in is set up
    at.user = {"is_logged_in": True, "email": user}
    at.switch_page("pages/search.py")
    return rerun(at)


def shown(element) -> str:
    return element.value.replace("\u2060", "")  # `plain` keeps an address from being a link


def test_a_search_on_a_shared_server_is_its_starters_and_others_only_see_it(tmp_path, monkeypatch):
    from cnn_core import access
    from cnn_core.api import request_stop
    from cnn_core.runs import runs_root
    from cnn_core.search import list_searches, search_owner

    monkeypatch.setenv("CNN_CORE_SHARED", "1")
    monkeypatch.setenv("CNN_CORE_DATA_ROOTS", str(tmp_path / "data"))
    data = write_colours(tmp_path / "data" / "colours", train=8, test=2)
    at = shared_search_page(ALICE)
    assert not at.exception and [i.value for i in at.info] == ["No searches yet."]  # offered
    at.text_input(key="search_data").set_value(str(data))
    at.number_input(key="search_trials").set_value(1)
    at.text_input(key="search_name").set_value("alices")
    at.toggle(key="search_as_json").set_value(True)
    at.run(timeout=60)
    space = {"space": {"learning_rate": {"log_uniform": [0.001, 0.01]}}, "pruner": None}
    next(t for t in at.text_area if t.key.startswith("search_space_")).set_value(json.dumps(space))
    at.button(key="search_start").click()
    at.run(timeout=60)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert search_owner("alices", runs_root()) == ALICE

    # the search process makes the trial's run folder, records its owner, launches it and
    # only then writes the audit entry: wait for that last step, not for the folder
    def started() -> list[dict]:
        return [e for e in access.audit_entries() if e["action"] == "start"]

    wait_until(lambda: len(started()) == 1, 60, every=0.5)
    (run,) = list_runs(runs_root())
    request_stop(run)  # the test need not wait for it to train
    assert access.owner_of(run) == ALICE  # the trial is Alice's run, as if she had started it
    assert access.visible(access.principal(BOB), [run]) == []
    assert [(e["user"], e["run"], e["search"]) for e in started()] == [(ALICE, run.name, "alices")]

    theirs = shared_search_page(BOB)  # sees the search, cannot take it over by its name
    assert "alices" in list_searches(runs_root()) and not theirs.exception
    assert theirs.selectbox(key="search_choice").value == "alices"
    assert any(f"Started by {ALICE}" in shown(c) for c in theirs.caption)
    theirs.text_input(key="search_data").set_value(str(data))
    theirs.text_input(key="search_name").set_value("alices")
    theirs.button(key="search_start").click()
    theirs.run(timeout=60)
    assert any("someone else's" in e.value for e in theirs.error)
    assert search_owner("alices", runs_root()) == ALICE


def test_only_a_searchs_owner_or_an_admin_trains_its_best_on(tmp_path, monkeypatch):
    from cnn_core.runs import runs_root
    from cnn_core.search import OWNER, search_folder

    monkeypatch.setenv("CNN_CORE_SHARED", "1")
    monkeypatch.setenv("CNN_CORE_ADMINS", "root@example.com")
    root = runs_root()
    write_study("colours", root, [({"learning_rate": 0.001, "1.filters": 4}, 0.7)])
    (search_folder("colours", root) / OWNER).write_text(json.dumps({"user": ALICE}))
    for user, offered in ((ALICE, True), (BOB, False), ("root@example.com", True)):
        at = shared_search_page(user)
        assert not at.exception
        assert any(b.key == "search_best_more" for b in at.button) is offered, user
    assert any(f"Only {ALICE} or an admin" in shown(c) for c in shared_search_page(BOB).caption)


def test_a_search_ends_when_its_owner_reaches_their_limit(tmp_path, monkeypatch):
    from cnn_core import access
    from cnn_core.access import AccessError
    from cnn_core.runs import create_run
    from cnn_core.search import SearchRequest, run_search

    monkeypatch.setenv("CNN_CORE_SHARED", "1")
    monkeypatch.setenv("CNN_CORE_USER_MAX_QUEUED", "1")
    waiting = create_run(TINY, TrainConfig(), data_source="unused", root=tmp_path)
    access.record_owner(waiting, access.Principal(ALICE))  # her one run allowed to wait
    space = parse_space(SPACE, TINY, TrainConfig())
    request = SearchRequest(
        "capped", TINY, TrainConfig(), space, data_source="unused", trials=2, root=tmp_path
    )
    with pytest.raises(AccessError, match="already have 1 run"):
        run_search(replace(request, owner=ALICE))
    assert list_runs(tmp_path) == [waiting]  # no trial was made


def test_a_search_asked_to_stop_stops_its_trial_and_starts_no_other(tmp_path):
    from cnn_core.search import STOP, request_search_stop, search_folder

    data = write_colours(tmp_path / "colours", train=20, test=4)
    spec, config, space = tmp_path / "tiny.json", tmp_path / "config.json", tmp_path / "space.json"
    spec.write_text(TINY.to_json())
    config.write_text(json.dumps({"epochs": 500, "batch_size": 16, "seed": 1}))  # long enough
    space.write_text(json.dumps(SPACE))
    root = tmp_path / "runs"
    args = (str(spec), "--data", str(data), "--config", str(config), "--space", str(space))
    running = search(*args, "--trials", "3", "--name", "halted", "--json", root=root)
    wait_until(lambda: any(r.status().state == "running" for r in list_runs(root)), 120, every=0.2)
    request_search_stop("halted", root)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err[-2000:]
    (trial,) = json.loads(out.strip().splitlines()[-1])["trials"]
    assert (trial["state"], trial["note"]) == ("fail", "stopped with the search")
    (run,) = list_runs(root)  # no other trial was started
    assert run.status().state == "stopped"
    assert (search_folder("halted", root) / STOP).exists()  # until it starts again


def test_only_a_searchs_owner_or_an_admin_may_stop_it(tmp_path, monkeypatch):
    from cnn_core import access
    from cnn_core.runs import runs_root
    from cnn_core.search import OWNER, STOP, _held, search_folder

    monkeypatch.setenv("CNN_CORE_SHARED", "1")
    root = runs_root()
    write_study("colours", root, [({"learning_rate": 0.001, "1.filters": 4}, 0.7)])
    folder = search_folder("colours", root)
    (folder / OWNER).write_text(json.dumps({"user": ALICE}))
    with _held(folder, "colours"):  # as the search's process holds it: the search is live
        theirs = shared_search_page(BOB)
        assert not any(b.key == "search_stop" for b in theirs.button)
        assert any(f"Only {ALICE} or an admin can stop" in shown(c) for c in theirs.caption)
        at = shared_search_page(ALICE)
        at.button(key="search_stop").click()
        at.run()
        assert not at.exception and (folder / STOP).exists()
        assert any("Stopping" in c.value for c in at.caption)
    stops = [e for e in access.audit_entries() if e["action"] == "stop"]
    assert [(e["user"], e["run"]) for e in stops] == [(ALICE, "colours")]
