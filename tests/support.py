"""What the tests and the benchmarks share: the tiny network, tiny data written in the real
formats, waiting, a free port, the dashboard server (`streamlit run app.py`) and Chromium.

Nothing here is a test, and nothing here imports Keras, TensorFlow, Streamlit or Playwright when
it is imported: each is imported where it is used. Tests import it as `support` (pytest puts
tests/ on the path), the benchmarks as `tests.support` (`python -m bench.x` from the root).
Fixtures built on it live in tests/conftest.py.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cnn_core.spec import LayerSpec, ModelSpec

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright
    from streamlit.testing.v1 import AppTest

    from cnn_core.runs import Run, RunStatus

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"

# --- the tiny network ----------------------------------------------------------------------------

TINY_CONV = LayerSpec(
    "Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}
)


def tiny_net(*middle: LayerSpec, name: str = "Tiny net", num_classes: int = 3) -> ModelSpec:
    """A network for 8x8 RGB images that builds and trains in a moment: a 4-filter 3x3
    convolution, the `middle` layers, global average pooling and the classifier head."""
    return ModelSpec(
        name=name,
        input_shape=(8, 8, 3),
        num_classes=num_classes,
        layers=(TINY_CONV, *middle, LayerSpec("GlobalAveragePooling2D")),
    )


TINY = tiny_net()

# --- tiny data, in the real formats --------------------------------------------------------------

CLASSES = ("blue", "green", "red")  # sorted folder names: the model's output order
COLOURS = {"blue": (30, 30, 200), "green": (30, 200, 30), "red": (200, 30, 30)}
# Grey tinted towards each colour: under heavy noise the curves take a few epochs to climb.
TINTED = {"blue": (108, 108, 148), "green": (108, 148, 108), "red": (148, 108, 108)}


def write_colours(
    root: Path,
    *,
    train: int = 80,
    test: int = 10,
    colours: Mapping[str, tuple[int, int, int]] = COLOURS,
    noise: float = 40,
) -> Path:
    """An image-folder dataset (root/train/<class>/, root/test/<class>/) of `train` and `test`
    8x8 PNGs per class: each class's colour plus Gaussian noise of deviation `noise`."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for name, colour in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(colour) + rng.normal(0, noise, (8, 8, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The picture as the bytes of a file in `fmt` (a Pillow format name)."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    """A flat-coloured PNG."""
    return encode(Image.new("RGB", size, colour), "PNG")


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    """An RGB picture whose pixels differ from their neighbours."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 6 % 256, y * 8 % 256, np.full_like(x, 90)], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A 70-byte PNG whose header claims width x height pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def zip_files(files: Mapping[str, bytes]) -> bytes:
    """A .zip holding each `files` entry (member name: content)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def tar_gz_files(files: Mapping[str, bytes]) -> bytes:
    """A .tar.gz holding each `files` entry (member name: content)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def folder_files(folder: Path, *, pattern: str = "*") -> dict[str, bytes]:
    """The files under `folder` matching `pattern`, sorted, as member names under folder's name."""
    return {
        Path(folder.name, path.relative_to(folder)).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob(pattern))
        if path.is_file()
    }


# --- waiting -------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool],
    seconds: float,
    *,
    what: str | Callable[[], str] = "",
    every: float = 0.05,
) -> None:
    """Return once `condition()` holds; after `seconds`, fail with an AssertionError naming
    `what` (a callable is called then, to describe the state it timed out in)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(
                f"timed out after {seconds} s waiting for {described or condition}"
            )
        time.sleep(every)


def wait_for_state(
    run: Run, predicate: Callable[[RunStatus], bool], seconds: float = 90
) -> RunStatus:
    """The run's status once `predicate` holds for it; fail with its log after `seconds`."""
    wait_until(
        lambda: predicate(run.status()),
        seconds,
        what=lambda: f"{run.name}; last status {run.status()}\n{run.log_tail(20)}",
        every=0.1,
    )
    return run.status()


def epochs_in(run: Run) -> list[int]:
    """The epochs history.csv holds, in its order."""
    return [int(row["epoch"]) for row in run.history()]


