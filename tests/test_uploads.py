"""Tests for `cnn_core.uploads`: dataset archives saved from a stream, on tiny archives in tmp_path.

Saved by content hash (the same upload twice is one file), refused over the limit or when the
content is not an archive (nothing left behind), and usable as a dataset source afterwards.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from support import folder_files, png_bytes, tar_gz_files, write_colours, zip_files

from cnn_core import settings
from cnn_core.datasets import check_source, inspect_source
from cnn_core.errors import DataError, UserError
from cnn_core.uploads import HASH_DIGITS, save_upload

pytestmark = pytest.mark.usefixtures("cache_in_tmp")


def tree_files() -> dict[str, bytes]:
    """train/ and test/ with two classes of 8x8 PNGs, as archive member names."""
    files = {}
    for split, count in (("train", 3), ("test", 2)):
        for label, name in enumerate(("red", "blue")):
            for i in range(count):
                files[f"digits/{split}/{name}/{i}.png"] = png_bytes(
                    (200 * (1 - label), 0, 200 * label)
                )
    return files


def stored(folder: Path) -> list[Path]:
    """Every file under the uploads folder, temporary ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize(
    ("name", "make"), [("digits.zip", zip_files), ("digits.tar.gz", tar_gz_files)]
)
def test_an_archive_is_saved_by_content_hash_and_is_a_dataset_source(name, make):
    data = make(tree_files())
    saved = save_upload(io.BytesIO(data), name=name)
    assert saved.path.is_absolute() and saved.path.read_bytes() == data
    assert saved.path.parent.parent == settings.uploads_dir().resolve()
    assert saved.path.parent.name == hashlib.sha256(data).hexdigest()[:HASH_DIGITS]
    assert (saved.name, saved.size, saved.path.name) == (name, len(data), name)
    assert stored(settings.uploads_dir()) == [saved.path]  # no temporary file left
    info = inspect_source(saved.path)
    assert info.problem is None, info.problem
    assert check_source(saved.path) == str(saved.path)  # what a run records as its source


def test_the_same_upload_twice_is_one_file():
    data = zip_files(tree_files())
    first = save_upload(io.BytesIO(data), name="digits.zip")
    stream = io.BytesIO(data)
    stream.read()  # a rerun hands the same, already read object over again
    again = save_upload(stream, name="digits.zip")
    renamed = save_upload(io.BytesIO(data), name="copy of digits.zip")
    assert again.path == renamed.path == first.path
    assert renamed.name == "copy of digits.zip"  # shown as uploaded this time
    assert stored(settings.uploads_dir()) == [first.path]
    other = save_upload(
        io.BytesIO(zip_files({"x/train/a/0.png": png_bytes((1, 2, 3))})), name="o.zip"
    )
    assert other.path.parent != first.path.parent
    assert len(stored(settings.uploads_dir())) == 2


def test_over_the_limit_is_refused_with_a_message_and_nothing_is_left():
    data = zip_files(tree_files())
    with pytest.raises(DataError) as caught:
        save_upload(io.BytesIO(data), name="digits.zip", max_bytes=len(data) - 1)
    message = str(caught.value)
    assert "digits.zip" in message and "limit" in message and "\n" not in message
    assert "CNN_CORE_MAX_DATASET_UPLOAD_MB" in message
    assert stored(settings.uploads_dir()) == []


def test_the_limit_is_the_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_UPLOAD_MB", "1")
    assert settings.max_dataset_upload_mb() == 1
    big = zip_files({"a/train/x/0.bin": bytes(range(256)) * 5000})  # stored, not compressed
    with pytest.raises(DataError, match="over the 1 MB limit"):
        save_upload(io.BytesIO(big), name="big.zip")
    assert stored(settings.uploads_dir()) == []


class Sized(io.BytesIO):
    """Like Streamlit's UploadedFile: it knows its size before it is read."""

    def __init__(self, data: bytes, size: int) -> None:
        super().__init__(data)
        self.size = size

    def read(self, *args):  # pragma: no cover - must not be reached
        raise AssertionError("read although the size is already over the limit")


def test_a_known_size_over_the_limit_is_refused_before_reading():
    with pytest.raises(DataError, match=r"3\.0 MB, over the 2 MB limit"):
        save_upload(Sized(b"", 3 * 2**20), name="big.zip", max_bytes=2 * 2**20)
    assert stored(settings.uploads_dir()) == []


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photos.zip", png_bytes((1, 2, 3))),  # a picture named as an archive
        ("notes.tar.gz", b"just some text\n" * 10),
        ("cut.zip", zip_files(tree_files())[:300]),  # cut short: no central directory
    ],
)
def test_not_an_archive_is_refused_by_content_and_nothing_is_left(name, data):
    with pytest.raises(DataError) as caught:
        save_upload(io.BytesIO(data), name=name)
    message = str(caught.value)
    assert name in message and "not a .zip, .tar or .tar.gz archive, or one cut" in message
    assert "\n" not in message
    assert stored(settings.uploads_dir()) == []


