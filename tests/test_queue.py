"""The queue that shares the GPUs, tested with a fake inventory (`CNN_CORE_GPU_INVENTORY`), since
CI has no GPU: the scheduling rule as a pure function, the wait itself in this process (no
Keras), and one end-to-end test where four 1-GPU runs train at once, each in its own worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support import TINY, wait_for_state, wait_until, write_colours

from cnn_core import api, devices
from cnn_core.config import TrainConfig
from cnn_core.errors import ConfigError, UserError
from cnn_core.runs import Run, create_run, list_runs
from cnn_core.training import queue
from cnn_core.training.queue import Request, Slot, in_turn, schedule


def fake_gpus(path: Path, count: int = 4, busy: dict[int, list[int]] | None = None) -> Path:
    """A fake nvidia-smi answer: `count` GPUs, `busy` giving the pids computing on some."""
    busy = busy or {}
    entries = [{"index": i, "name": "Fake GPU", "busy_pids": busy.get(i, [])} for i in range(count)]
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture
def four_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inventory = fake_gpus(tmp_path / "gpus.json")
    monkeypatch.setenv("CNN_CORE_GPU_INVENTORY", str(inventory))
    return inventory


# --- the rule, as a pure function --------------------------------------------------------


def ask(run: str, at: str, wants: int | None = 1, user: str | None = None) -> Request:
    return Request(run, at, user, wants)


def test_runs_take_the_lowest_free_gpus_in_turn():
    waiting = [ask("a", "1"), ask("b", "2", 2), ask("c", "3")]
    assert schedule(waiting, free=[0, 1, 2, 3], usable=4) == {"a": (0,), "b": (1, 2), "c": (3,)}
    assert schedule(waiting, free=[3, 1], usable=4) == {"a": (1,)}  # b waits, c behind it


def test_a_waiting_big_run_holds_back_later_small_ones():
    waiting = [ask("small", "1"), ask("big", "2", 4), ask("later", "3")]
    assert schedule(waiting, free=[1, 2, 3], usable=4) == {"small": (1,)}
    assert schedule(waiting[1:], free=[1, 2, 3], usable=4) == {}  # GPU 0 is still one of ours
    assert schedule(waiting[1:], free=[0, 1, 2, 3], usable=4) == {"big": (0, 1, 2, 3)}


def test_a_run_waiting_for_another_programs_gpu_lets_others_pass():
    """Four GPUs, one of them another program's: a 4-GPU run may wait for ever, "all" takes 3."""
    waiting = [ask("big", "1", 4), ask("small", "2")]
    assert schedule(waiting, free=[0, 2, 3], usable=3) == {"small": (0,)}
    assert schedule([ask("all", "1", None)], free=[0, 2, 3], usable=3) == {"all": (0, 2, 3)}
    assert schedule([ask("all", "1", None)], free=[0, 2], usable=3) == {}  # waits for ours


def test_a_user_at_their_limit_is_passed():
    waiting = [Request("a", "1", "ann", 1, eligible=False), ask("b", "2", 1, "bob")]
    assert schedule(waiting, free=[0], usable=1) == {"b": (0,)}


def test_users_take_turns_and_each_users_runs_keep_their_order():
    waiting = [ask(f"ann{i}", f"0{i}", user="ann") for i in range(3)]
    waiting += [ask("bob0", "05", user="bob"), ask("bob1", "06", user="bob")]
    order = [r.run for r in in_turn(waiting, training={})]
    assert order == ["ann0", "bob0", "ann1", "bob1", "ann2"]
    busy = [r.run for r in in_turn(waiting, training={"ann": 1})]  # Ann has a run training
    assert busy == ["bob0", "ann0", "bob1", "ann1", "ann2"]
    alone = [ask("x", "2"), ask("y", "1"), ask("z", "3")]  # not shared: one user, plain FIFO
    assert [r.run for r in in_turn(alone, training={None: 2})] == ["y", "x", "z"]


# --- the inventory ----------------------------------------------------------------------


def test_nvidia_smi_output_is_read_with_each_gpus_processes():
    listed = "0, GPU-aaa, NVIDIA H200, 1, 143771\n1, GPU-bbb, NVIDIA H200, 500, 143771\n"
    apps = "GPU-bbb, 4242\nGPU-bbb, 77\n"
    found = devices.parse_nvidia_smi(listed, apps)
    assert [(g.index, g.name, g.busy_pids) for g in found] == [
        (0, "NVIDIA H200", ()),
        (1, "NVIDIA H200", (4242, 77)),
    ]
    assert found[1].memory_used_mb == 500 and devices.describe(found) == "2 GPUs (NVIDIA H200)"
    assert devices.parse_nvidia_smi("No devices were found\n", "") == ()


