"""Hyperparameter search: Optuna proposes, the queue trains, the validation accuracy answers.

A search is a spec, a base configuration and a search space (`SearchSpace`: any training setting
by its key, `learning_rate`, `augmentation.flip`, and any layer parameter by its layer's number,
`1.filters`), declared in JSON (see `parse_space`) or made by `default_space`. Optuna's study
lives in a journal file beside the runs (`<runs root>/.searches/<name>/study.log`), so a search
survives a killed process or machine and goes on where it stopped: started again with the same
name, it reopens the study, waits for (or writes off) the trial that was training, and carries
on. Every trial is an ordinary run, made and queued like any other (`api.prepare_run`,
`api.launch_run`): it shows on the Runs page, can be evaluated, exported and compared, waits for
a device in the queue, and records its search and trial number (`Run.trial`). Its score is its
best validation accuracy; Optuna's pruner (median, or successive halving) stops a trial that is
doing worse than the others at the same epoch, through the run's own stop request. Started on a
shared server, a search belongs to the signed-in user who started it (`search_owner`): every
trial is a run of theirs, made under their limits (`cnn_core.access`).

Pure Python but for Optuna; nothing here imports Keras (the trials train in their own process).
Optuna is imported inside the functions that use it, so that a page can list searches and start
one without importing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnn_core import access, api, runs
from cnn_core.config import SETTING_NAMES, TrainConfig, config_with_settings
from cnn_core.errors import ConfigError, UserError
from cnn_core.files import atomic_write_json, atomic_write_text, read_bounded
from cnn_core.layers import KINDS, WIDTH_KEYS
from cnn_core.runs import Run, State, now_iso
from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec, ModelSpec

KINDS_OF = ("log_uniform", "uniform", "int", "choice")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", None)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
POLL_SECONDS = 0.5
STUDY, LOCK = "study.log", "search.lock"  # in the search's folder, with search.json
# Named apart from a run's files (this folder is not a run):
OWNER = "search-owner.json"  # who started it on a shared server (see `cnn_core.access`)
STOP = "search-stop.request"  # the page asks the search to stop (`request_search_stop`)
MAX_SPACE_BYTES = 100_000


@dataclass(frozen=True)
class Dimension:
    """One thing the search varies: a setting (`learning_rate`) or a layer's parameter
    (`2.filters`, layers counted from 1), over a range or a list of choices."""

    name: str
    kind: str  # one of KINDS_OF
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def layer(self) -> tuple[int, str] | None:
        """(index from 0, parameter) for a layer's parameter, else None."""
        head, dot, param = self.name.partition(".")
        return (int(head) - 1, param) if dot and head.isdigit() else None

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        return {self.kind: [self.low, self.high]}


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    sampler: str = "tpe"
    pruner: str | None = "median"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "space": {d.name: d.to_dict() for d in self.dimensions},
            "sampler": self.sampler,
            "pruner": self.pruner,
        }


