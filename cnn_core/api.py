"""The Python API the dashboard uses: start, stop, resume and list runs, read what they wrote.

Every call is quick and never imports Keras: training happens in a separate, detached process
(`python -m cnn_core worker RUN`) that outlives a browser refresh or a restarted dashboard.
Evaluation and prediction live in `cnn_core.evaluate` and `cnn_core.predict`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cnn_core import devices, runs, settings
from cnn_core.backends import check_backend
from cnn_core.config import TrainConfig, check_backend_support, check_spec_support
from cnn_core.datasets import check_source
from cnn_core.errors import UserError
from cnn_core.runs import (
    Claim,
    Run,
    RunError,
    RunStatus,
    State,
    claim_run,
    create_run,
    fail_run,
    list_runs,
    now_iso,
    open_run,
    record_launch,
)
from cnn_core.shapes import check_spec
from cnn_core.spec import ModelSpec
from cnn_core.training.queue import waiting_turn

if TYPE_CHECKING:  # the trainer imports Keras: only for the type
    from cnn_core.train import Outcome

__all__ = [
    "launch_run",
    "list_runs",
    "open_run",
    "prepare_run",
    "request_stop",
    "resume_run",
    "spawn_cli",
    "spawn_worker",
    "start_run",
    "zip_run",
]

PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def prepare_run(
    spec: ModelSpec,
    config: TrainConfig,
    *,
    data_source: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Run:
    """Check all that can be known before training, then create the run (state queued).

    Refuses, before anything is written, an unbuildable spec (`SpecError`), a Keras backend that
    is not installed (`BackendError`), a setting that backend or that spec cannot run, or more
    GPUs than this machine has (`ConfigError`), and a
    data source that cannot be a dataset (`DataError`: a wrong path, a single image, an
    unreadable folder). The run records the source resolved to
    an absolute path, so it can be evaluated and resumed from any working directory.
    """
    check_spec(spec)
    check_spec_support(config, spec)  # e.g. fine_tune without a frozen backbone
    check_backend_support(config, check_backend())  # e.g. a setting PyTorch's trainer refuses
    # more GPUs than there are (it would wait for ever); a batch "all" GPUs cannot share
    devices.check_fits(config.devices, batch_size=config.batch_size)
    source = check_source(data_source or settings.data_source())
    return create_run(spec, config, data_source=source, root=root)


def start_run(
    spec: ModelSpec,
    config: TrainConfig,
    *,
    data_source: str | None = None,
    root: str | os.PathLike[str] | None = None,
    detach: bool = True,
) -> Run:
    """`prepare_run`, then `launch_run`: the new run trains in its own process (or, with
    `detach=False`, in this one, returning when it ends)."""
    run = prepare_run(spec, config, data_source=data_source, root=root)
    launch_run(run, detach=detach)
    return run


def resume_run(run: Run, *, more_epochs: int | None = None, detach: bool = True) -> Outcome | None:
    """Continue an interrupted, stopped, failed or diverged run from its last completed epoch,
    or train a finished run for `more_epochs` more.

    The run is claimed before anything else, so of two resumes at once the second is refused
    (`RunBusyError`), and a Stop made from the claim on reaches the worker that trains it."""
    claim = claim_run(run)
    try:
        status = run.status(held=True)  # no other process has it: an `active` state is stale
        if status.active:
            raise RunError(f"run {run.name} is already {status.state}; stop it first.")
        if more_epochs is not None and more_epochs < 1:
            raise RunError("the number of extra epochs must be at least 1.")
        if more_epochs is None and status.epochs_completed >= status.epochs_target:
            raise RunError(
                f"run {run.name} has completed all {status.epochs_target} epochs; ask for more "
                "epochs (e.g. --epochs 5) to train it further."
            )
        check_backend_support(run.config(), check_backend())  # the backend may differ from before
        devices.check_fits(run.config().devices)  # and the machine
        check_source(run.dataset().get("source") or "")  # moved or deleted since: say so now
        queued = replace(
            status,
            state=State.QUEUED,
            pid=None,
            pid_started=None,
            queued_at=now_iso(),
            error=None,
            seconds_before=run.duration(status) or 0.0,  # this part's time adds to the earlier
            started_at=None,
            ended_at=None,
        )
        run.write_status(queued)
    except BaseException:
        claim.close()
        raise
    return launch_run(run, more_epochs=more_epochs, detach=detach, claim=claim)


def request_stop(run: Run) -> RunStatus:
    """Ask the run's process to stop; it ends within one batch and keeps the model. A run that
    is claimed (being resumed, or its worker still starting) is asked too: Stop always wins."""
    status = run.status()
    try:
        asked = run.request_stop_if_held(status.active)
    except OSError as exc:
        raise RunError(
            f"cannot ask run {run.name} to stop: writing its stop request in {run.path} failed "
            f"({exc.strerror}); make the run folder writable."
        ) from None
    if asked and not status.active:
        status = replace(status, state=State.QUEUED)  # a resume is under way: it will stop
    return status


def launch_run(
    run: Run,
    *,
    more_epochs: int | None = None,
    detach: bool = True,
    claim: Claim | None = None,
) -> Outcome | None:
    """Train a queued run: in a detached worker process, or here when `detach` is False (then
    return how it ended; None if it was stopped while it waited in the queue). The process
    that trains it holds its claim (`claim`, else taken here) for as long as it lives; a stop
    request older than the claim is an earlier part's and is ignored."""
    claim = claim or claim_run(run)
    if detach:
        try:
            spawn_worker(run, more_epochs=more_epochs, claim=claim)
        finally:
            claim.close()  # the worker holds it now (or nobody, if it could not start)
        return None
    with claim:
        # This process trains it: errors an earlier worker left in train.log are not about it.
        record_launch(run, os.getpid(), log_offset=run.log_size())
        # Its turn first, then Keras: the GPUs the queue gives count only if Keras was not
        # imported yet in this process (else it trains on the devices it already sees).
        with waiting_turn(run, more_epochs=more_epochs) as slot:
            if slot is None:  # stopped while it waited: the run reads stopped
                return None
            try:
                from cnn_core.train import train_run  # imports Keras: only for foreground training
            except Exception as exc:  # why: a run must not stay "queued" after its trainer is gone
                fail_run(run, library_error(exc))
                raise
            return train_run(run, more_epochs=more_epochs, echo=True, slot=slot)


