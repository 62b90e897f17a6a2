"""Runs on disk: the run directory, the only channel between a training process and the UI.

A run is a folder under the runs root (`settings.runs_root()`), named so that it sorts by time and
says what it is (`20261125-101500-tutorial-cnn`). It holds:

    spec.json        the architecture             config.json     the training configuration
    dataset.json     the data source and classes  status.json     state, pid, times, best accuracy
    history.csv      one row per completed epoch  progress.json   the epoch in progress
    model.keras      the model, once one exists   checkpoint-NNNNN.weights.h5  weights + optimizer
                                                  after NNNNN epochs, for resuming
    train.log        the training process's log   evaluation.json the test-set evaluation, once run
    exports.json     the last export per format (SavedModel, ONNX, LiteRT) and its proof
    exports.lock     flock()ed around each update of exports.json (see `Run.write_export`)
    launch.json      the process last started for the run, and where its part of train.log begins
    split.json       which files trained, validated and tested it
    owner.json       who started it, on a shared server   stop.request    a Stop asked for
    worker.lock      flock()ed by the run's process for as long as it lives (see `claim_run`)
    tensorboard/     TensorBoard's event files (train/, validation/), for `tensorboard --logdir`
    mlflow.json      its MLflow run (id, experiment, tracking URI), when MLFLOW_TRACKING_URI is set
    trial.json       the search and trial it was made for, and the values tried (`search`)
    process-<i>.log  the log of process i > 0 of a run trained by several (`FollowingRun`)

This module is the only one that knows these names: everyone else reads and writes them through
`Run` (`run.status()`, `run.write_progress(...)`), and their contents cross as typed values
(`RunStatus`, `Progress`, the `State` and `Phase` string enums, whose values are the strings the
files hold). The training process writes every file atomically (temp file, then rename:
`cnn_core.files`), so readers never see half a file. Readers never write, and read a file only
if it is a regular file of the run's own (not a link, a FIFO or a device) within a size cap, so
no file can hang or flood them. Whether a run's process is alive is the kernel's word, not
status.json's: someone holds worker.lock (a `queued` or `running` run that nobody holds reads as
`failed`, with the first error its process left in train.log, or else as `interrupted`). This
module imports no Keras (nor the builder).
"""

from __future__ import annotations

import contextlib
import csv
import enum
import errno
import fcntl
import io
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cnn_core import files, settings
from cnn_core.config import TrainConfig, config_from_dict
from cnn_core.errors import UserError
from cnn_core.files import (
    UnsafeFileError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_regular,
    open_regular,
    read_bounded,
)
from cnn_core.spec import ModelSpec, spec_from_dict

SPEC = "spec.json"
CONFIG = "config.json"
DATASET = "dataset.json"
STATUS = "status.json"
HISTORY = "history.csv"
PROGRESS = "progress.json"
MODEL = "model.keras"
LOG = "train.log"
LAUNCH = "launch.json"
SPLIT = "split.json"
STOP = "stop.request"
CLAIM = "worker.lock"  # flock()ed by the run's process for as long as it lives
STOP_GUARD = "stop.lock"  # flock()ed while a claim is taken and stamped, or a Stop checks for one
EVALUATION = "evaluation.json"
PREDICTIONS = "predictions.npz"
EXPORTS = "exports.json"  # the last export per format, with its proof (see `cnn_core.deploy`)
EXPORTS_LOCK = "exports.lock"  # flock()ed by whoever updates exports.json, for that moment

OWNER = "owner.json"  # who started the run, on a shared server (see `cnn_core.access`)
TENSORBOARD = "tensorboard"  # a folder: Keras' TensorBoard event files (`tensorboard --logdir`)
MLFLOW = "mlflow.json"  # the run's MLflow run (id, experiment, tracking URI), when it has one
TRIAL = "trial.json"  # the search and trial number a run was made for (see `cnn_core.search`)
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d{5})\.weights\.h5$")  # the epochs it holds