def imported_frameworks(*modules: str, frameworks: tuple[str, ...]) -> list[str]:
    """The modules of `frameworks` (top-level names) that importing `modules` loads, in a fresh
    interpreter."""
    code = (
        f"import sys, json; import {', '.join(modules)}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {frameworks!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(done.stdout)


# --- driving a page through AppTest --------------------------------------------------------------


def rerun(at: AppTest) -> AppTest:
    """Run the script; fail on any exception the page showed."""
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def open_page(page: str, *, timeout: float = 90, **query: str) -> AppTest:
    """The app switched to pages/`page`.py with `query` as its query parameters, run once.
    `timeout` is per script run: the first Evaluate or Predict run imports TensorFlow."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(f"pages/{page}.py")
    return rerun(at)


# --- the dashboard server ------------------------------------------------------------------------


def free_port(ports: range = range(8600, 8701)) -> int:
    """A port in `ports` that nothing on this machine listens on, picked at random so that two
    sessions on one machine rarely pick the same one."""
    candidates = list(ports)
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


# Headless, local, quiet, and no restart when a file changes under a test.
QUIET = (
    *("--server.address", "127.0.0.1", "--server.headless", "true"),
    *("--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"),
)


def dashboard_env(home: Path, *, data: Path | None = None, **settings: str) -> dict[str, str]:
    """This process's environment without any CNN_CORE_* setting of its own, then runs and cache
    under `home`, `data` as the default source, and `settings` (CNN_CORE_SHARED="1", ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNN_CORE_")}
    env.update(
        CNN_CORE_RUNS=str(home / "runs"),
        CNN_CORE_CACHE=str(home / "cache"),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
    )
    if data is not None:
        env["CNN_CORE_DATA"] = str(data)
    env.update(settings)
    return env


@dataclass
class Dashboard:
    """`streamlit run SCRIPT` (app.py by default) on `port`, with `env`; its output appended to
    `log` (discarded when None). It can be killed and started again on the same port."""

    port: int
    env: dict[str, str]
    log: Path | None = None
    script: str = "app.py"
    options: tuple[str, ...] = QUIET
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def runs(self) -> Path:
        return Path(self.env["CNN_CORE_RUNS"])

    def start(self, timeout: float = 60) -> float:
        """Start the server; return the seconds until it answered its health check."""
        command = [
            *(sys.executable, "-m", "streamlit", "run", self.script),
            *("--server.port", str(self.port), *self.options),
        ]
        began = time.monotonic()
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        finally:
            if self.log:
                out.close()
        self.wait_healthy(timeout)
        return time.monotonic() - began

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def healthy(self, timeout: float = 5) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/_stcore/health"
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.healthy(timeout=2):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {self.process.returncode}:\n{self.output()[-5000:]}"
                )
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"streamlit did not answer within {timeout} s:\n{self.output()[-5000:]}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when the machine's OOM killer strikes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Terminate the server (SIGKILL after 15 s); its runs are left as they are."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Stop every run it started, then the server."""
        stop_runs(self.runs)
        self.stop()


def stop_runs(runs: Path, *, timeout: float = 30) -> None:
    """Ask every active run to stop, wait for it, and kill what is still alive after that."""
    from cnn_core.api import request_stop
    from cnn_core.runs import list_runs, process_alive

    for run in list_runs(runs):
        request_stop(run)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(r.status().active for r in list_runs(runs)):
        time.sleep(0.2)
    for run in list_runs(runs):
        status = run.raw_status()
        if status and status.pid and process_alive(status.pid, status.pid_started):
            os.kill(status.pid, signal.SIGKILL)


# --- Chromium ------------------------------------------------------------------------------------

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """Debian's chromium (`apt-get install chromium`); never a browser Playwright downloads."""
    import shutil

    return shutil.which("chromium")


def launch_chromium(playwright: Playwright, *args: str) -> Browser:
    """Headless Debian chromium with CHROMIUM_ARGS and `args`; chromium_path() must be set."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=executable, args=[*CHROMIUM_ARGS, *args])
