"""Peak memory of `python -m cnn_core data` on archives built to exhaust it, and on two ordinary
archives of photos, each loaded in a fresh process (issue 13, "Archives with bounded cost").

The bombs, at the sizes the issue measured: a tar.gz of paths 1,000 folders deep; 200,000
one-byte members in a tar.gz (also at --size 64 64); a zip of 80 members of 49 MiB of zeros.
The photos: N small JPEGs in class folders, as a tar.gz and as a zip. Goal: every process stays
under 1 GB of peak RSS (VmHWM of the loading process; decode workers are its forked children).

    python -m bench.archive_bombs [--photos 20000]
    python -m bench.archive_bombs --code ../before --only JPEGs one-byte   # an earlier checkout
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from bench.common import ROOT, write_result

GOAL_MB = 1000


def deep_tar(path: Path, depth: int = 1000, files: int = 1000) -> Path:
    """`files` one-byte files, each at the bottom of its own path `depth` folders deep: names of
    2,000 characters that gzip to a few bytes each, and a million distinct folders."""
    with tarfile.open(path, "w:gz") as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"{i:04d}/" + "d/" * (depth - 2) + "x.jpg")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def tiny_tar(path: Path, members: int = 200_000) -> Path:
    """`members` one-byte files named as JPEGs (random names, as the issue's 2.9 MB had), in two
    class folders."""
    names = np.random.default_rng(0).integers(0, 2**63, members)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(members):
            info = tarfile.TarInfo(f"train/c{i % 2}/{names[i]:016x}.jpg")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def zeros_zip(path: Path, members: int = 80, mib: int = 49) -> Path:
    """`members` files of `mib` MiB of zeros each (just under the 50 MB a member may be)."""
    block = bytes(2**20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for i in range(members):
            with archive.open(f"train/c{i % 2}/{i:03d}.jpg", "w", force_zip64=True) as member:
                for _ in range(mib):
                    member.write(block)
    return path


def photos(n: int) -> list[tuple[str, bytes]]:
    """`n` distinct JPEGs of 128x128 noise (about 20 KB each) in four class folders: a few
    encoded, the rest made distinct by bytes after the end marker, which decoders ignore."""
    from PIL import Image

    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(16):
        picture = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    split = lambda i: "test" if i % 5 == 0 else "train"  # noqa: E731
    return [
        (f"photos/{split(i)}/c{i % 4}/{i:06d}.jpg", encoded[i % 16] + i.to_bytes(4, "little"))
        for i in range(n)
    ]


def photo_tar(path: Path, files: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def photo_zip(path: Path, files: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # JPEGs do not compress
        for name, data in files:
            archive.writestr(name, data)
    return path


# `python -m cnn_core ARGS` that writes its peak RSS at exit: VmHWM, of this process alone (fresh
# at exec; ru_maxrss would carry the launching process's peak across exec), and the largest of its
# decode workers (forked, so counted with the pages they share with it), in KB.
MEASURED = """
import atexit, resource, runpy, sys
def peak(path):
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    open(path, "w").write(f"{status} {workers}")
atexit.register(peak, sys.argv[1])
sys.argv = ["cnn_core", *sys.argv[2:]]
runpy.run_module("cnn_core", run_name="__main__", alter_sys=True)
"""


def load(source: Path, cache: Path, *extra: str, code: Path = ROOT) -> dict:
    """`python -m cnn_core data SOURCE --json` in a fresh process, of the checkout `code`: its
    peak RSS (the largest of it and its decode workers), seconds, exit status and what it said."""
    env = {**os.environ, "PYTHONPATH": str(code), "CNN_CORE_CACHE": str(cache)}
    peak_file = cache.with_suffix(".peak")
    command = [sys.executable, "-c", MEASURED, str(peak_file), "data", str(source), "--json"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *extra], capture_output=True, text=True, env=env, cwd=code, check=False
    )
    seconds = time.perf_counter() - started
    own, workers = (int(kb) / 1024 for kb in peak_file.read_text().split())
    said = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if done.returncode == 0:
        doc = json.loads(done.stdout.strip().splitlines()[-1])
        said = f"loaded {doc['train']:,} training and {doc['test']:,} test images"
        said += f", {doc['skipped']:,} skipped" if doc["skipped"] else ""
    return {
        "peak_rss_mb": round(max(own, workers), 1),
        "process_mb": round(own, 1),
        "workers_mb": round(workers, 1),
        "seconds": round(seconds, 2),
        "exit": done.returncode,
        "message": said.replace(f"{source.parent}/", "")[:400],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--code", type=Path, help="a checkout of an earlier commit to measure")
    parser.add_argument("--only", nargs="*", help="the cases whose name has one of these words")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bombs-") as tmp:
        folder = Path(tmp)
        files = photos(args.photos)
        cases = {
            "tar.gz of paths 1,000 folders deep": (deep_tar(folder / "deep.tar.gz"), ()),
            "200,000 one-byte members in a tar.gz": (tiny_tar(folder / "tiny.tar.gz"), ()),
            "the same at --size 64 64": (folder / "tiny.tar.gz", ("--size", "64", "64")),
            "zip of 80 members of 49 MiB of zeros": (zeros_zip(folder / "zeros.zip"), ()),
            f"{args.photos:,} JPEGs in a tar.gz": (photo_tar(folder / "photos.tar.gz", files), ()),
            f"{args.photos:,} JPEGs in a zip": (photo_zip(folder / "photos.zip", files), ()),
        }
        del files
        results = []
        for i, (label, (source, extra)) in enumerate(cases.items()):
            if args.only and not any(word in label for word in args.only):
                continue
            measured = load(source, folder / f"cache-{i}", *extra, code=args.code or ROOT)
            measured.update(case=label, archive_bytes=source.stat().st_size)
            results.append(measured)
            print(
                f"{label}: {measured['peak_rss_mb']:.0f} MB peak, {measured['seconds']:.1f} s, "
                f"exit {measured['exit']}: {measured['message']}",
                flush=True,
            )
    name = "archive_bombs_before" if args.code else "archive_bombs"
    code = {"code": _commit(args.code)} if args.code else {}
    path = write_result(name, {"goal_mb": GOAL_MB, **code, "cases": results})
    print(f"wrote {path}")


def _commit(folder: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h"], capture_output=True, text=True
    )
    return done.stdout.strip() or str(folder)


if __name__ == "__main__":
    main()