def parse_space(
    data: Any, spec: ModelSpec, config: TrainConfig, *, source: str = "the search space"
) -> SearchSpace:
    """A search space from decoded JSON, checked against `spec` and `config`:

        {"version": 1,
         "space": {"learning_rate": {"log_uniform": [1e-4, 1e-2]},
                   "batch_size": {"choice": [32, 64, 128]},
                   "augmentation.flip": {"choice": [true, false]},
                   "1.filters": {"int": [16, 64]},
                   "4.rate": {"uniform": [0.0, 0.5]}},
         "sampler": "tpe", "pruner": "median"}

    A `ConfigError` names the key and what it must be; every end of every range (and every
    choice) must make a valid configuration and a valid spec."""
    if not isinstance(data, dict) or not isinstance(data.get("space"), dict) or not data["space"]:
        raise ConfigError(
            f'{source} must be a JSON object with a "space" of at least one key, such as '
            '{"space": {"learning_rate": {"log_uniform": [0.0001, 0.01]}}}.'
        )
    unknown = set(data) - {"version", "space", "sampler", "pruner"}
    if unknown:
        raise ConfigError(
            f"{source} has unknown key {sorted(unknown)[0]!r}; the keys are version, space, "
            "sampler, pruner."
        )
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(
            f"{source}: sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}."
        )
    pruner = data.get("pruner", "median")
    if pruner not in PRUNERS:
        raise ConfigError(f"{source}: pruner must be median, halving or null; got {pruner!r}.")
    dimensions = tuple(
        _dimension(name, value, spec, source) for name, value in data["space"].items()
    )
    spans = sorted(span for d in dimensions if (span := _repeated(d.name)))
    for (_, last), (first, _) in itertools.pairwise(spans):
        if first <= last:
            raise ConfigError(f"{source}: two repeated blocks overlap; give each layer to one.")
    space = SearchSpace(dimensions, sampler, pruner)
    if sampler == "grid" and any(d.kind != "choice" for d in dimensions):
        raise ConfigError(f'{source}: the grid sampler takes choices only ({{"choice": [...]}}).')
    for d in dimensions:  # every end must make a valid trial
        for value in d.choices if d.kind == "choice" else (d.low, d.high):
            apply(spec, config, {d.name: value}, source=f"{source}: {d.name} = {value!r}")
    return space


def _dimension(name: Any, value: Any, spec: ModelSpec, source: str) -> Dimension:
    where = f"{source}: {name}"
    if not isinstance(name, str):
        raise ConfigError(f"{source}: every key must be a setting or a layer's parameter.")
    head, dot, param = name.partition(".")
    if REPEATS.match(name):
        _check_repeats(name, value, spec, where)
    elif dot and head.isdigit():
        index = int(head) - 1
        if not 0 <= index < len(spec.layers):
            raise ConfigError(
                f"{where}: the spec has layers 1 to {len(spec.layers)}; there is no layer {head}."
            )
        kind = KINDS[spec.layers[index].type]
        if param not in kind.param_names:
            names = ", ".join(kind.param_names) or "none"
            raise ConfigError(
                f"{where}: layer {head} ({kind.name}) has no {param!r}; it has {names}."
            )
    elif name not in SETTING_NAMES:
        raise ConfigError(
            f"{where} is neither a setting (learning_rate, batch_size, augmentation.flip, ...) "
            "nor a layer's parameter (1.filters: layer 1's filters)."
        )
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in KINDS_OF:
        raise ConfigError(
            f'{where} must be one of {{"log_uniform": [low, high]}}, {{"uniform": [low, high]}}, '
            '{"int": [low, high]} or {"choice": [a, b, ...]}.'
        )
    kind, bounds = next(iter(value.items()))
    if kind == "choice":
        if not isinstance(bounds, list) or not bounds or len(bounds) > 100:
            raise ConfigError(f"{where}: choice must be a list of 1 to 100 values.")
        return Dimension(name, kind, choices=tuple(bounds))
    numbers = isinstance(bounds, list) and len(bounds) == 2
    numbers = numbers and all(
        isinstance(b, int | float) and not isinstance(b, bool) for b in bounds
    )
    if not numbers or not all(math.isfinite(b) for b in bounds) or bounds[0] > bounds[1]:
        raise ConfigError(f"{where}: {kind} must be [low, high] with low <= high.")
    if kind == "log_uniform" and bounds[0] <= 0:
        raise ConfigError(f"{where}: log_uniform needs a low above 0.")
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ConfigError(f"{where}: int needs whole numbers.")
    return Dimension(name, kind, float(bounds[0]), float(bounds[1]))


REPEATS = re.compile(r"^(\d+)(?:-(\d+))?\.repeats$")  # "2-3.repeats": layers 2 to 3, k times
MAX_REPEATS = 8


