"""The run directory's one owner (`cnn_core.runs.Run`) and its typed contents: states and phases
as string enums, progress as a dataclass, files written in the format older runs have."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_core import errors, runs
from cnn_core.errors import UserError, exit_code_of
from cnn_core.progress import progress_view
from cnn_core.runs import Phase, Progress, Run, RunStatus, State

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = {
    value
    for name, value in vars(runs).items()
    if name.isupper() and isinstance(value, str) and "." in value and "/" not in value
}

# A run written by the code before `Run` owned every file (copied from such a run folder).
OLD_STATUS = """{
 "state": "completed",
 "pid": 4242,
 "pid_started": "123456",
 "created_at": "2026-11-25T10:15:00+00:00",
 "queued_at": "2026-11-25T10:15:00+00:00",
 "started_at": "2026-11-25T10:15:02+00:00",
 "ended_at": "2026-11-25T10:16:40+00:00",
 "epochs_completed": 2,
 "epochs_target": 2,
 "best_val_accuracy": 0.625,
 "best_epoch": 1,
 "error": null,
 "notes": [
  "dataset: class folders."
 ],
 "seed": 7,
 "seconds_before": 0.0
}
"""
OLD_PROGRESS_TRAINING = (
    '{\n "phase": "training",\n "epoch": 2,\n "epochs": 2,\n "batch": 3,\n "batches": 4,\n'
    ' "images_per_second": 812.5,\n "eta_seconds": null,\n "updated": 1764065800.25\n}\n'
)
OLD_PROGRESS_QUEUED = '{\n "phase": "queued",\n "runs_ahead": 1,\n "updated": 1764065800.0\n}\n'


def old_run(tmp_path: Path) -> Run:
    folder = tmp_path / "20261125-101500-tutorial-cnn"
    folder.mkdir()
    (folder / "status.json").write_text(OLD_STATUS)
    (folder / "progress.json").write_text(OLD_PROGRESS_TRAINING)
    (folder / "owner.json").write_text('{"user": "ada", "since": "2026-11-25T10:15:00+00:00"}')
    (folder / "dataset.json").write_text('{"source": "/data/colours", "class_names": ["a"]}')
    (folder / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss,epoch_seconds,lr\n"
        "0,0.5,0.7,0.5,0.69,1.2,0.001\n1,0.75,0.5,0.625,0.6,1.1,0.001\n"
    )
    for epochs in (1, 2):
        (folder / f"checkpoint-{epochs:05d}.weights.h5").write_bytes(b"")
    return Run(folder)


def test_a_run_folder_in_the_old_format_still_reads(tmp_path):
    run = old_run(tmp_path)
    status = run.status()
    assert status.state is State.COMPLETED and status.state == "completed"
    assert (status.epochs_completed, status.best_val_accuracy, status.seed) == (2, 0.625, 7)
    assert status.notes == ("dataset: class folders.",)
    progress = run.progress()
    assert progress.phase is Phase.TRAINING and (progress.batch, progress.batches) == (3, 4)
    assert progress.eta_seconds is None and progress.updated == 1764065800.25
    assert run.last_activity() == 1764065800.25
    assert run.owner() == {"user": "ada", "since": "2026-11-25T10:15:00+00:00"}
    assert [row["epoch"] for row in run.history()] == [0, 1]
    assert [epochs for epochs, _ in run.checkpoints()] == [1, 2]
    # Written again, the files are what they were, byte for byte.
    run.write_status(status)
    assert run.file("status.json").read_text() == OLD_STATUS
    assert json.dumps(progress.to_dict()) == json.dumps(json.loads(OLD_PROGRESS_TRAINING))
    queued = Progress.from_dict(json.loads(OLD_PROGRESS_QUEUED))
    assert queued.to_dict() == json.loads(OLD_PROGRESS_QUEUED)


def test_progress_reads_a_damaged_or_foreign_file_as_unknown(tmp_path):
    run = old_run(tmp_path)
    damaged = '{"phase": "frobbing", "batch": "3", "eta_seconds": 1e999, "updated": 1%s}'
    run.file("progress.json").write_text(damaged % ("0" * 400))  # an int no float can hold
    assert run.progress() == Progress()
    run.file("progress.json").write_text("[1, 2")
    assert run.progress() == Progress()


def test_states_and_phases_are_the_strings_the_files_always_held():
    assert [str(state) for state in State] == [
        "queued", "running", "completed", "stopped", "diverged", "failed", "interrupted"
    ]  # fmt: skip
    assert [s.value for s in Phase] == [
        "queued", "loading data", "training", "validating", "epoch done",
        "completed", "stopped", "diverged", "failed",
    ]  # fmt: skip
    text = json.dumps(RunStatus(state=State.DIVERGED).to_dict())
    assert '"state": "diverged"' in text
    assert json.dumps(Progress(phase=Phase.EPOCH_DONE).to_dict()) == '{"phase": "epoch done"}'
    assert f"{State.RUNNING}" == "running"  # messages that name a state read as before
    assert RunStatus(state="failed").state is State.FAILED  # a plain string becomes the enum
    assert RunStatus.from_dict({"state": "asleep"}) is None  # an unknown state: damaged
    assert RunStatus.from_dict({"state": "queued", "seconds_before": 10**400}) is None
    assert State.QUEUED.active and not State.STOPPED.active and State.FAILED.troubled


def test_exit_codes_follow_the_exception_type_never_its_words():
    assert exit_code_of(UserError("unexpected error: worded like a bug")) == 2
    assert exit_code_of(RuntimeError("error: worded like the user's fault")) == errors.BUG == 1
    assert exit_code_of(OSError(28, "No space left on device")) == 2
    assert exit_code_of(KeyboardInterrupt()) == 130


def test_the_cli_exit_code_comes_from_the_exception_type(monkeypatch, capsys):
    from cnn_core.cli import main

    def user_fault(*args, **kwargs):
        raise UserError("unexpected error: words that once meant a bug")

    monkeypatch.setattr("cnn_core.cli.analyze", user_fault)
    assert main(["validate", "tutorial_cnn"]) == 2
    assert "error: unexpected error: words" in capsys.readouterr().err


def test_a_failed_run_exits_by_the_type_of_what_ended_it(tmp_path, monkeypatch):
    """The worker's exit status: 1 for a bug, 2 for the user's problem, whatever the words."""
    from cnn_core import train
    from cnn_core.config import TrainConfig
    from cnn_core.presets import load_preset
    from cnn_core.training import worker

    spec = load_preset("tutorial_cnn").spec
    for exc, code in ((RuntimeError("error: a bug"), 1), (UserError("unexpected error: x"), 2)):
        run = runs.create_run(spec, TrainConfig(epochs=1), data_source="x", root=tmp_path)

        def fail(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(worker, "_train", fail)
        outcome = train.train_run(run)
        assert outcome.status.state is State.FAILED and run.status().state == "failed"
        assert outcome.exit_code == code, exc


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def _run_file_constants_used(path: Path) -> set[str]:
    """Names of runs' file-name constants a module imports or reads (`runs.STATUS`)."""
    names = {
        name for name, value in vars(runs).items() if isinstance(value, str) and value in RUN_FILES
    }
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "cnn_core.runs":
            used |= {alias.name for alias in node.names if alias.name in names}
        of_runs = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if of_runs and node.value.id == "runs" and node.attr in names:
            used.add(node.attr)
    return used


