"""Drill 7: archives and folders built to exhaust memory (issue 13, section 2). Paths a thousand
folders deep, more entries than any dataset, more bytes than any dataset, a compression bomb:
each is refused while it is listed or streamed, by a message naming the limit and its setting;
an archive of photos is spooled to disk, never held, and the spool is gone afterwards. The bombs
are built tiny here, with the limits lowered through the environment; `bench.archive_bombs`
measures them at the issue's sizes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from support import encode

from cnn_core.data import limits
from cnn_core.data.cache import source_fingerprint
from cnn_core.datasets import inspect_source, load_dataset
from cnn_core.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
PNG = encode(Image.new("RGB", (8, 8), (200, 30, 30)), "PNG")


def tar_of(path: Path, members: dict[str, bytes], *, dirs: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def photos(n: int = 6) -> dict[str, bytes]:
    return {
        f"set/{split}/{c}/{i}.png": PNG
        for split in ("train", "test")
        for c in "ab"
        for i in range(n)
    }


def refused(source: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_dataset(source, cache=False)
    return str(caught.value)


def test_paths_deeper_than_the_limit_are_refused_as_they_stream(tmp_path: Path):
    deep = "/".join(["d"] * 40)
    tar = tar_of(
        tmp_path / "deep.tar.gz",
        {**photos(), f"{deep}/x.png": PNG},
        dirs=tuple("/".join(["d"] * level) for level in range(1, 41)),
    )
    zipped = zip_of(tmp_path / "deep.zip", {**photos(), f"{deep}/x.png": PNG})
    folder = tmp_path / "folder"
    (folder / deep).mkdir(parents=True)
    for source in (tar, zipped, folder):
        message = refused(source)
        assert "levels deep" in message and "CNN_CORE_MAX_PATH_DEPTH" in message, message
        print(f"\n{source.name}: {message}")


def test_more_entries_than_the_limit_are_refused_as_they_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    many = {**photos(), **{f"set/train/a/empty{i}.txt": b"" for i in range(40)}}
    folder = tmp_path / "folder"
    for name, data in many.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    sources = (tar_of(tmp_path / "many.tar.gz", many), zip_of(tmp_path / "many.zip", many), folder)
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_FILES", "30")
    for source in sources:
        message = refused(source)
        assert "more than 30 entries (the limit, CNN_CORE_MAX_DATASET_FILES)" in message, message
        print(f"\n{source.name}: {message}")
    assert "CNN_CORE_MAX_DATASET_FILES" in inspect_source(sources[1]).problem  # the cheap look
    assert source_fingerprint(str(folder)) is None  # the dashboard asks: no fingerprint, no crash
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_FILES", "lots")
    assert "CNN_CORE_MAX_DATASET_FILES is 'lots'" in refused(sources[0])


def test_more_bytes_than_the_limit_are_refused_before_they_are_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    big = {**photos(), "set/train/a/big.bin": os.urandom(300_000)}
    folder = tmp_path / "folder"
    for name, data in big.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    sources = (tar_of(tmp_path / "big.tar.gz", big), zip_of(tmp_path / "big.zip", big), folder)
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_GB", "0.0002")  # 200 KB
    for source in sources:
        message = refused(source)
        assert "more than 0.0002 GB (the limit, CNN_CORE_MAX_DATASET_GB)" in message, message
        print(f"\n{source.name}: {message}")


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_compression_bomb_is_refused_by_its_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
):
    monkeypatch.setattr(limits, "RATIO_FLOOR", 2**20)  # the bomb is built small
    zeros = {f"set/train/a/zeros{i}.png": bytes(2 * 2**20) for i in range(4)}
    build = tar_of if kind == "tar.gz" else zip_of
    bomb = build(tmp_path / f"bomb.{kind}", {**photos(), **zeros})
    message = refused(bomb)
    assert "more than 100 times its own size" in message, message
    assert "CNN_CORE_MAX_COMPRESSION_RATIO" in message
    print(f"\n{bomb.name} ({bomb.stat().st_size:,} bytes): {message}")
    monkeypatch.setenv("CNN_CORE_MAX_COMPRESSION_RATIO", "100000")  # a setting lets it through
    assert load_dataset(bomb, cache=False).skipped == 4


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_an_archive_of_photos_is_spooled_to_disk_and_the_spool_removed(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
):
    from cnn_core import settings
    from cnn_core.data import decode

    build = tar_of if kind == "tar.gz" else zip_of
    archive = build(tmp_path / f"photos.{kind}", {**photos(), "set/train/a/notes.png": b"text"})
    seen: list[object] = []
    real = decode._decode_chunk

    def watching(payloads, *args):
        seen.extend(payloads)
        return real(payloads, *args)

    monkeypatch.setattr(decode, "_decode_chunk", watching)
    data = load_dataset(archive, cache=False)
    assert len(data.y_train) + len(data.y_test) == 24 and data.skipped == 1
    assert seen and all(type(p).__name__ == "Spooled" for p in seen)  # never the bytes
    assert not list(settings.cache_dir().glob("*.spool"))
    broken = build(tmp_path / f"broken.{kind}", {**photos(), "set/train/c/bad.png": PNG[:20]})
    with pytest.raises(DataError):
        load_dataset(broken, cache=False)  # a class no image of which decodes
    assert not list(settings.cache_dir().glob("*.spool"))  # gone whatever happens


def test_thousands_of_one_byte_photos_are_counted_not_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A tar.gz of 30,000 one-byte members named as photos beside a few real ones: they are told
    apart by their content as they stream, so they cost no spool, no decoding and no pixels
    (they used to be decoded, a row of pixels each), and their messages are counted, not kept."""
    from cnn_core.data import decode

    tar = tmp_path / "tiny.tar.gz"
    with tarfile.open(tar, "w:gz", compresslevel=1) as archive:
        for name, data in photos().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo()
        info.size = 1
        for i in range(30_000):
            info.name = f"set/train/{'ab'[i % 2]}/{i:06d}.jpg"
            archive.addfile(info, io.BytesIO(b"x"))
    decoded: list[int] = []
    real = decode._decode_chunk

    def counting(payloads, *args):
        decoded.append(len(payloads))
        return real(payloads, *args)

    monkeypatch.setattr(decode, "_decode_chunk", counting)
    data = load_dataset(tar, cache=False)
    assert sum(decoded) == 24 and data.skipped == 30_000
    assert len(data.warnings) < 30 and data.warnings[-1] == "... and 29980 more."
    print(f"\n30,000 one-byte members: {sum(decoded)} decoded; {data.warnings[-3]}")