def _repeated(name: str) -> tuple[int, int] | None:
    """(first, last) layers, counted from 0, of a "N-M.repeats" key; None for another key."""
    found = REPEATS.match(name)
    if not found:
        return None
    first = int(found.group(1)) - 1
    return first, int(found.group(2) or found.group(1)) - 1


def _check_repeats(name: str, value: Any, spec: ModelSpec, where: str) -> None:
    first, last = _repeated(name) or (0, 0)
    if not 0 <= first <= last < len(spec.layers):
        raise ConfigError(
            f"{where}: the layers to repeat must lie within 1 to {len(spec.layers)}, first to "
            "last (e.g. 2-3.repeats)."
        )
    counts = value.get("choice") if isinstance(value, dict) else None
    if isinstance(value, dict) and "int" in value and isinstance(value["int"], list):
        counts = value["int"]
    ok = isinstance(counts, list) and counts and all(isinstance(c, int) for c in counts)
    if not ok or not all(1 <= c <= MAX_REPEATS for c in counts):
        raise ConfigError(
            f'{where}: how many times the layers appear: {{"int": [1, 3]}} or {{"choice": [1, '
            f"2]}}, whole numbers from 1 to {MAX_REPEATS}."
        )


def default_space(spec: ModelSpec, config: TrainConfig) -> SearchSpace:
    """The learning rate within 10x either way (log-uniform), weight decay from none to 1e-3,
    and each convolution's filters and dense layer's units within a factor of 2."""
    lr = config.learning_rate
    dimensions = [
        Dimension("learning_rate", "log_uniform", max(lr / 10, 1e-7), min(lr * 10, 10.0)),
        Dimension("weight_decay", "choice", choices=(0.0, 1e-5, 1e-4, 1e-3)),
    ]
    for index, layer in enumerate(spec.layers):
        for param in WIDTH_KEYS:
            value = layer.params.get(param)
            if isinstance(value, int) and param in KINDS[layer.type].param_names:
                low, high = max(1, value // 2), value * 2
                dimensions.append(Dimension(f"{index + 1}.{param}", "int", float(low), float(high)))
    return SearchSpace(tuple(dimensions))


def apply(
    spec: ModelSpec, config: TrainConfig, values: Mapping[str, Any], *, source: str = "the trial"
) -> tuple[ModelSpec, TrainConfig]:
    """The spec and configuration of one trial: `config` with the settings of `values`, `spec`
    with their layer parameters; a `ConfigError` if either is not valid."""
    settings = {k: v for k, v in values.items() if not _is_layer(k) and not _repeated(k)}
    layers = list(spec.layers)
    for name, value in values.items():
        if _is_layer(name):
            head, _, param = name.partition(".")
            index = int(head) - 1
            layers[index] = LayerSpec(layers[index].type, {**layers[index].params, param: value})
    # Repeats last, from the end, so that every key's numbers are the base spec's.
    spans = sorted(((_repeated(k), v) for k, v in values.items() if _repeated(k)), reverse=True)
    for (first, last), times in spans:
        block = layers[first : last + 1]
        layers[first : last + 1] = block * int(times)
    trial_spec = replace(spec, layers=tuple(layers))
    problems = analyze(trial_spec).problems
    if problems:
        raise ConfigError(f"{source} makes the spec invalid: {problems[0].message}")
    trial_config = config_with_settings(config, settings, source=source) if settings else config
    return trial_spec, trial_config


def _is_layer(name: str) -> bool:
    head, dot, _ = name.partition(".")
    return bool(dot) and head.isdigit()


def load_space(path: str | Path, spec: ModelSpec, config: TrainConfig) -> SearchSpace:
    path = Path(path)
    try:
        text = read_bounded(path, MAX_SPACE_BYTES, follow_links=True)
    except OSError as exc:
        raise ConfigError(f"cannot read the search space {path} ({exc}).") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({str(exc)[:80]}).") from None
    return parse_space(data, spec, config, source=str(path))


# --- running a search ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    number: int
    run: str | None  # the run's name
    state: str  # "complete", "pruned", "fail"
    value: float | None  # best validation accuracy
    values: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True)
