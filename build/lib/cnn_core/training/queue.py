"""The queue: a run waits, as `queued`, for its turn and for the devices it asks for, then holds
them until it ends. No Keras here: a run's worker waits before it imports Keras, since the GPUs
it is given (`CUDA_VISIBLE_DEVICES`) only count if set before the backend starts.

- On a machine with GPUs (`cnn_core.devices`) the GPUs are the slots: a run takes as many as its
  `devices` asks for; `devices` null ("all") takes every GPU that no other program computes on.
  A GPU that another program (a process that is not one of our runs) computes on is skipped.
- On a machine without GPUs, `settings.max_parallel()` runs train at once (default 1), whatever
  their `devices` (those are the CPU's).
- Turns: first in, first out for each user, and users take turns (`in_turn`); on a machine that
  is not shared there is one user, so the queue is plain first in, first out.
- No starvation (`schedule`): a run that waits for devices our runs hold holds back every run
  after it, so small runs never keep a big one waiting. Only a run that cannot start until
  another program lets go of a GPU lets the runs after it pass.

Each slot (a CPU slot, a GPU) is an `flock`ed file in the runs root's `.slots/`, which holds the
pid of its holder; the kernel frees it the moment its process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from cnn_core import access, devices, runs, settings
from cnn_core.errors import ConfigError, UserError
from cnn_core.runs import Phase, Progress, Run, RunStatus, State, now_iso

QUEUE_POLL = 0.5  # seconds between looks at the queue
INVENTORY_POLL = 2.0  # seconds between asking nvidia-smi, while a run waits
GPU_ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # CUDA numbers the GPUs as nvidia-smi does


def max_parallel() -> int:
    """Runs that may train at once per runs root on a machine without GPUs."""
    return settings.max_parallel()


@dataclass(frozen=True)
class Slot:
    """What the queue gave a run: the GPUs (nvidia-smi's numbers), or a CPU slot (None)."""

    gpus: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Request:
    """A run waiting in the queue, as the scheduler sees it."""

    run: str  # the run's name
    queued_at: str
    user: str | None = None  # its owner on a shared server; None: the one user
    wants: int | None = 1  # slots it asks for; None: every usable one ("all")
    eligible: bool = True  # False: its user trains their most runs at once; others pass it


def in_turn(waiting: Sequence[Request], training: Mapping[str | None, int]) -> list[Request]:
    """`waiting` in the order of their turns: first in, first out for each user, and the users
    take turns: a user's k-th waiting run (from 0) has round k plus the user's runs training now
    (`training`), and rounds go in order, earlier queued first within one."""
    rounds: dict[str, int] = {}
    counts = Counter(training)
    for request in sorted(waiting, key=lambda r: (r.queued_at, r.run)):
        rounds[request.run] = counts[request.user]
        counts[request.user] += 1
    return sorted(waiting, key=lambda r: (rounds[r.run], r.queued_at, r.run))


def schedule(
    queue: Sequence[Request], free: Sequence[int], usable: int
) -> dict[str, tuple[int, ...]]:
    """Which runs of `queue` (in turn order) start now, and with which of the `free` slots:
    each eligible run in turn takes the lowest free slots, as many as it wants (None: `usable`,
    the slots no other program uses). A run that must wait for slots our own runs hold stops the
    walk: nobody after it starts, so it is never starved. A run that wants more than `usable`
    waits for another program to let go, which may never happen: the runs after it pass."""
    left = sorted(free)
    given: dict[str, tuple[int, ...]] = {}
    for request in queue:
        if not request.eligible:
            continue
        wanted = max(usable if request.wants is None else request.wants, 1)
        if wanted > usable:
            continue
        if wanted > len(left):
            break
        given[request.run], left = tuple(left[:wanted]), left[wanted:]
    return given


@dataclass(frozen=True)
class _Pool:
    """The slots as they are now: which are free, and how many no other program uses."""

    kind: str  # "gpu" or "slot" (a CPU slot)
    total: int
    free: tuple[int, ...]
    usable: int


class _Locks:
    """The `flock`ed files of one kind of slot in a runs root's `.slots/`."""

    def __init__(self, folder: Path, kind: str) -> None:
        folder.mkdir(exist_ok=True)
        self.folder, self.kind = folder, kind
        self.handles: dict[int, IO[str]] = {}
        self.held: tuple[int, ...] = ()

    def _handle(self, number: int) -> IO[str]:
        if number not in self.handles:
            path = self.folder / f"{self.kind}-{number}.lock"
            self.handles[number] = open(path, "a+")  # noqa: SIM115 - kept open while held
        return self.handles[number]

    def holder(self, number: int) -> int | None:
        """The pid of the process that holds the slot, 0 if unknown; None if it is free."""
        if number in self.held:
            return os.getpid()
        handle = self._handle(number)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read(32).strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def take(self, numbers: tuple[int, ...]) -> bool:
        """Hold all of `numbers`, or none of them (another process was quicker)."""
        taken = []
        for number in numbers:
            handle = self._handle(number)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                for other in taken:
                    fcntl.flock(self.handles[other], fcntl.LOCK_UN)
                return False
            taken.append(number)
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")  # whose it is: its GPUs' compute apps are ours
            handle.flush()
        self.held = numbers
        return True

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()  # closing releases the lock


def _gpu_pool(found: tuple[devices.Gpu, ...], locks: _Locks) -> _Pool:
    holders = {gpu.index: locks.holder(gpu.index) for gpu in found}
    ours = {pid for pid in holders.values() if pid}
    # A GPU one of our runs holds is ours, whatever else computes on it; another is someone
    # else's while a process that holds none of our GPUs computes on it.
    foreign = {
        gpu.index for gpu in found if holders[gpu.index] is None and set(gpu.busy_pids) - ours
    }
    free = tuple(i for i, pid in holders.items() if pid is None and i not in foreign)
    return _Pool("gpu", len(found), free, len(found) - len(foreign))


def _cpu_pool(locks: _Locks) -> _Pool:
    slots = max_parallel()
    free = tuple(i for i in range(slots) if locks.holder(i) is None)
    return _Pool("slot", slots, free, slots)


def _request(run: Run, status: RunStatus, *, gpus: bool) -> Request:
    return Request(
        run.name,
        status.queued_at or "",
        access.owner_of(run),
        run.config().devices if gpus else 1,
        access.may_train_now(run),
    )


def _waiting(run: Run, status: RunStatus, *, gpus: bool) -> list[Request]:
    """This run and the live queued runs of its runs root (live: a process holds the run's
    claim), in turn order."""
    waiting = [_request(run, status, gpus=gpus)]
    training: Counter[str | None] = Counter()
    for other in runs.list_runs(run.path.parent):
        theirs = other.raw_status() if other.path != run.path else None
        if theirs is None or not theirs.active or not other.claimed():
            continue
        if theirs.state == State.RUNNING:
            training[access.owner_of(other)] += 1
        else:
            with contextlib.suppress(Exception):  # a damaged config: that run fails, not this
                waiting.append(_request(other, theirs, gpus=gpus))
    return in_turn(waiting, training)


def _check_fits(run: Run, found: tuple[devices.Gpu, ...]) -> None:
    try:
        devices.check_fits(run.config().devices, found)
    except ConfigError as exc:  # the machine changed since the run was made: it would wait forever
        raise ConfigError(f"run {run.name}: {exc}") from None


@contextlib.contextmanager
def training_slot(run: Run, status: RunStatus) -> Iterator[Slot | None]:
    """Wait, as `queued`, until it is this run's turn and the devices it asks for are free; hold
    them until the block ends. On a machine with GPUs, `CUDA_VISIBLE_DEVICES` names them for the
    block (it only counts in a process that has not started its backend yet).

    Yields None if a stop was requested while waiting."""
    folder = run.path.parent / ".slots"
    found, asked = devices.gpus(), time.monotonic()
    locks = _Locks(folder, "gpu" if found else "slot")
    saved = {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", *GPU_ORDER)}
    try:
        while True:
            if run.stop_requested():
                yield None
                return
            if found:
                _check_fits(run, found)
            pool = _gpu_pool(found, locks) if found else _cpu_pool(locks)
            queue = _waiting(run, status, gpus=bool(found))
            given = schedule(queue, pool.free, pool.usable).get(run.name)
            if given and locks.take(given):
                run.write_progress(Progress())  # no longer waiting: starting
                break
            ahead = next(i for i, r in enumerate(queue) if r.run == run.name)
            ahead -= sum(not r.eligible for r in queue[:ahead])
            run.write_progress(Progress(phase=Phase.QUEUED, runs_ahead=ahead))
            time.sleep(QUEUE_POLL)
            if found and time.monotonic() - asked >= INVENTORY_POLL:
                # why `or found`: an nvidia-smi that fails once must not turn GPUs into CPU slots
                found, asked = devices.gpus() or found, time.monotonic()
        if not found:
            yield Slot()
            return
        os.environ.update(GPU_ORDER, CUDA_VISIBLE_DEVICES=",".join(map(str, given)))
        yield Slot(gpus=given)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        locks.close()


def enqueue(run: Run, *, more_epochs: int | None = None) -> RunStatus:
    """Write the run's status as `queued` by this process (its pid, the epochs it trains to)."""
    status = run.raw_status() or RunStatus(created_at=now_iso(), queued_at=now_iso())
    pid = os.getpid()
    target = status.epochs_completed + more_epochs if more_epochs else None
    status = replace(
        status,
        state=State.QUEUED,
        queued_at=status.queued_at if status.state == State.QUEUED else now_iso(),
        pid=pid,
        pid_started=runs.process_start_time(pid),
        error=None,
        ended_at=None,
        epochs_target=target or status.epochs_target or run.config().epochs,
        gpus=None,
    )
    run.write_status(status)
    return status


@contextlib.contextmanager
def waiting_turn(run: Run, *, more_epochs: int | None = None) -> Iterator[Slot | None]:
    """`enqueue`, then `training_slot`, for a process that has not imported Keras yet (the
    worker): None if a stop came while it waited, and the run then reads `stopped`."""
    status = enqueue(run, more_epochs=more_epochs)
    with contextlib.ExitStack() as stack:
        try:
            slot = stack.enter_context(training_slot(run, status))
        except UserError as exc:  # e.g. it asks for more GPUs than there are now: it says so
            runs.fail_run(run, str(exc))
            raise
        if slot is None:
            run.write_status(replace(status, state=State.STOPPED, ended_at=now_iso()))
            with contextlib.suppress(OSError):
                run.write_progress(Progress(phase=Phase.STOPPED))
                run.clear_stop_request()
        yield slot