def library_error(exc: Exception) -> str:
    """What a run says when Keras or its backend cannot even be imported."""
    if isinstance(exc, UserError):
        return str(exc)
    return (
        f"the training libraries could not be loaded ({type(exc).__name__}: {exc}); reinstall "
        "them (pip install -e .) or choose another KERAS_BACKEND."
    )


def spawn_worker(run: Run, *, more_epochs: int | None = None, claim: Claim | None = None) -> int:
    """Start `python -m cnn_core worker RUN` in its own session, handing it the run's `claim`
    (an inherited descriptor: the lock is never free in between); return its pid."""
    args = ["worker", str(run.path)]
    if claim is not None and claim.fd is not None:
        args += ["--claim-fd", str(claim.fd)]
    if more_epochs:
        args += ["--more-epochs", str(more_epochs)]
    with os.fdopen(run.open_log_for_append(), "ab") as log:
        log_offset = log.seek(0, os.SEEK_END)  # the new process's part of the log starts here
        pid = spawn_cli(
            args,
            log,
            pass_fds=(claim.fd,) if claim is not None and claim.fd is not None else (),
            env_defaults={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    record_launch(run, pid, log_offset=log_offset)
    return pid


def spawn_cli(
    args: Sequence[str],
    log: BinaryIO,
    *,
    pass_fds: Sequence[int] = (),
    env_defaults: Mapping[str, str] | None = None,
) -> int:
    """Start `python -m cnn_core ARGS` detached: in its own session (a closed terminal or a
    stopped dashboard leaves it running), this package first on its PYTHONPATH, its output into
    `log` (an open binary file), `env_defaults` set where the environment has not; return its
    pid. A thread reaps it when it ends, so that a finished process does not linger as a zombie.
    The one way the dashboard starts a background job (a run's worker, a search, the finder)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p
    )
    for key, value in (env_defaults or {}).items():
        env.setdefault(key, value)
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_core", *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(pass_fds),
        env=env,
        cwd=os.getcwd(),
    )
    threading.Thread(target=process.wait, daemon=True).start()
    return process.pid


def zip_run(run: Run) -> bytes:
    """The run as a zip (`runs.zip_run`), with its architecture exported as Keras code
    (model.py) when the spec can still be read."""
    from cnn_core.export import export_code  # the builder's: not needed to list or read runs

    try:
        code = export_code(run.spec(), augmentation=run.config().augmentation)
    except UserError:
        code = None
    return runs.zip_run(run, extra={"model.py": code} if code else None)