class State(enum.StrEnum):
    """What a run is doing; status.json holds the value (a StrEnum: the same JSON strings)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        """A process will train it, or trains it now."""
        return self in (State.QUEUED, State.RUNNING)

    @property
    def troubled(self) -> bool:
        """It ended for a reason the user should read (its status's `error`)."""
        return self in (State.FAILED, State.DIVERGED, State.INTERRUPTED)


class Phase(enum.StrEnum):
    """What the training process is doing within its state; progress.json holds the value.
    It ends with the state the run ended in."""

    QUEUED = "queued"  # waiting for a training slot
    LOADING = "loading data"
    TRAINING = "training"
    VALIDATING = "validating"
    EPOCH_DONE = "epoch done"
    COMPLETED = "completed"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"


STATES = tuple(State)
ACTIVE = tuple(state for state in State if state.active)
STARTUP_GRACE_SECONDS = 120  # a queued run with no process or launch record is still starting
# Lines a dying training process leaves in train.log: the CLI's one-line errors, Python's
# tracebacks (whose last line names the exception) and interpreter crashes.
_ERROR_LINE = re.compile(r"^(?:error: |unexpected error: |Fatal Python error: )")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b:?")
LOG_TAIL_BYTES = 256 << 10
HISTORY_COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss", "epoch_seconds", "lr")


class RunError(UserError):
    """A run that does not exist, is damaged, or cannot do what was asked right now."""


class RunBusyError(RunError):
    """Another live process holds the run: its worker, or a resume under way."""


# --- files ------------------------------------------------------------------------------------

# The most any reader takes from one run file: a file bigger than this is damaged, not read.
# A run's JSON files are a few kB; evaluation.json grows with the classes' confusion matrix.
DEFAULT_CAP = 16 << 20
CAPS = {EVALUATION: 256 << 20, SPLIT: 256 << 20, HISTORY: 512 << 20, PREDICTIONS: 4 << 30}


def remove_dead_writers_files(folder: Path) -> None:
    """Delete temporary files whose writer (the pid in their name) is gone: a killed process
    leaves its half-written file behind, never in place of the real one."""
    files.remove_dead_writers_files(folder, alive=lambda pid: process_alive(pid, None))


def read_bytes(
    path: Path, *, cap: int | None = None, start: int = 0, partial: bool = False
) -> bytes:
    """The run file's bytes from `start`, if it is a regular file of its own of at most `cap`
    bytes from there (by default its kind's cap), or with `partial` its first `cap` bytes from
    there; raises OSError (`UnsafeFileError` for the refused kinds)."""
    path = Path(path)
    cap = cap if cap is not None else CAPS.get(path.name, DEFAULT_CAP)
    return read_bounded(path, cap, start=start, partial=partial)


def open_for_append(path: Path) -> int:
    """A descriptor appending to `path` (created if missing), if it is a regular file itself:
    opening a FIFO for writing would wait forever for a reader. Raises `RunError`."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        reason = "it is a link" if exc.errno == errno.ELOOP else exc.strerror
        raise RunError(f"cannot write {path} ({reason}); delete or fix that file.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"cannot write {path}: it is not a regular file; delete it.")
    return fd


def read_json(path: Path) -> Any:
    """The decoded file, or None if it is missing, not valid JSON (a damaged file), not a regular
    file or too big."""
    try:
        return json.loads(read_bytes(path).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """What state a run is in; the training process rewrites it at every change."""

    state: State = State.QUEUED
    pid: int | None = None  # the training process
    pid_started: str | None = None  # that process's start time, so a reused pid is not mistaken
    created_at: str | None = None
    queued_at: str | None = None  # when it last joined the queue: queue order, start-up grace
    started_at: str | None = None
    ended_at: str | None = None
    epochs_completed: int = 0
    epochs_target: int = 0
    best_val_accuracy: float | None = None
    best_epoch: int | None = None  # 0-based, as in history.csv
    error: str | None = None  # why it failed, diverged or is damaged
    notes: tuple[str, ...] = ()  # warnings worth showing (batch size clamped, classes adapted)
    seed: int | None = None
    seconds_before: float = 0.0  # time spent training in earlier parts (before the last resume)
    devices: int | None = None  # how many devices the last part trained on (all processes)
    placement: str | None = None  # what they are, as people read it ("2 GPU devices (…)")
    images_per_second: float | None = None  # training throughput of the last epoch, all devices
    not_learning: str | None = None  # why the run seems not to learn (after its first epoch)
    gpus: tuple[int, ...] | None = None  # the GPUs the queue gave it (nvidia-smi's numbers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        data["notes"] = list(self.notes)
        if self.gpus is not None:
            data["gpus"] = list(self.gpus)
        for name in _LATER_FIELDS:  # written once known: an older run's file stays the same
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> RunStatus | None:
        try:
            return cls.parse(data)
        except ValueError:
            return None

    @classmethod
    def parse(cls, data: Any) -> RunStatus:
        """The status that decoded status.json holds; raises ValueError naming the first field
        of the wrong type or out of range (a hand-edited `"pid": "1"`), so that one damaged run
        is reported as such and no reader gets a value it cannot use."""
        if not isinstance(data, dict):
            raise ValueError("it is not a JSON object")
        if "state" not in data:
            raise ValueError("it has no state")
        values: dict[str, Any] = {}
        for name, (check, allowed) in _STATUS_FIELDS.items():
            if name not in data:
                continue
            value = data[name]
            if not check(value):
                raise ValueError(f"{name} is {_shown(value)}, not {allowed}")
            values[name] = value
        values["notes"] = tuple(values.get("notes") or ())
        if values.get("gpus") is not None:
            values["gpus"] = tuple(values["gpus"])
        values["state"] = State(values["state"])
        return cls(**values)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", State(self.state))  # `replace(state="failed")` too

    @property
    def active(self) -> bool:
        return self.state.active

    @property
    def finished(self) -> bool:
        return not self.active


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_in(low: int, high: int, *, optional: bool = False) -> Any:
    def check(value: Any) -> bool:
        if value is None:
            return optional
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    return check


def _number_in(low: float, high: float, *, optional: bool = False) -> Any:
    def check(value: Any) -> bool:
        if value is None:
            return optional
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return is_number and low <= value <= high and math.isfinite(value)  # a huge int: False

    return check


def _text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= 10_000)


# Added after the first format (several devices, the GPU queue, the not-learning warning): left
# out while None, so older files stay the same.
_LATER_FIELDS = ("devices", "placement", "images_per_second", "gpus", "not_learning")
_MANY = 10**9  # more epochs than anyone trains; bounds what a hand-edited file can claim
# Each status.json field: its check, and what it must be (said when it is not).
_STATUS_FIELDS: dict[str, tuple[Any, str]] = {
    "state": (lambda v: isinstance(v, str) and v in STATES, "one of " + ", ".join(STATES)),
    "pid": (_int_in(1, 2**22, optional=True), "a process id"),  # Linux's largest pid_max
    "pid_started": (_text, "text"),
    "created_at": (_text, "a time"),
    "queued_at": (_text, "a time"),
    "started_at": (_text, "a time"),
    "ended_at": (_text, "a time"),
    "epochs_completed": (_int_in(0, _MANY), "a whole number of epochs"),
    "epochs_target": (_int_in(0, _MANY), "a whole number of epochs"),
    "best_val_accuracy": (_number_in(0.0, 1.0, optional=True), "an accuracy from 0 to 1"),
    "best_epoch": (_int_in(0, _MANY, optional=True), "an epoch number"),
    "error": (_text, "text"),
    "notes": (
        lambda v: v is None or (isinstance(v, list) and all(_text(n) and n for n in v)),
        "a list of texts",
    ),
    "seed": (_int_in(-(2**63), 2**64, optional=True), "a whole number"),
    "seconds_before": (_number_in(0.0, 1e12), "a number of seconds"),
    "devices": (_int_in(1, 10**6, optional=True), "a number of devices"),
    "placement": (_text, "text"),
    "images_per_second": (_number_in(0.0, 1e12, optional=True), "a number of images a second"),
    "not_learning": (_text, "text"),
    "gpus": (
        lambda v: v is None or (isinstance(v, list) and all(map(_int_in(0, 10**6), v))),
        "a list of GPU numbers",
    ),
}


# --- progress ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where the training process is within its state; it rewrites progress.json a few times a
    second. Fields it has no value for (no epoch while queued) are left out of the file."""

    phase: Phase | None = None  # None: no progress yet, or a phase this version does not know
    epoch: int | None = None  # 1-based, the epoch in progress
    epochs: int | None = None  # the epochs this part trains to
    batch: int | None = None  # batches of this epoch done
    batches: int | None = None
    images_per_second: float | None = None  # None until measured
    eta_seconds: float | None = None  # None while estimating
    runs_ahead: int | None = None  # queued runs that start first (while queued)
    updated: float | None = None  # when it was written (epoch seconds)

    _EPOCH_FIELDS = ("epoch", "epochs", "batch", "batches", "images_per_second", "eta_seconds")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.phase is not None:
            data["phase"] = str(self.phase)
        if self.epoch is not None:  # the epoch's fields go together, null or not
            data.update({name: getattr(self, name) for name in self._EPOCH_FIELDS})
        for name in ("runs_ahead", "updated"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Progress:
        """The progress decoded progress.json holds; a field of the wrong type (a hand-edited or
        older file) reads as unknown instead of failing."""
        if not isinstance(data, dict):
            return cls()
        values: dict[str, Any] = {}
        phase = data.get("phase")
        if isinstance(phase, str) and phase in Phase._value2member_map_:
            values["phase"] = Phase(phase)
        for name in ("epoch", "epochs", "batch", "batches", "runs_ahead"):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                values[name] = value
        for name in ("images_per_second", "eta_seconds", "updated"):
            value = data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                with contextlib.suppress(OverflowError):  # an int too big for a float
                    number = float(value)
                    values[name] = number if math.isfinite(number) else None
        return cls(**values)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def process_alive(pid: int | None, started: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but is someone else's
    if started is not None:
        current = process_start_time(pid)
        if current is not None and current != started:
            return False  # the pid now belongs to another process
        if current is not None and _is_zombie(pid):
            return False
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# --- runs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A handle on one run directory; every method reads the disk afresh."""

    path: Path
    writes = True  # False for `FollowingRun`: checkpoints and the model are not saved either

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.path.is_dir()

    def raw_status(self) -> RunStatus | None:
        return self._recorded_status()[0]

    def _recorded_status(self) -> tuple[RunStatus | None, str]:
        """status.json as written, or None and why it cannot be used."""
        try:
            data = json.loads(read_bytes(self.file(STATUS)).decode("utf-8"))
        except FileNotFoundError:
            return None, "there is none"
        except UnsafeFileError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"it cannot be read: {exc.strerror}"
        except (ValueError, RecursionError):
            return None, "it is not valid JSON"
        try:
            return RunStatus.parse(data), ""
        except ValueError as exc:
            return None, str(exc)

    def status(self, *, held: bool = False) -> RunStatus:
        """The status as recorded, corrected for a process that is gone: `failed` with the error
        it left in train.log, else `interrupted`. `held`: this process holds the run's claim, so
        no other process trains it, whatever status.json says."""
        if not self.exists():
            return RunStatus(state="failed", error=f"run {self.name} no longer exists.")
        status, damage = self._recorded_status()
        if status is None:
            try:
                target = self.config().epochs
            except UserError:
                target = 0
            done = len(self.history())
            return RunStatus(
                state="interrupted",
                error=f"status.json is missing or damaged ({damage}); the run's other files "
                "are kept: resume the run to rewrite it, or delete the run.",
                epochs_completed=done,
                epochs_target=max(target, done),
            )
        # Alive is what the kernel says: a process holds the run's claim. What status.json says
        # (a pid that may be anyone's, `pid: 1`) decides nothing. `held`: the caller holds it.
        if not status.active or (not held and self.claimed()):
            return status
        launch = self.launch()
        young = _age_seconds(status.queued_at) < STARTUP_GRACE_SECONDS
        if status.pid is None and not held and launch is None and young:
            return status  # created, and not launched yet
        error = first_error(self.log_text(since=(launch or {}).get("log_offset", 0)))
        if error:
            return replace(
                status,
                state="failed",
                error=f"the training process ended with an error: {error} (more in train.log); "
                "fix it and resume the run.",
            )
        return replace(
            status,
            state="interrupted",
            error="the training process stopped unexpectedly (killed or the machine "
            "restarted); resume the run to continue from the last completed epoch.",
        )

    def write_status(self, status: RunStatus) -> None:
        atomic_write_json(self.file(STATUS), status.to_dict())

    def launch(self) -> dict[str, Any] | None:
        """What `record_launch` wrote when the run's process was last started, if anything."""
        data = read_json(self.file(LAUNCH))
        return data if isinstance(data, dict) else None

    def last_activity(self) -> float | None:
        """When the training process last reported progress (epoch seconds), if ever."""
        return self.progress().updated

    def duration(self, status: RunStatus | None = None) -> float | None:
        """Seconds spent training over every part of the run (each resume adds one), or None
        if it has not started. A part whose process was killed ends at its last progress."""
        status = status or self.status()
        if not status.started_at:
            return status.seconds_before or None
        end = _timestamp(status.ended_at)
        if end is None:
            end = time.time() if status.active else self.last_activity()
        start = _timestamp(status.started_at)
        part = max(0.0, end - start) if end is not None and start is not None else 0.0
        return status.seconds_before + part

    def write_spec(self, spec: ModelSpec) -> None:
        atomic_write_text(self.file(SPEC), spec.to_json())

    def write_config(self, config: TrainConfig) -> None:
        atomic_write_text(self.file(CONFIG), config.to_json())

    def spec(self) -> ModelSpec:
        data = read_json(self.file(SPEC))
        if data is None:
            raise RunError(f"run {self.name}: spec.json is missing or damaged.")
        return spec_from_dict(data, source=f"run {self.name}: spec.json")

    def config(self) -> TrainConfig:
        data = read_json(self.file(CONFIG))
        if data is None:
            raise RunError(f"run {self.name}: config.json is missing or damaged.")
        return config_from_dict(data, source=f"run {self.name}: config.json")

    def dataset(self) -> dict[str, Any]:
        """{"source": str, "class_names": [...] once known, ...}."""
        data = read_json(self.file(DATASET))
        return data if isinstance(data, dict) else {}

    def write_dataset(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.file(DATASET), info)

    def write_split(self, split: dict[str, Any]) -> None:
        """Which files trained, validated and tested the run (see `cnn_core.train`)."""
        atomic_write_json(self.file(SPLIT), split)

    def progress(self) -> Progress:
        return Progress.from_dict(read_json(self.file(PROGRESS)))

    def write_progress(self, progress: Progress) -> None:
        """Write `progress`, stamped with the time now (readers tell a stalled process by it).
        Atomic, but not synced to disk: a heartbeat rewritten twice a second that a crash may
        lose without harm (status.json and history.csv, which a resume trusts, are synced);
        syncing it cost 0.5-5 ms a write, up to 40 ms an epoch (bench.bookkeeping)."""
        data = replace(progress, updated=time.time()).to_dict()
        atomic_write_json(self.file(PROGRESS), data, sync=False)

    def history(self) -> list[dict[str, float | None]]:
        """Completed epochs, one dict per row; a damaged row ends the list instead of failing.
        Read incrementally: only what was appended since this process last read it."""
        return _HISTORIES.read(self.file(HISTORY))

    def write_history(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rewrite history.csv whole (readers notice a rewrite: `HistoryReader`)."""
        atomic_write_text(self.file(HISTORY), format_history(rows))

    def evaluation(self) -> EvaluationReport | None:
        """The stored evaluation, or None if there is none or it lacks what a report holds."""
        return EvaluationReport.from_dict(read_json(self.file(EVALUATION)))

    def write_evaluation(self, report: EvaluationReport, predictions: bytes) -> None:
        """The evaluation report and the predictions behind it (an .npz), predictions first:
        a report is never newer than what it was computed from."""
        atomic_write_bytes(self.file(PREDICTIONS), predictions)
        atomic_write_json(self.file(EVALUATION), replace(report, not_saved=None).to_dict())

    def predictions(self) -> bytes:
        """predictions.npz's bytes; raises OSError if it is missing, not a regular file of the
        run's own, or too big."""
        return read_bytes(self.file(PREDICTIONS))

    def has_predictions(self) -> bool:
        return is_regular(self.file(PREDICTIONS))

    def _record(self, name: str, *, key: str, cap: int) -> dict[str, Any] | None:
        """The JSON object in the run's file `name` (read up to `cap` bytes) when its `key` is
        a string; None when the file is missing, too long, damaged or not such an object."""
        try:
            data = json.loads(read_bytes(self.file(name), cap=cap))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get(key), str) else None

    def mlflow(self) -> dict[str, Any] | None:
        """The run's MLflow run (`run_id`, `experiment_id`, `tracking_uri`), or None."""
        return self._record(MLFLOW, key="run_id", cap=10_000)

    def write_mlflow(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.file(MLFLOW), record)

    def trial(self) -> dict[str, Any] | None:
        """The search and trial the run was made for (`search`, `trial`, `values`), or None."""
        return self._record(TRIAL, key="search", cap=100_000)

    def write_trial(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.file(TRIAL), record)

    def exports(self) -> dict[str, dict[str, Any]]:
        """exports.json: the last export per key ("onnx", "litert-int8"...), each as written;
        empty if there is none, and a damaged file or entry is left out, not an error."""
        data = read_json(self.file(EXPORTS))
        if not isinstance(data, dict):
            return {}
        return {key: value for key, value in data.items() if isinstance(value, dict)}

    def write_export(self, key: str, record: dict[str, Any]) -> None:
        """Record one export under `key`, keeping the others. Exports of one run may end at the
        same moment (the CLI and two dashboard tabs): each reads, changes and writes the file
        holding an flock on exports.lock, so none writes over a record another just added."""
        with _locked(self.file(EXPORTS_LOCK)):
            atomic_write_json(self.file(EXPORTS), {**self.exports(), key: record})

    @property
    def model_path(self) -> Path:
        """Where the trained model is (or will be): write it through `files.atomic_path`."""
        return self.file(MODEL)

    def model_mtime(self) -> int:
        """model.keras's modification time (ns); raises OSError if there is none."""
        return self.file(MODEL).stat().st_mtime_ns

    def has_model(self) -> bool:
        return is_regular(self.file(MODEL))

    def checkpoint_path(self, epochs_done: int) -> Path:
        """The checkpoint file after `epochs_done` epochs (the name carries the epoch)."""
        return self.file(f"checkpoint-{epochs_done:05d}.weights.h5")

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(epochs completed, file) for every complete checkpoint, oldest first."""
        found = []
        for path in self.path.iterdir():
            match = CHECKPOINT_RE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def owner(self) -> dict[str, Any] | None:
        """owner.json as written (`{"user": ..., "since": ...}`), if any."""
        data = read_json(self.file(OWNER))
        return data if isinstance(data, dict) else None

    def write_owner(self, user: str) -> None:
        atomic_write_json(self.file(OWNER), {"user": user, "since": now_iso()})

    def request_stop(self) -> None:
        """Ask the run's process to stop (it looks at every batch: `stop_requested`)."""
        atomic_write_text(self.file(STOP), now_iso() + "\n")

    def request_stop_if_held(self, active: bool) -> bool:
        """Ask for a stop if the run is `active` or a live process holds its claim (a resume
        under way, a worker starting); whether it asked. The check and the request happen
        under the stop guard, so a claim racing with it was either stamped before (and this
        newer request reaches it) or taken after (a later part, which it must not stop)."""
        with _locked(self.file(STOP_GUARD)):
            if not (active or self.claimed()):
                return False
            self.request_stop()
            return True

    def clear_stop_request(self) -> None:
        self.file(STOP).unlink(missing_ok=True)

    def stop_requested(self) -> bool:
        """Whether a stop was requested since the run was last claimed: an older request was
        for an earlier part, and a newer one always wins, however it races with a resume."""
        try:
            asked = os.lstat(self.file(STOP)).st_mtime_ns
        except OSError:
            return False
        try:
            claimed = os.lstat(self.file(CLAIM)).st_mtime_ns
        except OSError:
            return True
        return asked >= claimed

    def claimed(self) -> bool:
        """Whether a live process holds the run's claim (its worker, or a resume under way)."""
        try:
            fd = os.open(
                self.file(CLAIM), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            )
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # dropped again by the close below
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False

    @property
    def log_path(self) -> Path:
        """train.log, where the training process logs (appended to by every part)."""
        return self.file(LOG)

    @property
    def tensorboard_dir(self) -> Path:
        """The folder of the run's TensorBoard event files (train/, validation/), so that
        `tensorboard --logdir <runs root>` shows every run by its name."""
        return self.file(TENSORBOARD)

    def log_size(self) -> int:
        try:
            return self.file(LOG).stat().st_size
        except OSError:
            return 0

    def open_log_for_append(self) -> int:
        """A descriptor appending to train.log (see `open_for_append`); raises `RunError`."""
        return open_for_append(self.file(LOG))

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of train.log (read from its last 256 kB: a log may be huge)."""
        try:
            size = os.lstat(self.file(LOG)).st_size
        except OSError:
            return ""
        start = max(0, size - LOG_TAIL_BYTES)
        try:
            data = read_bytes(self.file(LOG), start=start, cap=LOG_TAIL_BYTES, partial=True)
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self, *, since: int = 0) -> str:
        """train.log from byte `since` on (where the last process's part of it begins), at most
        its first 16 MB."""
        try:
            start = max(0, int(since))
        except (ValueError, TypeError, OverflowError):
            start = 0
        try:
            data = read_bytes(self.file(LOG), start=start, cap=DEFAULT_CAP, partial=True)
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")


class FollowingRun(Run):
    """A run as a process other than the first of a run trained by several sees it: it reads
    everything and writes nothing but its own log (`process-<i>.log`), so that the run directory
    keeps one writer. Every `write_*` of `Run` is overridden (tests/test_placement.py checks)."""

    def __init__(self, path: Path, process_id: int) -> None:
        super().__init__(path)
        object.__setattr__(self, "process_id", process_id)

    writes = False

    @property
    def log_path(self) -> Path:
        return self.file(f"process-{self.process_id}.log")

    def write_status(self, status: RunStatus) -> None:
        pass

    def write_spec(self, spec: ModelSpec) -> None:
        pass

    def write_config(self, config: TrainConfig) -> None:
        pass

    def write_dataset(self, info: dict[str, Any]) -> None:
        pass

    def write_split(self, split: dict[str, Any]) -> None:
        pass

    def write_progress(self, progress: Progress) -> None:
        pass

    def write_history(self, rows: Iterable[dict[str, Any]]) -> None:
        pass

    def write_evaluation(self, report: EvaluationReport, predictions: bytes) -> None:
        pass

    def write_export(self, key: str, record: dict[str, Any]) -> None:
        pass

    def write_mlflow(self, record: dict[str, Any]) -> None:
        pass

    def write_trial(self, record: dict[str, Any]) -> None:
        pass

    def write_owner(self, user: str) -> None:
        pass

    def request_stop(self) -> None:
        pass

    def request_stop_if_held(self, active: bool) -> bool:
        return False

    def clear_stop_request(self) -> None:
        pass


class Claim:
    """This process's exclusive hold on a run (an flock on its worker.lock), handed from the
    launcher to the worker it starts; the kernel drops it the moment its last holder dies."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if need be) for the block, waiting for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # why: an update takes milliseconds; wait for it
        yield
    finally:
        os.close(fd)  # drops the lock


CLAIM_WAIT_SECONDS = 0.5  # a reader's check takes the lock for a moment: ride that out


def claim_run(run: Run, *, wait: float = CLAIM_WAIT_SECONDS) -> Claim:
    """Take the run for this process, or raise `RunError` if another one holds it (a worker
    that trains it, or another resume): at most one process ever acts on a run at a time."""
    path = run.file(CLAIM)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise RunError(
            f"run {run.name}: cannot write {CLAIM} in {run.path} ({exc.strerror}); make the runs "
            "folder writable."
        ) from None
    deadline = time.monotonic() + wait
    while True:
        try:
            # Taken and stamped under the stop guard: a Stop that sees the claim held comes
            # after its stamp, so it is newer and reaches this part (see `request_stop_if_held`).
            with _locked(run.file(STOP_GUARD)):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Rewritten on every claim: its time is when this part began.
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {now_iso()}\n".encode(), 0)
                os.utime(fd)
            return Claim(fd)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunBusyError(
                    f"run {run.name} is already being trained, queued or resumed by another "
                    "process; stop it first, or wait for it to end."
                ) from None
            time.sleep(0.01)
        except OSError as exc:
            os.close(fd)
            raise RunError(
                f"run {run.name}: cannot take its claim in {run.path} ({exc.strerror}); make the "
                "runs folder writable."
            ) from None


def adopt_claim(run: Run, fd: int) -> Claim:
    """The claim a launcher handed to this worker as descriptor `fd`; `RunError` if it is not
    the run's claim (flock on the same open file is a no-op for its holder)."""
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(run.file(CLAIM)))
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        same = False
    if not same:
        raise RunError(f"run {run.name}: descriptor {fd} is not its claim; start it with resume.")
    return Claim(fd)


def queued_ahead(
    run: Run, status: RunStatus, *, eligible: Callable[[Run], bool] | None = None
) -> int:
    """Live queued runs, in the same runs root, that were queued before this one (they start
    first). Live means a process holds the run's claim: a stale `queued` blocks nobody; nor does
    one that `eligible` says may not train yet (a shared server's user at their limit)."""
    mine = (status.queued_at or "", run.name)
    ahead = 0
    for other in list_runs(run.path.parent):
        if other.path == run.path:
            continue
        theirs = other.raw_status()
        if theirs is None or theirs.state != "queued":
            continue
        if (theirs.queued_at or "", other.name) < mine and other.claimed():
            ahead += eligible is None or eligible(other)
    return ahead


def first_error(log: str) -> str | None:
    """The first error a dying process wrote to its log: a one-line error, or the exception that
    ends a traceback; None if it wrote none (it was killed)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if _ERROR_LINE.match(line):
            return line.split(": ", 1)[1].strip() if line.startswith("error: ") else line.strip()
        if line.startswith("Traceback (most recent call last)"):
            for after in lines[i + 1 :]:
                if _EXCEPTION_LINE.match(after):
                    return after.strip()
    return None


def record_launch(run: Run, pid: int, *, log_offset: int) -> None:
    """Note the process just started for `run` (before it can write its own status), and where
    its part of train.log begins, so a process that dies while starting is seen as gone."""
    atomic_write_json(
        run.file(LAUNCH),  # the one writer of launch.json; `Run.launch` reads it
        {
            "pid": pid,
            "pid_started": process_start_time(pid),
            "at": now_iso(),
            "log_offset": log_offset,
        },
    )


def fail_run(run: Run, error: str) -> RunStatus:
    """Record that the run's process cannot train at all (e.g. Keras' backend is missing)."""
    status = replace(run.raw_status() or RunStatus(), state="failed", ended_at=now_iso())
    status = replace(status, error=error)
    run.write_status(status)
    return status


@dataclass(frozen=True)
class ClassFigures:
    """One class's row of an evaluation: how often it was found, and how often rightly."""

    name: str  # "class" in evaluation.json
    precision: float
    recall: float
    f1: float
    support: int  # test images of this class

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.name, "precision": self.precision, "recall": self.recall,
                "f1": self.f1, "support": self.support}  # fmt: skip


@dataclass(frozen=True)
class EvaluationReport:
    """A run's test-set evaluation, as evaluation.json holds it (`cnn_core.evaluate` makes it)."""

    accuracy: float
    loss: float
    n: int  # test images
    class_names: tuple[str, ...]
    per_class: tuple[ClassFigures, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted
    data_source: str
    top5_accuracy: float | None = None  # only with more than five classes
    seconds: float | None = None
    data_fingerprint: str | None = None  # the test data's, to tell when it changed
    evaluated_at: str | None = None
    model_mtime: int | None = None  # the model.keras it evaluated (ns)
    not_saved: str | None = None  # why it could not be stored; never in the file
    not_logged: str | None = None  # why MLflow lacks it; kept in the file (it stays true)

    _KEYS = ("accuracy", "loss", "top5_accuracy", "n", "class_names", "per_class",
             "confusion_matrix", "seconds", "data_source", "data_fingerprint", "evaluated_at",
             "model_mtime")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The JSON evaluation.json holds, keys in the order it always had them."""
        data: dict[str, Any] = {key: getattr(self, key) for key in self._KEYS}
        data["class_names"] = list(self.class_names)
        data["per_class"] = [row.to_dict() for row in self.per_class]
        data["confusion_matrix"] = [list(row) for row in self.confusion_matrix]
        if self.not_saved is not None:
            data["not_saved"] = self.not_saved
        if self.not_logged is not None:
            data["not_logged"] = self.not_logged
        return data

    @classmethod
    def from_dict(cls, data: Any) -> EvaluationReport | None:
        """The report decoded JSON holds, or None if it lacks a part the Evaluate page draws:
        a hand-edited or foreign file is treated as no evaluation (it is computed again), not
        shown half. Parts added later (the fingerprint, the model's time) may be missing."""
        if not _complete_report(data):
            return None
        optional = {key: data.get(key) for key in cls._KEYS[7:] if key != "data_source"}
        try:
            return cls(
                accuracy=float(data["accuracy"]),
                loss=float(data["loss"]),
                n=data["n"],
                class_names=tuple(str(name) for name in data["class_names"]),
                per_class=tuple(
                    ClassFigures(
                        str(row["class"]),
                        row["precision"],
                        row["recall"],
                        row["f1"],
                        row["support"],
                    )
                    for row in data["per_class"]
                ),
                confusion_matrix=tuple(tuple(row) for row in data["confusion_matrix"]),
                data_source=data["data_source"],
                top5_accuracy=data.get("top5_accuracy"),
                not_saved=data.get("not_saved"),
                not_logged=data["not_logged"] if isinstance(data.get("not_logged"), str) else None,
                **optional,
            )
        except (TypeError, ValueError, OverflowError):
            return None


def _complete_report(data: Any) -> bool:
    """Whether decoded evaluation.json has every part the Evaluate page draws."""
    if not isinstance(data, dict):
        return False
    kinds = {"accuracy": (int, float), "loss": (int, float), "n": int, "class_names": list}
    kinds |= {"per_class": list, "confusion_matrix": list, "data_source": str}
    if not all(isinstance(data.get(key), kind) for key, kind in kinds.items()):
        return False
    row_keys = {"class", "precision", "recall", "f1", "support"}
    if not all(isinstance(row, dict) and row_keys <= row.keys() for row in data["per_class"]):
        return False
    return all(isinstance(row, list) for row in data["confusion_matrix"])


def parse_history(text: str) -> list[dict[str, float | None]]:
    """Rows of history.csv in epoch order; a truncated or garbled row ends the list."""
    lines = text.splitlines()
    header = next(csv.reader(lines[:1]), None)
    if not header or header[0] != "epoch":
        return []
    rows: list[dict[str, float | None]] = []
    _parse_rows(header, lines[1:], rows)
    return rows


class HistoryReader:
    """Parsed history.csv files, remembered per path with where their parsing stopped, so a
    page that rereads a long history every 1.5 s parses only the rows appended since (a 67 MB
    history took 12-14 s per refresh in full; RELIABILITY.md, section 9). The trainer rewrites
    the file whole at every epoch, so what was parsed is trusted only while the file's first
    line and the bytes just before the stop are unchanged and it has not shrunk; otherwise it is
    read again."""

    CHECK = 4096  # bytes before the stop compared on each read: a rewritten history differs there
    KEEP = 16  # files remembered (least recently read dropped first)

    def __init__(self) -> None:
        self._parsed: dict[str, _ParsedHistory] = {}

    def read(self, path: Path) -> list[dict[str, float | None]]:
        try:
            fd = open_regular(path)
        except OSError:
            self._parsed.pop(str(path), None)
            return []
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > CAPS[HISTORY]:
                return []
            parsed = self._parsed.pop(str(path), None)
            if parsed is None or not parsed.still_holds(handle, size, self.CHECK):
                parsed = _ParsedHistory()
            parsed.extend(handle, self.CHECK)
        self._parsed[str(path)] = parsed  # last: the most recently read
        while len(self._parsed) > self.KEEP:
            self._parsed.pop(next(iter(self._parsed)))
        return parsed.rows + parsed.partial


class _ParsedHistory:
    """One history.csv as parsed so far: its complete lines up to `offset`."""

    def __init__(self) -> None:
        self.header: list[str] | None = None
        self.first_line = b""
        self.offset = 0  # bytes of complete lines parsed (after the last one, a newline)
        self.before = b""  # the CHECK bytes before `offset`, to notice a rewritten file
        self.rows: list[dict[str, float | None]] = []
        self.partial: list[dict[str, float | None]] = []  # a last row with no newline yet
        self.ended = False  # a damaged row ends the list: nothing after it is read

    def still_holds(self, handle: Any, size: int, check: int) -> bool:
        if size < self.offset:
            return False
        handle.seek(0)
        if self.first_line and handle.read(len(self.first_line)) != self.first_line:
            return False
        start = max(0, self.offset - check)
        handle.seek(start)
        return handle.read(self.offset - start) == self.before

    def extend(self, handle: Any, check: int) -> None:
        self.partial = []
        if self.ended:
            return
        handle.seek(self.offset)
        data = handle.read()
        end = data.rfind(b"\n") + 1  # complete lines only; the rest is read again next time
        lines = data[:end].decode("utf-8", errors="replace").splitlines()
        if self.header is None:
            if not lines:
                self.partial = parse_history(data.decode("utf-8", errors="replace"))
                return
            self.first_line = data[: data.index(b"\n") + 1]
            self.header = next(csv.reader([lines[0]]))
            lines = lines[1:]
            if not self.header or self.header[0] != "epoch":
                self.ended = True
                return
        good = _parse_rows(self.header, lines, self.rows)
        if good < len(lines):
            self.ended = True
        else:
            tail = data[end:].decode("utf-8", errors="replace")
            if tail:
                self.partial = []
                _parse_rows(self.header, [tail], self.partial, first_epoch=len(self.rows))
        self.offset += end
        handle.seek(max(0, self.offset - check))
        self.before = handle.read(self.offset - max(0, self.offset - check))


def _parse_rows(
    header: list[str],
    lines: list[str],
    rows: list[dict[str, float | None]],
    *,
    first_epoch: int | None = None,
) -> int:
    """Append the rows that `lines` hold to `rows`, stopping at the first truncated or garbled
    one or one out of epoch order; return how many lines were good."""
    expected = len(rows) if first_epoch is None else first_epoch
    for count, record in enumerate(csv.reader(lines)):
        if len(record) != len(header):
            return count
        try:
            row = {
                key: float(value) if value else None
                for key, value in zip(header, record, strict=True)
            }
        except ValueError:
            return count
        if row["epoch"] != expected:
            return count
        row["epoch"] = expected
        rows.append(row)
        expected += 1
    return len(lines)


_HISTORIES = HistoryReader()


def format_history(rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    columns = list(HISTORY_COLUMNS)
    for row in rows:  # any other metric keeps its column, after the standard ones
        columns += [key for key in row if key not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return out.getvalue()


def _timestamp(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _age_seconds(iso: str | None) -> float:
    stamp = _timestamp(iso)
    return float("inf") if stamp is None else time.time() - stamp


# --- the runs root ----------------------------------------------------------------------------


def runs_root(root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root) if root is not None else settings.runs_root()


def slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:40].strip("-") or "run"


def create_run(
    spec: ModelSpec,
    config: TrainConfig,
    *,
    data_source: str,
    root: str | os.PathLike[str] | None = None,
) -> Run:
    """Make a new run directory holding the spec, configuration and data source, state queued."""
    base = runs_root(root)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the runs folder {base} ({exc.strerror}).") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{slug(spec.name)}"
    for suffix in range(1000):
        path = base / (name if suffix == 0 else f"{name}-{suffix + 1}")
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(
                f"cannot create a run folder in {base} ({exc.strerror}); make it writable, or "
                "set --runs-dir or CNN_CORE_RUNS to another folder."
            ) from None
    else:  # pragma: no cover - a thousand runs in one second
        raise RunError(f"cannot create a run folder in {base}: too many runs this second.")
    run = Run(path)
    run.write_spec(spec)
    run.write_config(config)
    run.write_dataset({"source": data_source})
    now = now_iso()
    status = RunStatus(state="queued", created_at=now, queued_at=now, epochs_target=config.epochs)
    run.write_status(status)
    return run


def open_run(name: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Run:
    """Find a run by folder name or path; refuse anything outside the runs root."""
    base = runs_root(root).resolve()
    text = str(name)
    candidate = Path(text)
    if not candidate.is_absolute() and len(candidate.parts) == 1:
        candidate = base / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError, ValueError):  # ValueError: a null byte in the name
        raise RunError(f"{text[:80]!r} is not a run.") from None
    if resolved.parent != base:
        raise RunError(
            f"{text[:80]} is not a run in the runs folder {base}; pass a run's name or its path "
            "inside that folder (set --runs-dir or CNN_CORE_RUNS to use another folder)."
        )
    try:
        looks_like_run = (resolved / STATUS).exists() or (resolved / SPEC).exists()
    except OSError:  # e.g. a name too long for the file system
        looks_like_run = False
    if not looks_like_run or not resolved.is_dir():
        raise RunError(f"there is no run {resolved.name[:80]} in {base}.")
    return Run(resolved)


def list_runs(root: str | os.PathLike[str] | None = None) -> list[Run]:
    """Every run under the root, newest first."""
    base = runs_root(root)
    try:
        entries = [
            p
            for p in base.iterdir()
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")  # as open_run
        ]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunError(
            f"cannot read the runs folder {base} ({exc.strerror}); make it readable, or set "
            "--runs-dir or CNN_CORE_RUNS to another folder."
        ) from None
    runs = [Run(p) for p in entries if _looks_like_run(p)]
    return sorted(runs, key=lambda run: run.name, reverse=True)


def _looks_like_run(folder: Path) -> bool:
    try:
        return (folder / STATUS).exists() or (folder / SPEC).exists()
    except OSError:  # an unreadable run: listed, and its status says why it cannot be read
        return True


# --- the Runs page's view ---------------------------------------------------------------------


def run_row(run: Run) -> dict[str, Any]:
    """One row of the runs table, read from disk; a damaged run still gets a row."""
    status = run.status()
    row: dict[str, Any] = {
        "run": run.name,
        "state": status.state,
        "architecture": None,
        "parameters": None,
        "epochs": f"{status.epochs_completed}/{status.epochs_target}",
        "best val accuracy": status.best_val_accuracy,
        "test accuracy": None,
        "duration (s)": run.duration(status),
        "trained on": trained_on(status),
        "started": status.started_at or status.created_at,
        "problem": status.error if status.state.troubled else None,
    }
    try:
        from cnn_core.shapes import analyze

        spec = run.spec()
        row["architecture"] = spec.name
        row["parameters"] = analyze(spec).total_params
    except UserError as exc:
        row["problem"] = row["problem"] or str(exc)  # why the status is unusable comes first
    evaluation = run.evaluation()
    if evaluation is not None:
        row["test accuracy"] = evaluation.accuracy
    return row


def trained_on(status: RunStatus) -> str | None:
    """The devices a run trained on, as the runs table shows them ("1 CPU device", "2 GPU
    devices (NVIDIA H200), GPUs 0,1"); None for a run that has not trained (or predates it)."""
    if not status.placement:
        return None
    if status.gpus:
        return f"{status.placement}, GPU{'s' if len(status.gpus) > 1 else ''} " + ",".join(
            str(gpu) for gpu in status.gpus
        )
    return status.placement


def delete_run(run: Run) -> None:
    """Delete a finished run's folder; refuse while it trains (or is being resumed)."""
    try:
        claim = claim_run(run)
    except RunBusyError:
        raise RunError(f"run {run.name} is training; stop it before deleting it.") from None
    with claim:
        status = run.status(held=True)
        if status.active:  # created moments ago and not launched yet
            raise RunError(f"run {run.name} is {status.state}; stop it before deleting it.")
        import shutil

        shutil.rmtree(run.path)


def zip_run(run: Run, *, extra: dict[str, str] | None = None) -> bytes:
    """The run as a zip: model, spec, configuration, history, evaluation and log, plus `extra`
    files (name: text; the exported code, which `cnn_core.api.zip_run` adds: this module knows
    no Keras and no builder)."""
    import zipfile

    buffer = io.BytesIO()
    names = (SPEC, CONFIG, DATASET, STATUS, HISTORY, MODEL, EVALUATION, PREDICTIONS, LOG, SPLIT)
    names += (EXPORTS,)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            # Regular files only: a link inside the run would put whatever it names in the zip.
            try:
                fd = open_regular(run.file(name))
            except OSError:
                continue
            with os.fdopen(fd, "rb") as handle, archive.open(f"{run.name}/{name}", "w") as out:
                while chunk := handle.read(1 << 20):
                    out.write(chunk)
        for name, text in (extra or {}).items():
            archive.writestr(f"{run.name}/{name}", text)
    return buffer.getvalue()
