"""The two file habits with one home (`cnn_core.files`): atomic writes and bounded reads."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cnn_core.files import (
    FileTooLargeError,
    NotRegularFileError,
    atomic_path,
    atomic_write_json,
    read_bounded,
)
from cnn_core.runs import remove_dead_writers_files

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with atomic_path(target, suffix=".keras") as tmp:
        assert tmp.name.endswith(".keras") and tmp.parent == tmp_path
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers still see the old file
    assert target.read_text() == "new"

    def fail_halfway() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_halfway()
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras"
    ]


def test_a_killed_writers_temp_file_is_known_as_litter(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    dead = tmp_path / f".a.json.{2**22 + 5}.zz.tmp"  # a pid above Linux's pid_max: nobody
    dead.write_text("{")
    mine = tmp_path / f".a.json.{os.getpid()}.zz.tmp"
    mine.write_text("{")
    remove_dead_writers_files(tmp_path)  # runs': alive is the kernel's word
    assert not dead.exists() and mine.exists()


def test_read_bounded_refuses_big_files_fifos_and_links(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    assert read_bounded(data, 100) == b"x" * 100
    assert read_bounded(data, 10, partial=True) == b"x" * 10
    assert read_bounded(data, 10, start=95) == b"x" * 5
    with pytest.raises(FileTooLargeError) as too_big:
        read_bounded(data, 99)
    assert too_big.value.size == 100 and too_big.value.cap == 99
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError):
        read_bounded(fifo, 10)  # returns at once: a FIFO with no writer must not block
    with pytest.raises(NotRegularFileError) as folder:
        read_bounded(tmp_path, 10)
    assert folder.value.folder
    link = tmp_path / "link"
    link.symlink_to(data)
    with pytest.raises(OSError, match="link"):
        read_bounded(link, 1000)  # a run's own files are never links
    assert read_bounded(link, 1000, follow_links=True) == b"x" * 100  # a file the user named


def test_no_other_module_renames_a_temp_file_in_place():
    """Temp-then-rename lives in cnn_core.files. The two left write what no helper there fits:
    an upload, whose final name is its content's digest, known only once it is copied, and the
    pixel cache, a sparse file filled in place by many writes."""
    allowed = {"cnn_core/files.py", "cnn_core/uploads.py", "cnn_core/data/pixels.py"}
    found = set()
    for path in [
        *ROOT.glob("cnn_core/**/*.py"),
        *ROOT.glob("pages/*.py"),
        *ROOT.glob("dashboard/*.py"),
    ]:
        if re.search(r"\bos\.replace\(|\bos\.rename\(", path.read_text()):
            found.add(path.relative_to(ROOT).as_posix())
    assert found <= allowed, sorted(found - allowed)


def test_no_other_module_reads_a_file_up_to_a_limit_itself():
    """Bounded reads ("at most N bytes, refuse a FIFO") live in cnn_core.files.read_bounded."""
    found = set()
    for path in [
        *ROOT.glob("cnn_core/**/*.py"),
        *ROOT.glob("pages/*.py"),
        *ROOT.glob("dashboard/*.py"),
    ]:
        if re.search(r"\.read\(\w+ \+ 1\)", path.read_text()):
            found.add(path.relative_to(ROOT).as_posix())
    assert found <= {"cnn_core/files.py"}, sorted(found)


def _sources() -> list[Path]:
    return [*ROOT.glob("cnn_core/**/*.py"), *ROOT.glob("pages/*.py"), *ROOT.glob("dashboard/*.py")]