def test_an_archive_cut_short_after_its_first_entries_is_refused_and_nothing_is_left(tmp_path):
    data = cut_tar_gz(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tar:
        assert tar.next() is not None  # its start reads well: only reading on finds the cut
    with pytest.raises(DataError) as caught:
        save_upload(io.BytesIO(data), name="colours.tar.gz")
    message = str(caught.value)
    assert message.startswith("The archive colours.tar.gz is corrupt or unreadable"), message
    assert ".part-" not in message and "\n" not in message
    assert stored(settings.uploads_dir()) == []


def test_an_empty_upload_is_refused():
    with pytest.raises(DataError, match="empty"):
        save_upload(io.BytesIO(b""), name="empty.zip")
    assert stored(settings.uploads_dir()) == []


def test_a_hostile_name_stays_inside_the_uploads_folder():
    data = zip_files(tree_files())
    saved = save_upload(io.BytesIO(data), name="../../..\\evil/..\\<x>.zip")
    assert saved.path.parent.parent == settings.uploads_dir().resolve()
    assert saved.path.name == "_x_.zip"


def test_an_uploads_folder_that_cannot_be_made_is_a_message(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"could not be saved in .*file"):
        save_upload(io.BytesIO(zip_files(tree_files())), name="d.zip", folder=blocker)


def test_a_wrong_limit_setting_is_a_message(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_UPLOAD_MB", "2 GB")
    with pytest.raises(UserError, match="CNN_CORE_MAX_DATASET_UPLOAD_MB is '2 GB'"):
        settings.max_dataset_upload_mb()


# --- through the pages (AppTest hands the bytes straight to the script) -----------------------


def colours(tmp_path: Path) -> dict[str, bytes]:
    """A noisy image-folder dataset (it compresses poorly), as archive members under colours/."""
    return folder_files(write_colours(tmp_path / "colours", train=4, test=2))


def dataset_zip(tmp_path: Path) -> bytes:
    return zip_files(colours(tmp_path))


def cut_tar_gz(tmp_path: Path) -> bytes:
    """A .tar.gz whose first members read well and whose second half is missing."""
    whole = tar_gz_files(colours(tmp_path))
    return whole[: len(whole) // 2]


def train_page_with_upload(name: str, data: bytes):
    from support import TINY, open_page, rerun

    from cnn_core.drafts import new_draft_id, save_draft

    draft = new_draft_id()
    assert save_draft(draft, TINY)
    at = open_page("train", draft=draft)
    at.file_uploader(key="dataset_upload").set_value((name, data, "application/zip"))
    return rerun(at)


def texts(elements) -> str:
    """The elements' text as it reads on the page (the pages escape what they show as text)."""
    from reliability.kit import shown

    return "\n".join(shown(str(e.value)) for e in elements)


def test_the_train_page_uses_an_uploaded_archive_and_the_run_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from support import rerun

    from cnn_core import api
    from cnn_core.runs import list_runs

    data = dataset_zip(tmp_path)
    at = train_page_with_upload("colours.zip", data)
    [saved] = stored(settings.uploads_dir())
    assert saved.read_bytes() == data and saved.name == "colours.zip"
    assert f"Uploaded: colours.zip ({len(data):,} bytes)" in texts(at.caption)
    assert str(saved) in texts(at.caption)  # the source note says where it is kept
    assert not at.error
    assert at.text_input(key="data_source").disabled
    assert not at.button(key="start").disabled

    rerun(at)  # a rerun neither copies it again nor changes the source
    assert stored(settings.uploads_dir()) == [saved]

    launched = []
    monkeypatch.setattr(api, "launch_run", lambda run, **_: launched.append(run))
    at.button(key="start").click()
    rerun(at)
    [run] = list_runs()
    assert launched == [run]
    assert run.dataset()["source"] == str(saved)  # evaluation reads it from there later


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("photos.zip", lambda tmp: png_bytes((9, 9, 9)), "not a .zip, .tar or .tar.gz archive"),
        ("cut.tar.gz", cut_tar_gz, "The archive cut.tar.gz is corrupt or unreadable"),
    ],
)
def test_a_bad_upload_shows_the_reason_and_start_stays_disabled(tmp_path, name, make, words):
    at = train_page_with_upload(name, make(tmp_path))
    assert words in texts(at.error), texts(at.error)
    assert all("\n" not in e.value for e in at.error)
    assert at.button(key="start").disabled
    assert "choose a dataset that can be used" in texts(at.caption)


def test_an_upload_over_the_setting_is_refused_on_the_train_page(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_UPLOAD_MB", "1")
    big = zip_files({"a/train/x/0.bin": bytes(range(256)) * 5000})  # 1.2 MB, stored
    at = train_page_with_upload("big.zip", big)
    assert "over the 1 MB limit" in texts(at.error)
    assert at.button(key="start").disabled
    assert stored(settings.uploads_dir()) == []


def test_a_photo_over_10_mb_is_refused_on_predict_while_the_rest_are_predicted(tmp_path):
    from reliability.kit import make_model_run
    from support import open_page, rerun

    from cnn_core.runs import runs_root

    run = make_model_run(runs_root())
    good = png_bytes((200, 10, 10))
    big = good + b"\0" * (settings.PHOTO_UPLOAD_MB * 2**20 + 1 - len(good))  # valid, padded
    at = open_page("predict", run=run.name)
    photos = at.file_uploader(key="photos")
    assert photos.proto.max_upload_size_mb == settings.PHOTO_UPLOAD_MB  # the browser's check
    photos.set_value([("big.png", big, "image/png"), ("good.png", good, "image/png")])
    rerun(at)
    [error] = [e.value for e in at.error]
    assert "big.png" in error and "10.0 MB limit" in error and "\n" not in error
    table = at.dataframe[0].value
    assert table["prediction"].notna().tolist() == [False, True]


def test_the_build_pages_spec_uploader_keeps_the_10_mb_check_in_the_browser():
    from support import open_page

    at = open_page("build")
    assert at.file_uploader(key="upload_spec").proto.max_upload_size_mb == settings.PHOTO_UPLOAD_MB