class SearchResult:
    name: str
    folder: str
    trials: tuple[TrialResult, ...]

    @property
    def best(self) -> TrialResult | None:
        scored = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return max(scored, key=lambda t: t.value) if scored else None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "search": self.name,
            "folder": self.folder,
            "trials": [vars(t) for t in self.trials],
            "best": vars(best) if best else None,
        }


def search_folder(name: str, root: str | Path | None = None) -> Path:
    if not NAME.match(name):
        raise ConfigError(
            f"search name {name!r}: use letters, digits, '.', '_' or '-' (at most 80), "
            "starting with a letter or digit."
        )
    return runs.runs_root(root) / ".searches" / name


@dataclass(frozen=True)
class SearchRequest:
    """What a search is asked to do, as the CLI, the page and the search's own process see it."""

    name: str  # the search's folder under <runs root>/.searches/ (see `search_folder`)
    spec: ModelSpec  # the base spec; the space's layer parameters change it per trial
    config: TrainConfig  # the base configuration; the space's settings change it per trial
    space: SearchSpace
    data_source: str | None  # every trial's data (None: the default source)
    trials: int  # how many trials end (complete, pruned or failed) before it stops
    timeout: float | None = None  # seconds, or None: until `trials` have ended
    root: str | Path | None = None  # the runs root (None: the default one)
    owner: str | None = None  # who started it on a shared server: its trials are their runs


def run_search(
    request: SearchRequest, *, say: Callable[[str], None] = lambda line: None
) -> SearchResult:
    """Run (or continue) the search `request.name` until `request.trials` trials have ended or
    `request.timeout` seconds have passed; every trial trains as a run in the queue."""

    if request.config.validation_split == 0:  # a validation folder, where the data has one, wins
        raise ConfigError(
            "a search scores each trial by its validation accuracy, and validation_split is 0; "
            "set validation_split (0.2 is usual)."
        )
    if not 1 <= request.trials <= 10_000:
        raise ConfigError(f"trials must be from 1 to 10,000; got {request.trials}.")
    folder = search_folder(request.name, request.root)
    folder.mkdir(parents=True, exist_ok=True)
    with _held(folder, request.name):
        (folder / STOP).unlink(missing_ok=True)  # an earlier start's: this one was asked for
        _record_owner(folder, request.owner)
        return _search(request, folder, say)


def _search(request: SearchRequest, folder: Path, say: Callable[[str], None]) -> SearchResult:
    import optuna

    name, spec, config, space = request.name, request.spec, request.config, request.space
    data_source, root = request.data_source, request.root
    definition = {"spec": spec.to_dict(), "config": config.to_dict(), "data_source": data_source}
    definition |= space.to_dict()
    atomic_write_json(folder / "search.json", definition)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=_storage(folder),
        direction="maximize",
        sampler=_sampler(space, optuna),
        pruner=_pruner(space, optuna),
        load_if_exists=True,
    )
    _recover(study, folder, root, say)
    user = search_owner(name, root)  # who started it on a shared server, or None
    owner = access.principal(user)  # their rights and limits (everything, when not shared)
    deadline = None if request.timeout is None else time.monotonic() + request.timeout
    while _ended(study) < request.trials and (deadline is None or time.monotonic() < deadline):
        if stop_requested(folder):
            say(f"search {name}: stopped, as asked")
            break
        access.check_quota(owner, root=root)  # the owner's limits end the search, as a refusal
        trial = study.ask()
        values = {d.name: _suggest(trial, d) for d in space.dimensions}
        try:
            trial_spec, trial_config = apply(spec, config, values, source=f"trial {trial.number}")
            run = api.prepare_run(trial_spec, trial_config, data_source=data_source, root=root)
        except UserError as exc:
            trial.set_user_attr("note", str(exc)[:500])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            say(f"trial {trial.number}: not trained ({exc})")
            continue
        trial.set_user_attr("run", run.name)  # first: a search killed now finds its run again
        run.write_trial({"search": name, "trial": trial.number, "values": values})
        say(f"trial {trial.number}: run {run.name} {values}")
        access.record_owner(run, access.Principal(user))  # before it is queued: limits apply
        api.launch_run(run)
        access.audit(owner, "start", run.name, root=root, search=name, trial=trial.number)
        _watch(study, trial, run, folder, say)
    return summary(study, name, folder)


