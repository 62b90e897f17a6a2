"""Drill 7: run files that cannot hang or break anything. A run file that is a FIFO or a link to a
device, a mistyped field in one status.json, a `running` run whose pid is someone else's, links
inside a run, two resumes at once against a Stop, a read-only runs folder, a history.csv of tens
of megabytes and a hand-edited evaluation `data_source`: each touches only its own run, and says
so, while everything else keeps working.

The checks that could hang or eat memory run in a child process with a time and memory limit, so
that a regression fails the drill instead of freezing the suite.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from support import TINY

from cnn_core.config import TrainConfig
from cnn_core.runs import (
    HISTORY,
    LOG,
    PROGRESS,
    STATUS,
    Run,
    RunStatus,
    atomic_write_json,
    create_run,
    list_runs,
    run_row,
    runs_root,
    zip_run,
)

ROOT = Path(__file__).resolve().parents[2]


def in_child(code: str, *, seconds: float = 30, memory: int = 2 << 30) -> str:
    """Run `code` in a fresh Python with a time and address-space limit; return its stdout."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=seconds,
        preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def new_run(root: Path | None = None, **status: object) -> Run:
    run = create_run(TINY, TrainConfig(epochs=3), data_source="unused", root=root or runs_root())
    if status:
        recorded = {**RunStatus(state="completed", epochs_target=3).to_dict(), **status}
        run.file(STATUS).write_text(json.dumps(recorded))
    return run


READ_EVERYTHING = """
    import sys
    from cnn_core.runs import list_runs, run_row
    from cnn_core.cli import main
    rows = [run_row(run) for run in list_runs(sys.argv[1] if len(sys.argv) > 1 else None)]
    for run in list_runs():
        run.history(), run.progress(), run.log_tail(), run.evaluation(), run.launch()
    print(sorted(row["state"] for row in rows))
    main(["runs"])
"""


@pytest.mark.parametrize("name", [STATUS, HISTORY, PROGRESS, LOG, "launch.json", "evaluation.json"])
def test_a_fifo_run_file_hangs_nothing(name: str):
    good = new_run()
    fifo = new_run()
    fifo.file(name).unlink(missing_ok=True)
    os.mkfifo(fifo.file(name))
    out = in_child(READ_EVERYTHING, seconds=60)
    assert good.name in out and fifo.name in out


def test_a_link_to_dev_zero_eats_no_memory():
    run = new_run()
    for name in (STATUS, HISTORY, LOG, PROGRESS):
        run.file(name).unlink(missing_ok=True)
        run.file(name).symlink_to("/dev/zero")
    out = in_child(READ_EVERYTHING, seconds=60, memory=1 << 30)
    assert run.name in out


def test_a_huge_status_file_is_refused_not_read():
    run = new_run()
    with open(run.file(STATUS), "wb") as handle:
        handle.truncate(200 << 20)  # sparse: 200 MB of nothing, on no disk
    status = run.status()
    assert status.state == "interrupted" and "status.json" in status.error


@pytest.mark.parametrize(
    ("field", "value"),
    [("pid", "1"), ("pid", 10**30), ("epochs_completed", "3"), ("best_val_accuracy", "x"),
     ("notes", 7), ("seconds_before", 1e400), ("pid_started", 5), ("epochs_target", -1),
     ("best_epoch", 10**30), ("seed", 2.5), ("started_at", ["x"])],
)  # fmt: skip
def test_one_mistyped_field_damages_one_run_only(field: str, value: object):
    good = new_run(state="completed", epochs_completed=3, best_val_accuracy=0.5)
    bad = new_run()
    recorded = {**RunStatus(state="running", epochs_target=3).to_dict(), field: value}
    bad.file(STATUS).write_text(json.dumps(recorded).replace("Infinity", "1e400"))
    rows = {row["run"]: row for row in map(run_row, list_runs())}
    assert rows[good.name]["state"] == "completed"
    assert rows[bad.name]["state"] == "interrupted"
    assert field in rows[bad.name]["problem"], rows[bad.name]["problem"]


def test_the_runs_command_lists_a_damaged_run_with_its_reason(capsys):
    from cnn_core.cli import main

    good = new_run(state="completed", epochs_completed=3)
    bad = new_run(state="running", pid="1")
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert good.name in out
    line = next(line for line in out.splitlines() if bad.name in line)
    assert "damaged" in line and "pid" in line, line


