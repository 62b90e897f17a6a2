"""Who may do what with runs and datasets on a shared server, and the record of what they did.

Nothing here knows about Streamlit: the dashboard says who is signed in (`Principal`), and these
functions decide. On a dashboard that is not shared (`settings.shared_mode()` off) there is one
user, who may do everything; nothing is refused and nothing is recorded.

- A run's owner is the user who started it, in the run's `owner.json`. Only the owner, or an
  admin (`CNN_CORE_ADMINS`), sees a run and may stop, resume, delete or download it.
- A search's owner likewise (in its folder, see `cnn_core.search`): every trial is a
  run of theirs, under their limits. Everyone sees the search; only they or an admin control it.
- Per-user limits: runs training at once (`CNN_CORE_USER_MAX_RUNNING`: a user's further runs wait
  in the queue without holding up other users' runs), runs waiting (`CNN_CORE_USER_MAX_QUEUED`:
  Start is refused beyond), and disk used by the user's runs (`CNN_CORE_USER_MAX_DISK_GB`).
- Datasets only from configured roots (`CNN_CORE_DATA_ROOTS`) or the user's own uploads; a typed
  path outside them gets the same message whether or not it exists.
- An append-only audit log (`audit.jsonl` in the runs root): who started, stopped, resumed,
  deleted and downloaded what, and when.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnn_core import settings
from cnn_core.errors import UserError
from cnn_core.runs import Run, State, now_iso, runs_root

AUDIT = "audit.jsonl"
ACTIONS = ("start", "stop", "resume", "delete", "download")


class AccessError(UserError):
    """Something the signed-in user may not do on a shared server."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is asking: `user` None on a dashboard that is not shared (one user, every right)."""

    user: str | None
    admin: bool = False

    @property
    def unrestricted(self) -> bool:
        return self.user is None or self.admin


def principal(user: str | None) -> Principal:
    """The principal for a signed-in user (None: not shared). Admins come from the settings."""
    if user is None or not settings.shared_mode():
        return Principal(None)
    return Principal(user, admin=user.lower() in settings.admins())


# ------------------------------------------------------------------------------------- owners


def record_owner(run: Run, who: Principal) -> None:
    """Write the run's owner (nothing on a dashboard that is not shared)."""
    if who.user is not None:
        run.write_owner(who.user)


def owner_of(run: Run) -> str | None:
    """The user who started the run; None for a run made outside shared mode (an admin's)."""
    data = run.owner() or {}
    user = data.get("user")
    return user if isinstance(user, str) and user else None


def may_use(who: Principal, run: Run) -> bool:
    """Whether `who` may see the run and stop, resume, delete or download it."""
    return may_control(who, owner_of(run))


def may_control(who: Principal, owner: str | None) -> bool:
    """Whether `who` may control what `owner` started (a run, a search): the owner, an admin,
    or the one user of a dashboard that is not shared. Unowned (None) is the admins'."""
    return who.unrestricted or owner == who.user


def visible(who: Principal, runs: Iterable[Run]) -> list[Run]:
    """The runs `who` may see, in the given order."""
    return [run for run in runs if may_use(who, run)]


def require(who: Principal, run: Run, action: str) -> None:
    """Refuse `action` on someone else's run, with the same words whether or not it exists."""
    if not may_use(who, run):
        raise AccessError(
            f"you cannot {action} run {run.name}: it is not one of your runs (only its owner "
            "and the admins can)."
        )


# ------------------------------------------------------------------------------------- limits


def check_quota(who: Principal, *, root: str | os.PathLike[str] | None = None) -> None:
    """Refuse a new run when the user already has the most runs waiting, or uses the most disk,
    that the settings allow (how many train at once is the queue's business: `may_train_now`)."""
    if who.unrestricted:
        return
    from cnn_core.runs import list_runs

    mine = [run for run in list_runs(root) if owner_of(run) == who.user]
    waiting = sum(1 for run in mine if run.status().state == State.QUEUED)
    limit = settings.user_max_queued()
    if waiting >= limit:
        raise AccessError(
            f"you already have {waiting} run(s) waiting to train, the most allowed per user "
            f"(CNN_CORE_USER_MAX_QUEUED = {limit}); wait for one to start or stop one."
        )
    used = sum(_folder_bytes(run.path) for run in mine)
    cap = settings.user_max_disk_gb() * 1e9
    if used >= cap:
        raise AccessError(
            f"your runs use {used / 1e9:.1f} GB, the most allowed per user "
            f"(CNN_CORE_USER_MAX_DISK_GB = {cap / 1e9:g}); delete runs you no longer need."
        )


def may_train_now(run: Run) -> bool:
    """Whether `run` may take a training slot now: on a shared server, while its owner has fewer
    than `CNN_CORE_USER_MAX_RUNNING` other runs training (liveness from their workers' locks). A
    run that may not waits; the queue lets others' runs pass it (`training.queue.schedule`)."""
    owner = owner_of(run)
    if owner is None or not settings.shared_mode():
        return True
    from cnn_core.runs import list_runs

    training = 0
    for other in list_runs(run.path.parent):
        if other.path == run.path or owner_of(other) != owner:
            continue
        status = other.raw_status()
        if status is not None and status.state == State.RUNNING and other.claimed():
            training += 1
    return training < settings.user_max_running()


def _folder_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


# ----------------------------------------------------------------------------------- datasets


def uploads_for(who: Principal) -> Path:
    """Where the user's uploaded dataset archives are kept: their own folder when shared."""
    base = settings.uploads_dir()
    if who.user is None:
        return base
    digest = hashlib.sha256(who.user.encode("utf-8")).hexdigest()[:16]
    return base / "users" / digest


def check_data_source(who: Principal, source: str) -> None:
    """On a shared server, refuse a typed dataset path outside the configured roots and the
    user's own uploads (the server's default source, `CNN_CORE_DATA`, is allowed); the message
    is the same whether or not the path exists."""
    text = source.strip()
    default = settings.data_source()
    if who.unrestricted or not text or text.lower() == "cifar10" or text == default.strip():
        return
    roots = [Path(root) for root in settings.data_roots()] + [uploads_for(who)]
    try:
        resolved = Path(text).expanduser().resolve()
    except (OSError, RuntimeError):
        resolved = None
    for root in roots:
        try:
            if resolved is not None and resolved.is_relative_to(root.resolve()):
                return
        except OSError:
            continue
    where = ", ".join(str(root) for root in settings.data_roots()) or "none configured"
    raise AccessError(
        f"{source} is not in a dataset folder of this server; use cifar10, upload an archive, "
        f"or a path inside the dataset folders ({where}, CNN_CORE_DATA_ROOTS)."
    )


# ---------------------------------------------------------------------------------- audit log


def audit(
    who: Principal,
    action: str,
    run: str,
    *,
    root: str | os.PathLike[str] | None = None,
    **detail: Any,
) -> None:
    """Append one line to the audit log (on a shared server only): one `write` of a whole line
    to a file opened for appending, so lines from several dashboards never interleave."""
    if who.user is None:
        return
    if action not in ACTIONS:
        raise ValueError(f"unknown audited action {action!r}")
    line = json.dumps({"at": now_iso(), "user": who.user, "action": action, "run": run, **detail})
    path = runs_root(root) / AUDIT
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def audit_entries(*, root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The audit log's entries, oldest first (a damaged line is skipped)."""
    path = runs_root(root) / AUDIT
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
