"""Drafts: the architecture being edited on the Build page, saved so that it survives a refresh.

Each browser session gets a random draft id, kept in its URL (`?draft=...`); the draft itself is a
spec file under the runs root's hidden `.drafts/` folder. Two sessions edit two drafts.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from cnn_core.errors import SpecError
from cnn_core.runs import atomic_write_text, runs_root
from cnn_core.spec import ModelSpec, parse_spec

_ID = re.compile(r"^[a-f0-9]{16}$")


def new_draft_id() -> str:
    return secrets.token_hex(8)


def valid_draft_id(draft_id: str | None) -> bool:
    """Only our own ids: nothing from a URL reaches the file system unchecked."""
    return bool(draft_id) and bool(_ID.match(draft_id))


def _path(draft_id: str, root: str | os.PathLike[str] | None) -> Path:
    if not valid_draft_id(draft_id):
        raise ValueError(f"not a draft id: {draft_id!r}")
    return runs_root(root) / ".drafts" / f"{draft_id}.json"


def load_draft(draft_id: str, *, root: str | os.PathLike[str] | None = None) -> ModelSpec | None:
    """The saved draft, or None if there is none (or it is damaged)."""
    if not valid_draft_id(draft_id):
        return None
    try:
        return parse_spec(_path(draft_id, root).read_bytes())
    except (OSError, SpecError):
        return None


def save_draft(
    draft_id: str, spec: ModelSpec, *, root: str | os.PathLike[str] | None = None
) -> bool:
    """Save the draft; False (and the draft stays in memory only) if the disk refuses."""
    path = _path(draft_id, root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, spec.to_json())
    except OSError:
        return False
    return True