def test_the_zip_holds_regular_files_only(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the run")
    run = new_run(state="completed")
    run.file(LOG).unlink(missing_ok=True)
    run.file(LOG).symlink_to(secret)
    run.file(HISTORY).symlink_to("/dev/zero")
    os.mkfifo(run.file("split.json"))
    with zipfile.ZipFile(__import__("io").BytesIO(zip_run(run))) as archive:
        names = archive.namelist()
        texts = [archive.read(name) for name in names]
    assert f"{run.name}/{LOG}" not in names and f"{run.name}/{HISTORY}" not in names
    assert f"{run.name}/spec.json" in names
    assert not any(b"not part of the run" in text for text in texts)


def test_a_damaged_status_can_be_written_over(tmp_path: Path):
    run = new_run(state="running", pid=10**30)
    atomic_write_json(run.file(STATUS), RunStatus(state="stopped").to_dict())
    assert run.status().state == "stopped"


# --- liveness and claims ------------------------------------------------------------------------


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    from support import write_colours

    return write_colours(tmp_path / "colours", train=4, test=1)


def resumable(colours: Path, **status: object) -> Run:
    from cnn_core.runs import DATASET

    run = new_run(**{"state": "stopped", "epochs_completed": 1, **status})
    atomic_write_json(run.file(DATASET), {"source": str(colours)})
    return run


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list:
    """Stand-in workers: each keeps the claim it was handed, as a live worker process does (a
    duplicated descriptor shares the lock, as an inherited one does)."""
    from cnn_core import api
    from cnn_core.runs import Claim

    held: list = []

    def spawn(run: Run, *, more_epochs: int | None = None, claim=None) -> int:
        held.append(Claim(os.dup(claim.fd)))
        return os.getpid()

    monkeypatch.setattr(api, "spawn_worker", spawn)
    yield held
    for claim in held:
        claim.close()


def test_a_running_run_with_someone_elses_pid_can_be_stopped_deleted_and_resumed(
    colours: Path, workers: list
):
    from cnn_core import api
    from cnn_core.runs import delete_run

    run = resumable(colours, state="running", pid=1)
    assert run.status().state == "interrupted"  # nobody holds the run: pid 1 is not its worker
    assert not api.request_stop(run).active
    api.resume_run(run)  # accepted
    assert len(workers) == 1 and run.status().state == "queued"
    other = new_run(state="running", pid=1)
    delete_run(other)
    assert not other.path.exists()


def test_a_stale_queued_run_does_not_block_the_queue():
    from cnn_core.runs import queued_ahead

    stale = new_run(state="queued", pid=1, queued_at="2000-01-01T00:00:00+00:00")
    mine = new_run(state="queued", pid=os.getpid(), queued_at="2026-01-01T00:00:00+00:00")
    assert stale.status().state == "interrupted"
    assert queued_ahead(mine, mine.raw_status()) == 0


def test_two_resumes_at_once_one_is_accepted_and_stop_always_wins(colours: Path, workers: list):
    import threading

    from cnn_core import api
    from cnn_core.errors import UserError

    for trial in range(8):
        run = resumable(colours)
        barrier = threading.Barrier(3)
        outcomes: list[str] = []
        stops: list[bool] = []

        def resume(
            run: Run = run, barrier: threading.Barrier = barrier, outcomes: list = outcomes
        ) -> None:
            barrier.wait()
            try:
                api.resume_run(run)
                outcomes.append("accepted")
            except UserError as exc:
                outcomes.append(str(exc))

        def stop(run: Run = run, barrier: threading.Barrier = barrier, stops: list = stops) -> None:
            barrier.wait()
            stops.append(api.request_stop(run).active)

        threads = [threading.Thread(target=f) for f in (resume, resume, stop)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes.count("accepted") == 1, (trial, outcomes)
        refused = next(o for o in outcomes if o != "accepted")
        assert "already" in refused, refused
        if stops[0]:  # a Stop that was accepted reaches the worker that got the run
            assert run.stop_requested(), trial
    assert len(workers) == 8


def test_a_stop_made_while_a_claim_is_being_stamped_reaches_that_part(
    colours: Path, workers: list, monkeypatch: pytest.MonkeyPatch
):
    """The window the race above can hit, held open: the resume has the claim's lock but has not
    stamped its time yet when Stop looks. Stop must wait for the stamp, or its request would read
    older than the claim and be dropped (this failed before the stop guard)."""
    import threading

    from cnn_core import api, runs

    run = resumable(colours)
    locked, real_now = threading.Event(), runs.now_iso
    resumer: list[threading.Thread] = []

    def slow_stamp() -> str:
        if threading.current_thread() in resumer and not locked.is_set():
            locked.set()  # called between the claim's flock and its stamp
            time.sleep(0.3)
        return real_now()

    monkeypatch.setattr(runs, "now_iso", slow_stamp)
    thread = threading.Thread(target=api.resume_run, args=(run,))
    resumer.append(thread)
    thread.start()
    assert locked.wait(10)
    assert api.request_stop(run).active  # accepted: a resume is under way
    thread.join(30)
    assert run.stop_requested()
    assert len(workers) == 1


def test_an_old_stop_request_does_not_stop_the_next_part(colours: Path, workers: list):
    from cnn_core import api
    from cnn_core.runs import STOP

    run = resumable(colours)
    run.file(STOP).write_text("from the last part\n")
    os.utime(run.file(STOP), (1, 1))
    api.resume_run(run)
    assert not run.stop_requested()
    assert api.request_stop(run).active
    assert run.stop_requested()


# --- a hand-edited evaluation -------------------------------------------------------------------


def stored_report(run: Run, source: str) -> None:
    from cnn_core.runs import EVALUATION, MODEL, PREDICTIONS

    row = {"class": "red", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    report = {"accuracy": 1.0, "loss": 0.1, "n": 1, "class_names": ["red"], "per_class": [row]}
    report |= {"confusion_matrix": [[1]], "data_source": source, "data_fingerprint": "x"}
    run.file(MODEL).write_bytes(b"not read here")
    report["model_mtime"] = run.file(MODEL).stat().st_mtime_ns
    run.file(PREDICTIONS).write_bytes(b"")
    atomic_write_json(run.file(EVALUATION), report)


@pytest.mark.parametrize("source", ["/", "/..", "relative/data", "/no/such/folder", "", "\x00"])
def test_a_hand_edited_data_source_is_refused_before_it_is_walked(
    source: str, colours: Path, monkeypatch: pytest.MonkeyPatch
):
    import cnn_core.data.cache as cache
    from cnn_core import evaluate

    def walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stored data_source was walked")

    monkeypatch.setattr(cache, "walk_folder", walk)
    run = resumable(colours)
    stored_report(run, source)
    report, problem = evaluate.stored_evaluation(run)
    assert report is None and "data_source" in problem, problem
    assert not evaluate._is_current(run, run.evaluation(), source)


# --- a long history -----------------------------------------------------------------------------


def test_a_long_history_is_parsed_once_then_only_what_was_appended(monkeypatch: pytest.MonkeyPatch):
    import csv

    import cnn_core.runs as runs_module
    from cnn_core.runs import atomic_write_text, format_history, parse_history

    run = new_run()
    rows = [{"epoch": e, "accuracy": 0.5, "loss": 1.0, "val_accuracy": 0.4} for e in range(50_000)]
    atomic_write_text(run.file(HISTORY), format_history(rows))
    assert len(run.history()) == 50_000

    parsed = []

    class CountingCsv:
        DictWriter = csv.DictWriter

        def reader(self, lines, *args, **kwargs):
            for record in csv.reader(lines, *args, **kwargs):
                parsed.append(record)
                yield record

    monkeypatch.setattr(runs_module, "csv", CountingCsv())
    rows.append({"epoch": 50_000, "accuracy": 0.9, "loss": 0.1, "val_accuracy": 0.8})
    text = format_history(rows)
    monkeypatch.undo()
    atomic_write_text(run.file(HISTORY), text)  # rewritten whole, as training does
    monkeypatch.setattr(runs_module, "csv", CountingCsv())
    history = run.history()
    assert len(history) == 50_001 and history[-1]["accuracy"] == 0.9
    assert len(parsed) <= 2, len(parsed)  # the new row (and no more)

    # A history rewritten shorter (a resume from an earlier checkpoint), or changed at its end,
    # is read again from the start.
    del rows[40_000:]
    rows[-1]["loss"] = 0.25
    monkeypatch.undo()
    atomic_write_text(run.file(HISTORY), format_history(rows))
    assert run.history() == parse_history(run.file(HISTORY).read_text())
    assert len(run.history()) == 40_000 and run.history()[-1]["loss"] == 0.25
    rows[-1]["loss"] = 0.5  # same length, changed in the last row
    atomic_write_text(run.file(HISTORY), format_history(rows))
    assert run.history()[-1]["loss"] == 0.5
    text = run.file(HISTORY).read_text()
    run.file(HISTORY).write_text(text + "40000,0.5")  # a row being written: not yet complete
    assert len(run.history()) == 40_000
    run.file(HISTORY).write_text(text + "40000,0.5,1.0,0.4,,,\n")
    assert len(run.history()) == 40_001


# --- read-only and unreadable folders -------------------------------------------------------------
# The drills run as root, which permissions do not stop, so the refusals are the kernel's errors
# raised where it would raise them.


def refuse(monkeypatch: pytest.MonkeyPatch, target: object, name: str, inside: Path, code: int):
    original = getattr(target, name)

    def refused(*args: object, **kwargs: object):
        path = str(args[0] if args else kwargs.get("dir", ""))  # mkstemp: dir= only
        if path.startswith(str(inside)):
            raise OSError(code, os.strerror(code), path)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, refused)


def test_an_unreadable_runs_folder_is_said_clearly(monkeypatch: pytest.MonkeyPatch, capsys):
    import errno

    from support import open_page

    from cnn_core.cli import main
    from reliability.kit import messages

    new_run()
    refuse(monkeypatch, Path, "iterdir", runs_root(), errno.EACCES)
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the runs folder" in err and "bug" not in err, err
    for page in ("runs", "evaluate", "predict"):
        shown = " ".join(messages(open_page(page)))
        assert "cannot read the runs folder" in shown, (page, shown)


def test_one_unreadable_run_is_listed_as_such(monkeypatch: pytest.MonkeyPatch):
    import errno

    import cnn_core.runs as runs_module

    good = new_run(state="completed")
    bad = new_run(state="completed")
    refuse(monkeypatch, runs_module.os, "open", bad.path, errno.EACCES)
    rows = {row["run"]: row for row in map(run_row, list_runs())}
    assert rows[good.name]["state"] == "completed"
    assert "Permission denied" in rows[bad.name]["problem"], rows[bad.name]


def test_a_read_only_runs_folder_gives_clear_messages(
    colours: Path, workers: list, monkeypatch: pytest.MonkeyPatch, capsys
):
    import errno
    import tempfile

    from cnn_core import api
    from cnn_core.cli import main
    from cnn_core.errors import UserError

    run = resumable(colours)
    api.resume_run(run)  # claimed by its (stand-in) worker
    refuse(monkeypatch, tempfile, "mkstemp", runs_root(), errno.EROFS)
    refuse(monkeypatch, Path, "mkdir", runs_root(), errno.EROFS)
    assert main(["stop", run.name]) == 2
    err = capsys.readouterr().err
    assert "cannot ask run" in err and "Read-only file system" in err and "bug" not in err, err
    with pytest.raises(UserError, match=r"cannot create (a run|the runs) folder"):
        create_run(TINY, TrainConfig(epochs=1), data_source="unused", root=runs_root())


@pytest.mark.slow
def test_an_evaluation_in_a_read_only_run_is_shown_not_lost(
    colours: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    import errno
    import tempfile

    from cnn_core.cli import main
    from reliability.kit import make_model_run

    run = make_model_run(runs_root(), data_source=str(colours))
    refuse(monkeypatch, tempfile, "mkstemp", run.path, errno.EROFS)
    assert main(["evaluate", run.name]) == 0
    out, err = capsys.readouterr()
    assert "test accuracy" in out and "on 3 images" in out, out
    assert "could not be saved" in err and "Read-only file system" in err, err


@pytest.mark.parametrize("name", ["model.keras", "predictions.npz"])
def test_a_fifo_model_or_predictions_file_hangs_nothing(name: str):
    run = new_run(state="completed")
    os.mkfifo(run.file(name))
    out = in_child(
        f"""
        from cnn_core.errors import UserError
        from cnn_core.evaluate import read_predictions
        from cnn_core.predict import load_run_model
        from cnn_core.runs import open_run
        run = open_run({run.name!r})
        print("predictions", read_predictions(run))
        try:
            load_run_model(run)
        except UserError as exc:
            print(exc)
        """,
        seconds=60,
    )
    assert "predictions None" in out
    if name == "model.keras":
        assert "not a regular file" in out, out


def test_the_pages_list_a_damaged_run_beside_the_others():
    from support import open_page

    good = new_run(state="completed", epochs_completed=3)
    bad = new_run(state="running", pid="1")
    table = open_page("runs").dataframe[0].value
    rows = {row["run"]: row for row in table.to_dict("records")}
    assert rows[good.name]["state"] == "completed"
    assert "pid" in rows[bad.name]["problem"]
    for page in ("train", "evaluate", "predict"):
        open_page(page, run=bad.name)  # no exception: kit.rerun asserts it
