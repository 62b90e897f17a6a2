"""Tests for `cnn_core.access` (issue 13, part 1): owners, who sees and controls which run,
per-user limits, dataset roots and the audit log, on a tiny runs root in tmp_path."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cnn_core import access
from cnn_core.access import AccessError, Principal
from cnn_core.config import TrainConfig
from cnn_core.presets import load_preset
from cnn_core.runs import create_run

ALICE, BOB = Principal("alice@example.com"), Principal("bob@example.com")


@pytest.fixture(autouse=True)
def shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNN_CORE_SHARED", "1")
    monkeypatch.setenv("CNN_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CNN_CORE_ADMINS", raising=False)


def new_run(root: Path, who: Principal):  # type: ignore[no-untyped-def]
    run = create_run(
        load_preset("tutorial_cnn").spec, TrainConfig(), data_source="cifar10", root=root
    )
    access.record_owner(run, who)
    return run


def test_each_user_sees_and_controls_only_their_own_runs(tmp_path: Path) -> None:
    mine, theirs = new_run(tmp_path, ALICE), new_run(tmp_path, BOB)
    assert access.visible(ALICE, [mine, theirs]) == [mine]
    assert access.visible(BOB, [mine, theirs]) == [theirs]
    access.require(ALICE, mine, "delete")
    with pytest.raises(AccessError, match=f"cannot delete run {theirs.name}: it is not one"):
        access.require(ALICE, theirs, "delete")


def test_admins_and_a_dashboard_that_is_not_shared_see_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = [new_run(tmp_path, ALICE), new_run(tmp_path, BOB)]
    monkeypatch.setenv("CNN_CORE_ADMINS", "Root@Example.com, other@example.com")
    admin = access.principal("root@example.com")
    assert admin.admin and access.visible(admin, runs) == runs
    assert not access.principal("alice@example.com").admin
    monkeypatch.setenv("CNN_CORE_SHARED", "0")
    local = access.principal("alice@example.com")
    assert local.user is None and access.visible(local, runs) == runs


def test_a_run_without_an_owner_file_belongs_to_the_admins(tmp_path: Path) -> None:
    run = new_run(tmp_path, Principal(None))  # made before the server was shared
    assert access.owner_of(run) is None and access.visible(ALICE, [run]) == []
    run.file("owner.json").write_text("{not json")
    assert access.owner_of(run) is None


def test_the_waiting_runs_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_CORE_USER_MAX_QUEUED", "2")
    new_run(tmp_path, ALICE)  # a new run is queued
    access.check_quota(ALICE, root=tmp_path)
    new_run(tmp_path, ALICE)
    with pytest.raises(AccessError, match=r"2 run\(s\) waiting to train.*USER_MAX_QUEUED = 2"):
        access.check_quota(ALICE, root=tmp_path)
    access.check_quota(BOB, root=tmp_path)  # another user's runs do not count


def test_a_user_at_their_running_limit_waits_and_lets_others_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Liveness is a held worker.lock: this test holds the claims as a live worker would."""
    from cnn_core import runs as runs_module

    monkeypatch.setenv("CNN_CORE_USER_MAX_RUNNING", "1")
    training, waiting, bobs = (
        new_run(tmp_path, ALICE),
        new_run(tmp_path, ALICE),
        new_run(tmp_path, BOB),
    )
    status = training.raw_status()
    runs_module.atomic_write_json(
        training.file("status.json"), {**status.to_dict(), "state": "running"}
    )
    monkeypatch.setattr(runs_module.Run, "claimed", lambda self: True)  # every worker alive
    assert access.may_train_now(bobs) and not access.may_train_now(waiting)
    # Bob's run, queued after Alice's waiting one, is not held up by it
    assert runs_module.queued_ahead(bobs, bobs.raw_status(), eligible=access.may_train_now) == 0
    assert runs_module.queued_ahead(bobs, bobs.raw_status()) == 1  # a plain queue would wait
    monkeypatch.setenv("CNN_CORE_SHARED", "0")
    assert access.may_train_now(waiting)  # not shared: no per-user limit


def test_the_disk_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_CORE_USER_MAX_QUEUED", "100")
    monkeypatch.setenv("CNN_CORE_USER_MAX_DISK_GB", "0.000001")  # 1,000 bytes
    run = new_run(tmp_path, ALICE)
    run.file("model.keras").write_bytes(b"\0" * 2000)
    with pytest.raises(AccessError, match=r"your runs use .*\(CNN_CORE_USER_MAX_DISK_GB"):
        access.check_quota(ALICE, root=tmp_path)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_limit_setting_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CNN_CORE_USER_MAX_QUEUED", value)
    with pytest.raises(Exception, match="CNN_CORE_USER_MAX_QUEUED is"):
        access.check_quota(ALICE)


def test_datasets_only_from_the_roots_and_the_users_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "datasets"
    (data / "pets").mkdir(parents=True)
    monkeypatch.setenv("CNN_CORE_DATA_ROOTS", str(data))
    access.check_data_source(ALICE, str(data / "pets"))
    access.check_data_source(ALICE, "cifar10")
    monkeypatch.setenv("CNN_CORE_DATA", "/srv/the-default-set.tar.gz")  # the operator's choice
    access.check_data_source(ALICE, "/srv/the-default-set.tar.gz")
    access.check_data_source(ALICE, "")
    mine = access.uploads_for(ALICE) / "pets.zip"
    access.check_data_source(ALICE, str(mine))
    assert access.uploads_for(ALICE) != access.uploads_for(BOB)
    messages = []
    for outside in ("/etc/shadow", "/root/.ssh/id_rsa", "/no/such/place", str(data / ".." / "x")):
        with pytest.raises(AccessError) as refused:
            access.check_data_source(ALICE, outside)
        messages.append(str(refused.value).replace(outside, "PATH"))
    assert len(set(messages)) == 1  # the same words whether it exists or not
    with pytest.raises(AccessError):
        access.check_data_source(BOB, str(mine))  # another user's upload
    link = data / "escape"
    link.symlink_to("/etc", target_is_directory=True)
    with pytest.raises(AccessError):
        access.check_data_source(ALICE, str(link / "passwd"))


def test_the_audit_log_is_appended_whole_lines(tmp_path: Path) -> None:
    def write(who: Principal) -> None:
        for i in range(50):
            access.audit(who, "start", f"run-{i}", root=tmp_path, note="x" * 500)

    threads = [threading.Thread(target=write, args=(who,)) for who in (ALICE, BOB)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = access.audit_entries(root=tmp_path)
    assert len(entries) == 100 and {e["user"] for e in entries} == {ALICE.user, BOB.user}
    lines = (tmp_path / access.AUDIT).read_text().splitlines()
    assert all(json.loads(line)["action"] == "start" for line in lines)
    access.audit(Principal(None), "delete", "run-0", root=tmp_path)  # not shared: not recorded
    assert len(access.audit_entries(root=tmp_path)) == 100
    with pytest.raises(ValueError, match="unknown audited action"):
        access.audit(ALICE, "reformat", "run-0", root=tmp_path)