# `python -m cnn_core ARGS`, writing at exit its own peak RSS (VmHWM, fresh at exec, where
# ru_maxrss would carry pytest's across exec) and its largest decode worker's, in KB.
MEASURED = """
import atexit, resource, runpy, sys
def peak(path):
    own = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    open(path, "w").write(f"{own} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
atexit.register(peak, sys.argv[1])
sys.argv = ["cnn_core", *sys.argv[2:]]
runpy.run_module("cnn_core", run_name="__main__", alter_sys=True)
"""


def cli_peak(source: Path, cache: Path) -> tuple[float, dict]:
    """Peak RSS (MB) of `python -m cnn_core data SOURCE --json` and its JSON, or its error."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CNN_CORE_CACHE": str(cache)}
    peak = cache.with_suffix(".peak")
    command = [sys.executable, "-c", MEASURED, str(peak), "data", str(source), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    peak_mb = max(int(kb) for kb in peak.read_text().split()) / 1024
    if done.returncode != 0:
        return peak_mb, {"error": done.stderr.strip().splitlines()[-1]}
    return peak_mb, json.loads(done.stdout.strip().splitlines()[-1])


def test_a_zip_bomb_is_refused_from_its_directory_in_a_small_process(tmp_path: Path):
    """Ten members of 40 MiB of zeros, each under the 50 MB a member may be: the process that is
    given it stays small (it used to hold all 400 MiB), refused before a byte is inflated."""
    bomb = tmp_path / "zeros.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("set/train/a/0.png", PNG)
        archive.writestr("set/train/b/0.png", PNG)
        zeros = bytes(40 * 2**20)
        for i in range(10):
            archive.writestr(f"set/train/{'ab'[i % 2]}/zeros{i}.png", zeros)
    peak_mb, doc = cli_peak(bomb, tmp_path / "cache")
    print(f"\n10 x 40 MiB of zeros ({bomb.stat().st_size:,} bytes): peak RSS {peak_mb:.0f} MB")
    assert "CNN_CORE_MAX_COMPRESSION_RATIO" in doc.get("error", ""), doc
    assert peak_mb < 150, peak_mb  # the interpreter and its imports are about 40 MB