# Strings equal to a run file's name that are not about a run's file.
NOT_RUN_FILES = {
    ("cnn_core/predict.py", "config.json"),  # a member of the Keras archive model.keras
    ("pages/build.py", "spec.json"),  # the name a downloaded draft is saved under
}


def test_no_module_but_runs_names_a_run_file():
    """Every file in a run is read and written through `Run`: no other module spells a run
    file's name (a literal or runs' constant), so a new run file is a change in runs.py."""
    assert {"status.json", "progress.json", "owner.json", "launch.json", "train.log"} <= RUN_FILES
    found = []
    sources = [
        *ROOT.glob("cnn_core/**/*.py"),
        *ROOT.glob("pages/*.py"),
        *ROOT.glob("dashboard/*.py"),
    ]
    for path in sources:
        module = path.relative_to(ROOT).as_posix()
        if module == "cnn_core/runs.py":
            continue
        for name in _string_constants(path) & RUN_FILES:
            if (module, name) not in NOT_RUN_FILES:
                found.append((module, name))
        found += [(module, constant) for constant in _run_file_constants_used(path)]
    assert not found, found


def test_runs_imports_neither_keras_nor_the_builder():
    code = (
        "import sys, cnn_core.runs, cnn_core.progress; "
        "print(sorted(m for m in ('cnn_core.builder', 'cnn_core.export', 'keras', 'tensorflow') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_the_download_holds_the_exported_code_and_runs_zip_does_not_need_it(tmp_path):
    import io
    import zipfile

    from cnn_core import api
    from cnn_core.config import TrainConfig
    from cnn_core.presets import load_preset

    run = runs.create_run(
        load_preset("tutorial_cnn").spec, TrainConfig(), data_source="x", root=tmp_path
    )
    with zipfile.ZipFile(io.BytesIO(api.zip_run(run))) as archive:
        assert "def build_model() -> keras.Model:" in archive.read(f"{run.name}/model.py").decode()
    with zipfile.ZipFile(io.BytesIO(runs.zip_run(run))) as archive:
        assert f"{run.name}/model.py" not in archive.namelist()
        assert f"{run.name}/spec.json" in archive.namelist()


@pytest.mark.parametrize(
    ("state", "progress", "expected"),
    [
        (
            "queued",
            Progress(phase=Phase.QUEUED, runs_ahead=0),
            ("Waiting for the run before", None),
        ),
        ("queued", Progress(), ("Starting…", None)),
        ("running", Progress(phase=Phase.LOADING), (None, "Loading data")),
        (
            "running",
            Progress(Phase.TRAINING, 1, 3, 5, 10, images_per_second=1234.0, eta_seconds=75),
            (None, "Epoch 1/3, batch 5/10 (training) · 1,234 images/s · about 1 min 15 s left"),
        ),
        (
            "running",
            Progress(Phase.TRAINING, 1, 3, 1, 10),
            (None, "Epoch 1/3, batch 1/10 (training) · estimating the time left"),
        ),
        ("completed", Progress(phase=Phase.COMPLETED), (None, None)),
    ],
)
def test_progress_view_says_where_a_live_run_is(state, progress, expected):
    view = progress_view(RunStatus(state=state), progress)
    waiting, text = expected
    assert (view.waiting or "").startswith(waiting or "") and bool(view.waiting) == bool(waiting)
    if text is None:
        assert view.fraction is None or view.waiting
    else:
        assert view.text == text and 0.0 <= view.fraction <= 1.0


OLD_EVALUATION = {  # evaluation.json as the code before the report was a dataclass wrote it
    "accuracy": 0.75,
    "loss": 0.5,
    "top5_accuracy": None,
    "n": 4,
    "class_names": ["red", "blue"],
    "per_class": [
        {"class": "red", "precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2},
        {"class": "blue", "precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2},
    ],
    "confusion_matrix": [[1, 1], [0, 2]],
    "seconds": 0.25,
    "data_source": "/data/colours",
    "data_fingerprint": "abc",
    "evaluated_at": "2026-11-25T10:20:00+00:00",
    "model_mtime": 1764065800000000000,
}


def test_an_old_evaluation_reads_as_a_report_and_writes_back_the_same(tmp_path):
    from cnn_core.runs import EvaluationReport

    run = old_run(tmp_path)
    run.file("evaluation.json").write_text(json.dumps(OLD_EVALUATION, indent=1))
    report = run.evaluation()
    assert isinstance(report, EvaluationReport)
    assert report.accuracy == 0.75 and report.class_names == ("red", "blue")
    assert report.per_class[1].name == "blue" and report.per_class[1].support == 2
    assert report.confusion_matrix == ((1, 1), (0, 2)) and report.not_saved is None
    assert json.dumps(report.to_dict()) == json.dumps(OLD_EVALUATION)  # same keys, same order
    older = {k: v for k, v in OLD_EVALUATION.items() if k not in ("data_fingerprint", "seconds")}
    assert EvaluationReport.from_dict(older).data_fingerprint is None  # before fingerprints
    for damaged in ({**OLD_EVALUATION, "per_class": [{"class": "red"}]}, {"accuracy": 1}, [1]):
        assert EvaluationReport.from_dict(damaged) is None


# Issue 15: exports of one run that end at the same moment (the CLI, two dashboard tabs) each
# read, change and write exports.json; without a lock around that, one record overwrote another.
RECORD_EXPORTS = """
import sys, time
from pathlib import Path
from cnn_core.runs import Run
run, writer = Run(Path(sys.argv[1])), sys.argv[2]
while not (run.path.parent / "go").exists():  # none starts before the test says go
    time.sleep(0.001)
for i in range(40):
    run.write_export(f"{writer}-{i}", {"format": writer, "n": i})
"""


def test_exports_recorded_at_the_same_moment_by_several_processes_are_all_kept(tmp_path: Path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    writers = ("savedmodel", "onnx", "litert", "litert-int8")
    processes = [
        subprocess.Popen([sys.executable, "-c", RECORD_EXPORTS, str(run.path), w], env=env)
        for w in writers
    ]
    time.sleep(0.5)  # why: each takes a moment to import cnn_core
    (tmp_path / "go").touch()
    assert [p.wait(timeout=120) for p in processes] == [0] * len(writers)
    assert set(run.exports()) == {f"{w}-{i}" for w in writers for i in range(40)}
    assert run.exports()["onnx-39"] == {"format": "onnx", "n": 39}


def test_progress_on_several_devices_says_what_each_device_does():
    from cnn_core.progress import progress_view

    status = RunStatus(state="running", devices=2, placement="2 GPU devices (NVIDIA H200)")
    progress = Progress(Phase.TRAINING, 1, 3, 5, 10, images_per_second=9000.0, eta_seconds=75)
    assert progress_view(status, progress).text == (
        "Epoch 1/3, batch 5/10 (training) · 9,000 images/s on 2 GPU devices (NVIDIA H200) "
        "(4,500 each) · about 1 min 15 s left"
    )


def test_where_a_run_trained_is_said_once_known():
    from cnn_core.progress import placement_text

    assert placement_text(RunStatus()) is None  # before its first epoch, or an older run
    one = RunStatus(devices=1, placement="1 CPU device", images_per_second=5783.2)
    assert placement_text(one) == "on 1 CPU device: 5,783 images/s"
    two = RunStatus(devices=2, placement="2 CPU devices in 2 processes", images_per_second=685.5)
    assert placement_text(two) == "on 2 CPU devices in 2 processes: 686 images/s (343 per device)"


def test_the_runs_table_says_what_each_run_trained_on(tmp_path):
    from dataclasses import replace

    from support import TINY

    from cnn_core.config import TrainConfig
    from cnn_core.runs import create_run, run_row, trained_on

    assert trained_on(RunStatus()) is None
    assert trained_on(RunStatus(placement="1 CPU device", devices=1)) == "1 CPU device"
    gpus = RunStatus(placement="2 GPU devices (NVIDIA H200)", devices=2, gpus=(0, 3))
    assert trained_on(gpus) == "2 GPU devices (NVIDIA H200), GPUs 0,3"
    run = create_run(TINY, TrainConfig(), data_source=str(tmp_path))
    run.write_status(replace(run.status(), placement="1 CPU device", devices=1))
    assert run_row(run)["trained on"] == "1 CPU device"


@pytest.mark.parametrize(
    ("write", "read", "key", "cap"),
    [("write_mlflow", "mlflow", "run_id", 10_000), ("write_trial", "trial", "search", 100_000)],
)
def test_a_runs_small_records_read_back_and_a_bad_one_reads_none(tmp_path, write, read, key, cap):
    from support import TINY

    from cnn_core.config import TrainConfig

    run = runs.create_run(TINY, TrainConfig(), data_source="unused", root=tmp_path)
    assert getattr(run, read)() is None  # not written
    getattr(run, write)({key: "abc", "other": 1})
    assert getattr(run, read)() == {key: "abc", "other": 1}
    path = run.path / {"mlflow": runs.MLFLOW, "trial": runs.TRIAL}[read]
    for damaged in ("{not json", json.dumps([key]), json.dumps({key: 3}), json.dumps({"x": "a"})):
        path.write_text(damaged)
        assert getattr(run, read)() is None, damaged
    path.write_text(json.dumps({key: "abc", "pad": "x" * cap}))  # longer than a record may be
    assert getattr(run, read)() is None