@contextlib.contextmanager
def _held(folder: Path, name: str) -> Iterator[None]:
    """This process runs the search: an flock on search.lock (freed by the kernel however the
    process ends), so a second start of the same search is refused and the page knows it runs."""
    with open(folder / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"search {name} is already running; wait for it, or give another --name."
            ) from None
        yield


def searching(folder: Path) -> bool:
    """Whether a process runs the search in `folder` now."""
    try:
        handle = open(folder / LOCK, "a+")  # noqa: SIM115
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def _storage(folder: Path) -> Any:
    import optuna

    return optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / STUDY))
    )


def request_search_stop(name: str, root: str | Path | None = None) -> None:
    """Ask the search's process to stop: it stops the trial that is training (through its run's
    stop request, as the Runs page's Stop does), starts no other and ends. Started again, the
    search goes on."""
    atomic_write_text(search_folder(name, root) / STOP, now_iso() + "\n")


def stop_requested(folder: Path) -> bool:
    """Whether the search in `folder` was asked to stop (since it last started)."""
    return (folder / STOP).exists()


def search_owner(name: str, root: str | Path | None = None) -> str | None:
    """The signed-in user who started the search on a shared server; None for one started
    elsewhere (the command line, a dashboard that is not shared): the admins'."""
    try:
        data = json.loads(read_bounded(search_folder(name, root) / OWNER, 10_000))
    except (OSError, ValueError):
        return None
    user = data.get("user") if isinstance(data, dict) else None
    return user if isinstance(user, str) and user else None


def _record_owner(folder: Path, owner: str | None) -> None:
    if owner is not None:
        atomic_write_json(folder / OWNER, {"user": owner, "since": now_iso()})


def list_searches(root: str | Path | None = None) -> list[str]:
    """The searches under the runs root, newest first."""
    folder = runs.runs_root(root) / ".searches"
    try:
        found = [p for p in folder.iterdir() if (p / STUDY).is_file() and NAME.match(p.name)]
    except OSError:
        return []
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def study_stamp(name: str, root: str | Path | None = None) -> tuple[int, int] | None:
    """(size, modification time in ns) of the search's journal, or None if it cannot be read:
    the journal is only ever appended to, so the stamp changes whenever the study does."""
    try:
        found = (search_folder(name, root) / STUDY).stat()
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns


def load_search(name: str, root: str | Path | None = None) -> tuple[SearchResult, Any]:
    """The search's trials so far, and its Optuna study (for the page's plots)."""
    import optuna

    folder = search_folder(name, root)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=_storage(folder))
    return summary(study, name, folder), study


def start_search(request: SearchRequest) -> Path:
    """Start `cnn-workbench search` for `request` in its own process (the dashboard's way);
    its folder."""
    folder = search_folder(request.name, request.root)
    if searching(folder):
        raise ConfigError(f"search {request.name} is already running; give another name.")
    folder.mkdir(parents=True, exist_ok=True)
    _record_owner(folder, request.owner)  # read by the search's process (`search_owner`)
    atomic_write_json(folder / "model.json", request.spec.to_dict())
    atomic_write_json(folder / "base-settings.json", request.config.to_dict())
    atomic_write_json(folder / "space.json", request.space.to_dict())
    args = ["search", str(folder / "model.json"), "--config", str(folder / "base-settings.json")]
    args += ["--space", str(folder / "space.json"), "--trials", str(request.trials)]
    args += ["--name", request.name, "--runs-dir", str(runs.runs_root(request.root))]
    if request.timeout is not None:
        args += ["--timeout", repr(float(request.timeout))]
    if request.data_source:
        args += ["--data", request.data_source]
    with open(folder / "search.log", "ab") as log:
        api.spawn_cli(args, log)
    return folder