def test_no_nvidia_smi_or_a_broken_or_hung_one_means_no_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert devices.gpus() == ()  # none installed
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    tool.chmod(0o755)
    assert devices.gpus() == ()
    tool.write_text("#!/bin/sh\nsleep 30\n")
    monkeypatch.setattr(devices, "NVIDIA_SMI_TIMEOUT", 0.3)
    started = time.monotonic()
    assert devices.gpus() == ()
    assert time.monotonic() - started < 5


def test_a_bad_inventory_file_names_the_variable(tmp_path, monkeypatch):
    path = tmp_path / "gpus.json"
    monkeypatch.setenv("CNN_CORE_GPU_INVENTORY", str(path))
    path.write_text('[{"name": "no index"}]')
    with pytest.raises(UserError, match=r"CNN_CORE_GPU_INVENTORY .* must be a list"):
        devices.gpus()


def test_asking_for_more_gpus_than_there_are_is_refused_before_the_run_is_made(four_gpus, tmp_path):
    data = write_colours(tmp_path / "data", train=3, test=1)
    with pytest.raises(ConfigError, match=r"devices 8 asks for more GPUs .*: 4 GPUs \(Fake GPU\)"):
        api.prepare_run(TINY, TrainConfig(devices=8), data_source=str(data), root=tmp_path / "r")
    assert list_runs(tmp_path / "r") == []


# --- the wait, in this process (no Keras) ------------------------------------------------


def queued_run(root: Path, **config: object) -> Run:
    run = create_run(TINY, TrainConfig(epochs=1, **config), data_source="unused", root=root)
    queue.enqueue(run)
    return run


def test_a_gpu_another_program_uses_is_skipped(four_gpus, tmp_path):
    fake_gpus(four_gpus, busy={0: [os.getpid()], 2: [1]})  # no pid of a run of ours
    run = queued_run(tmp_path / "runs", devices=2)
    with queue.training_slot(run, run.raw_status()) as slot:
        assert slot == Slot(gpus=(1, 3))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,3"
        assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # numbered as nvidia-smi does
        assert (tmp_path / "runs" / ".slots" / "gpu-1.lock").read_text() == f"{os.getpid()}\n"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_all_takes_every_gpu_no_other_program_uses(four_gpus, tmp_path):
    fake_gpus(four_gpus, busy={3: [1]})
    run = queued_run(tmp_path / "runs")  # devices null: "all"
    with queue.training_slot(run, run.raw_status()) as slot:
        assert slot == Slot(gpus=(0, 1, 2))


def wait_in_thread(run: Run) -> tuple[threading.Thread, list]:
    got: list = []

    def wait() -> None:
        with queue.training_slot(run, run.raw_status()) as slot:
            got.append(slot)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, got


def test_a_four_gpu_run_waits_while_one_is_taken_and_stop_still_works(four_gpus, tmp_path):
    root = tmp_path / "runs"
    run = queued_run(root, devices=4)
    (root / ".slots").mkdir()
    with open(root / ".slots" / "gpu-2.lock", "a+") as taken:  # another run of ours holds GPU 2
        fcntl.flock(taken, fcntl.LOCK_EX)
        thread, got = wait_in_thread(run)
        time.sleep(3 * queue.QUEUE_POLL)
        assert got == [] and run.progress().phase == "queued"
    thread.join(timeout=10)  # GPU 2 is free again
    assert got == [Slot(gpus=(0, 1, 2, 3))]
    with open(root / ".slots" / "gpu-0.lock", "a+") as taken:
        fcntl.flock(taken, fcntl.LOCK_EX)
        thread, got = wait_in_thread(run)
        run.request_stop()
        thread.join(timeout=10)
    assert got == [None]


def test_asking_for_more_gpus_than_the_machine_now_has_fails_the_run(four_gpus, tmp_path):
    """A run made on a bigger machine (or before a GPU went away) must not wait for ever."""
    run = queued_run(tmp_path / "runs", devices=4)
    fake_gpus(four_gpus, count=2)
    waiting = queue.waiting_turn(run)
    with pytest.raises(ConfigError, match=r"devices 4 asks for more GPUs .*: 2 GPUs"), waiting:
        pass
    status = run.raw_status()
    assert status.state == "failed" and "2 GPUs" in status.error


# --- end to end --------------------------------------------------------------------------


def backend_loaded(pid: int) -> bool:
    """Whether process `pid` has loaded a Keras backend's native library (Linux's maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "python" in maps  # the check can see what a process loaded
    return any(name in maps for name in ("tensorflow", "jaxlib", "torch"))


def test_four_one_gpu_runs_train_at_once_each_on_its_own_gpu(four_gpus, tmp_path):
    """GPU 3 is taken at first: the fourth run waits, without Keras, and starts when it frees."""
    data = write_colours(tmp_path / "data", train=4, test=1)
    config = TrainConfig(epochs=500, batch_size=4, devices=1)
    (tmp_path / "runs" / ".slots").mkdir(parents=True)
    taken = open(tmp_path / "runs" / ".slots" / "gpu-3.lock", "a+")  # noqa: SIM115
    fcntl.flock(taken, fcntl.LOCK_EX)
    started = [
        api.start_run(TINY, config, data_source=str(data), root=tmp_path / "runs") for _ in range(4)
    ]
    try:
        wait_until(lambda: sum(r.status().state == "running" for r in started) == 3, 120)
        (waiting,) = (run for run in started if run.status().state == "queued")
        time.sleep(3 * queue.QUEUE_POLL)
        assert waiting.status().state == "queued" and waiting.progress().phase == "queued"
        assert not backend_loaded(waiting.status().pid)  # it waits before importing Keras
        taken.close()
        statuses = [wait_for_state(run, lambda s: s.state == "running", 120) for run in started]
        assert sorted(s.gpus for s in statuses) == [(0,), (1,), (2,), (3,)]
        assert waiting.status().gpus == (3,) and backend_loaded(waiting.status().pid)
        for run, status in zip(started, statuses, strict=True):
            assert f"CUDA_VISIBLE_DEVICES={status.gpus[0]})" in run.log_text()
            assert json.loads(run.file("status.json").read_text())["gpus"] == list(status.gpus)
    finally:
        taken.close()
        for run in started:
            api.request_stop(run)
        for run in started:
            wait_for_state(run, lambda s: s.finished, 60)


def test_the_queue_alternates_between_users(four_gpus, tmp_path, monkeypatch):
    """One GPU; Ann queued two runs before Bob's one: Bob's goes second, not third. Every
    claim is taken as held, as a live worker's would be."""
    fake_gpus(four_gpus, count=1)
    monkeypatch.setenv("CNN_CORE_SHARED", "1")
    monkeypatch.setenv("CNN_CORE_USER_MAX_RUNNING", "5")
    monkeypatch.setattr(Run, "claimed", lambda self: True)
    root = tmp_path / "runs"
    ann0, ann1, bob0 = (queued_run(root, devices=1) for _ in range(3))
    for second, (run, user) in enumerate(((ann0, "ann@x"), (ann1, "ann@x"), (bob0, "bob@x"))):
        run.write_owner(user)
        run.write_status(replace(run.raw_status(), queued_at=f"2026-12-01T10:00:0{second}"))
    for run, ahead in ((bob0, 1), (ann1, 2)):  # ann0 is first and holds nobody's GPU
        thread, got = wait_in_thread(run)
        wait_until(lambda r=run: r.progress().runs_ahead is not None, 5)
        assert run.progress().runs_ahead == ahead, run.name
        run.request_stop()
        thread.join(timeout=10)
        assert got == [None]


def test_without_gpus_the_slots_are_cpu_runs_as_before(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.setenv("CNN_CORE_MAX_PARALLEL", "1")
    root = tmp_path / "runs"
    first, second = queued_run(root, devices=2), queued_run(root, devices=2)
    with queue.training_slot(first, first.raw_status()) as slot:
        assert slot == Slot(gpus=None) and "CUDA_VISIBLE_DEVICES" not in os.environ
        assert [p.name for p in (root / ".slots").iterdir()] == ["slot-0.lock"]
        thread, got = wait_in_thread(second)
        wait_until(lambda: second.progress().phase == "queued", 5)
        assert got == [] and second.progress().runs_ahead == 0  # behind a run that trains
    thread.join(timeout=10)
    assert got == [Slot(gpus=None)]


def test_a_stop_while_waiting_ends_the_run_stopped_without_keras(four_gpus, tmp_path):
    root = tmp_path / "runs"
    run = queued_run(root, devices=4)
    (root / ".slots").mkdir()
    got: list = []

    def wait() -> None:
        with queue.waiting_turn(run) as slot:
            got.append(slot)

    with open(root / ".slots" / "gpu-0.lock", "a+") as taken:
        fcntl.flock(taken, fcntl.LOCK_EX)
        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        wait_until(lambda: run.progress().phase == "queued", 5)
        run.request_stop()
        thread.join(timeout=10)
    status = run.raw_status()
    assert got == [None] and status.state == "stopped" and status.ended_at
    assert run.progress().phase == "stopped" and not run.stop_requested()


def test_a_batch_that_all_the_gpus_cannot_share_is_refused_before_the_run_is_made(tmp_path):
    from cnn_core.devices import Gpu, batch_misfit, check_fits

    three = tuple(Gpu(i, "Fake GPU") for i in range(3))
    assert batch_misfit(None, 64, three)[1] == 63
    assert batch_misfit(None, 66, three) is None
    assert batch_misfit(2, 64, three) is None  # a count given: the configuration checks it
    assert batch_misfit(None, 64, three[:1]) is None  # one GPU takes any batch
    with pytest.raises(ConfigError, match=r'divide by the 3 GPUs .* that devices "all"'):
        check_fits(None, three, batch_size=64)