def _watch(study: Any, trial: Any, run: Run, folder: Path, say: Callable[[str], None]) -> None:
    """Report each epoch's validation accuracy to the trial until its run ends; stop the run
    if Optuna prunes it, or the search is asked to stop; tell the study how the trial ended."""
    import optuna

    reported = -1
    while True:
        status = run.status()
        for row in run.history():
            if row["epoch"] > reported and row.get("val_accuracy") is not None:
                reported = int(row["epoch"])
                trial.report(float(row["val_accuracy"]), reported)
                if trial.should_prune() and status.active:
                    api.request_stop(run)
                    trial.set_user_attr("pruned_at", reported + 1)
        if status.finished:
            break
        if status.active and stop_requested(folder) and not run.stop_requested():
            api.request_stop(run)  # as the Runs page's Stop: it ends after its batch
        time.sleep(POLL_SECONDS)
    value = status.best_val_accuracy
    pruned = trial.user_attrs.get("pruned_at") is not None
    if status.state == State.STOPPED and not pruned and stop_requested(folder):
        trial.set_user_attr("note", "stopped with the search")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        say(f"trial {trial.number}: stopped with the search")
    elif pruned or (status.state == State.STOPPED and trial.should_prune()):
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        say(f"trial {trial.number}: pruned after epoch {trial.user_attrs.get('pruned_at')}")
    elif status.state == State.COMPLETED and value is not None:
        study.tell(trial, value)
        say(f"trial {trial.number}: validation accuracy {value:.4f}")
    else:
        trial.set_user_attr("note", status.error or f"the run ended {status.state}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        say(f"trial {trial.number}: {status.state} ({status.error})")


def _recover(study: Any, folder: Path, root: str | Path | None, say: Callable[[str], None]) -> None:
    """Trials left running by a search that was killed: wait for their runs (still training
    in their own process), or write them off if their run is gone."""
    import optuna

    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, frozen._trial_id)
        name = frozen.user_attrs.get("run")
        run = runs.Run(runs.runs_root(root) / name) if name else None
        if run is None or not run.exists():
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        say(f"trial {frozen.number}: waiting for run {name}, left training by an earlier start")
        status = run.status()
        if status.state in (State.INTERRUPTED,) and not run.claimed():
            api.resume_run(run)  # its worker died with the search: train it on
        _watch(study, trial, run, folder, say)


def _ended(study: Any) -> int:
    import optuna

    done = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    return len(study.get_trials(deepcopy=False, states=done))


def summary(study: Any, name: str, folder: Path) -> SearchResult:
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append(
            TrialResult(
                number=t.number,
                run=t.user_attrs.get("run"),
                state=t.state.name.lower(),
                value=t.value if t.values else None,
                values=dict(t.params),
                note=t.user_attrs.get("note"),
            )
        )
    return SearchResult(name, str(folder), tuple(trials))


def _suggest(trial: Any, d: Dimension) -> Any:
    if d.kind == "choice":
        return trial.suggest_categorical(d.name, list(d.choices))
    if d.kind == "int":
        return trial.suggest_int(d.name, int(d.low), int(d.high))
    return trial.suggest_float(d.name, d.low, d.high, log=d.kind == "log_uniform")


def _sampler(space: SearchSpace, optuna: Any) -> Any:
    if space.sampler == "random":
        return optuna.samplers.RandomSampler()
    if space.sampler == "grid":
        return optuna.samplers.GridSampler({d.name: list(d.choices) for d in space.dimensions})
    return optuna.samplers.TPESampler()


def _pruner(space: SearchSpace, optuna: Any) -> Any:
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if space.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()
