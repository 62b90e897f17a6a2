"""Drill 7: output that cannot be abused (issue 13, section 4). Text a user controls (a run name in
`?run=`, class names, file names) shown on the pages as Markdown or in charts as HTML; terminal
escape codes in class and file names printed by the command line; a traceback from a foreground
`train`; more photos in one upload than the page takes; a `.keras` file whose config is a zip bomb.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from support import CLASSES, COLOURS, TINY, encode, open_page, rerun
from test_browser import app, page, settled  # noqa: F401 - the dashboard and Chromium

from cnn_core.runs import DATASET, MODEL, Run, atomic_write_json, runs_root
from reliability.kit import make_model_run, messages

ROOT = Path(__file__).resolve().parents[2]
LINKS = (
    "[x](https://evil.example/a) ![i](https://evil.example/i.png) <b>b</b> https://evil.example "
    "www.evil.example a@evil.example"
)
HOSTILE_CLASSES = (f"[a](http://x.example) {LINKS}", "<img src=//evil.example/z.png>", "red")
ESCAPES = ("\x1b]8;;http://evil.example\x07click\x1b]8;;\x07", "\x1b[2J\x1b[31mred", "\x9b31m")


def markdown_shown(at) -> list[str]:
    """The Markdown source of every element Streamlit renders as Markdown."""
    kinds = ("error", "warning", "info", "success", "caption", "markdown", "subheader", "title")
    return [element.value for kind in kinds for element in getattr(at, kind)]


def assert_literal(texts: list[str]) -> None:
    """No link, image or HTML tag survives: its syntax is backslash-escaped and addresses are
    broken up by a word joiner (dashboard.text.plain), so it shows as text."""
    for text in texts:
        live = re.sub(r"\\.", "", text)  # what Markdown still reads as syntax
        for syntax in ("](", "![", "<", "https://", "http://", "www.", "a@"):
            assert syntax not in live, (syntax, text)


def photo(colour: str) -> bytes:
    from PIL import Image

    return encode(Image.new("RGB", (8, 8), COLOURS[colour]), "PNG")


@pytest.fixture
def hostile_run() -> Run:
    run = make_model_run(runs_root())
    atomic_write_json(run.file(DATASET), {"source": "unused", "class_names": list(HOSTILE_CLASSES)})
    return run


# --- Markdown and HTML on the pages -------------------------------------------------------------


@pytest.mark.parametrize("name", ["train", "evaluate", "predict"])
def test_a_run_name_in_the_address_is_shown_as_text(name: str):
    make_model_run(runs_root())  # so that the pages get as far as the run picker
    at = open_page(name, run=LINKS)
    shown = markdown_shown(at)
    assert any("evil" in text for text in shown), shown  # the name is shown...
    assert_literal(shown)  # ...as text


def test_class_and_file_names_are_shown_as_text_in_captions_and_charts(hostile_run: Run):
    at = open_page("predict", run=hostile_run.name)
    name = f"{LINKS}.png"
    at.file_uploader(key="photos").set_value([(name, photo("red"), "image/png")])
    rerun(at)
    shown = markdown_shown(at)
    assert any("evil" in text for text in shown), shown
    assert_literal(shown)
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert charts
    labels = json.dumps([trace.get("y") for chart in charts for trace in chart["data"]])
    assert "<b>" not in labels and "<img" not in labels and "&lt;b&gt;" in labels


def test_the_dataset_check_shows_class_folders_as_text(tmp_path: Path):
    from dashboard import text

    figure_names = text.plotly_text(HOSTILE_CLASSES[1])
    assert "<" not in figure_names and "&lt;img" in figure_names
    assert text.plain("[a](b) <i> *c* $x$ :red[d] a@b.c") == (
        r"\[a\](b) \<i\> \*c\* \$x\$ :red\[d\] a" + "\u2060@b.c"
    )
    assert text.plain("see https://x.example, WWW.x.example") == (
        "see https\u2060://x.example, WWW\u2060.x.example"
    )


@pytest.mark.slow  # a real dashboard in Chromium: about 15 s
def test_in_the_browser_no_link_or_image_of_a_hostile_name_reaches_the_page(app, page):  # noqa: F811
    """What the browser makes of it: AppTest shows the Markdown source, Chromium the links."""
    run = make_model_run(app.runs)
    atomic_write_json(run.file(DATASET), {"source": "unused", "class_names": list(HOSTILE_CLASSES)})
    for address in (f"predict?run={quote(LINKS)}", f"predict?run={run.name}"):
        page.goto(f"{app.url}/{address}")
        page.get_by_text("evil.example", exact=False).first.wait_for()
        settled(page)
        main = page.get_by_test_id("stMain")
        assert "evil.example" in main.inner_text()  # the text is there, as text
        assert main.locator("a[href*='evil'], a[href*='x.example'], img[src*='evil']").count() == 0
        assert main.locator("b", has_text="b").count() == 0


# --- the command line ---------------------------------------------------------------------------


def test_terminal_escapes_in_class_and_file_names_are_neutralised(tmp_path: Path, capsys):
    from cnn_core.cli import main

    run = make_model_run(runs_root())
    atomic_write_json(run.file(DATASET), {"source": "unused", "class_names": list(ESCAPES)})
    picture = tmp_path / "a\x1b[31mb\x07.png"
    picture.write_bytes(photo("red"))
    text = tmp_path / "\x1b[2Jnotes\x9b.png"
    text.write_text("not a picture")
    assert main(["predict", run.name, str(picture), str(text)]) == 2
    out, err = capsys.readouterr()
    for stream in (out, err):
        assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in stream)
    assert "\\x1b[31m" in out and "\\x1b[2J" in err  # shown, harmless, still recognisable
    assert main(["predict", run.name, str(picture), "--json"]) == 0
    assert "\x1b" not in capsys.readouterr().out  # json.dumps escapes them (ensure_ascii)
    from cnn_core.terminal import terminal_safe

    assert terminal_safe("a\rb\u202ec\td\n\x7f") == "a\\x0db\\u202ec\td\n\\x7f"


def test_foreground_train_prints_no_traceback_without_cnn_core_debug(tmp_path: Path):
    from support import write_colours

    data = write_colours(tmp_path / "data", train=2, test=1)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY.to_dict()))
    crash = (  # a bug inside training: the first epoch raises
        "import sys, cnn_core.training.worker as t\n"
        "def boom(*a, **k): raise RuntimeError('boom')\n"
        "t._train = boom\n"
        "from cnn_core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    command = [sys.executable, "-c", crash, "train", str(spec), "--data", str(data)]
    command += ["--epochs", "1", "--runs-dir", str(tmp_path / "runs")]
    env = {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    env |= {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "boom" in done.stderr  # the one line says what happened
    log = next((tmp_path / "runs").glob("*/train.log")).read_text()
    assert "Traceback" in log  # kept for whoever debugs it
    debug = subprocess.run(
        command, capture_output=True, text=True, env={**env, "CNN_CORE_DEBUG": "1"}, timeout=300
    )
    assert "Traceback" in debug.stderr


# --- photo uploads ------------------------------------------------------------------------------


def test_an_upload_of_too_many_photos_keeps_the_first_ones_and_says_so(monkeypatch):
    monkeypatch.setenv("CNN_CORE_MAX_PHOTOS", "3")
    make_model_run(runs_root())
    at = open_page("predict")
    files = [(f"p{i}.png", photo(CLASSES[i % 3]), "image/png") for i in range(5)]
    at.file_uploader(key="photos").set_value(files)
    rerun(at)
    shown = " ".join(messages(at))
    assert "5 photos" in shown and "at most 3" in shown and "p3.png" in shown, shown
    assert [m.value for m in at.markdown if m.value.startswith("**p")] == [
        "**p0.png**",
        "**p1.png**",
        "**p2.png**",
    ]


SESSIONS = 3  # Predict sessions, one after another, each in a new browser context
PHOTOS = 10  # per session: small pictures padded to 3 MB (decoders ignore what follows the end)
PADDED = 3 * 2**20


def server_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.slow  # a real server and three upload sessions in Chromium: about a minute
def test_the_servers_memory_returns_after_upload_sessions_end(tmp_path: Path, page):  # noqa: F811
    """The dashboard as users run it (its .streamlit/config.toml): each session uploads 30 MB of
    photos, is predicted and closed; what the server holds must not grow with the sessions."""
    import os
    import random

    from PIL import Image
    from support import Dashboard, free_port

    run = make_model_run(tmp_path / "runs")
    rng = random.Random(0)
    photos = [
        {
            "name": f"p{i}.png",
            "mimeType": "image/png",
            "buffer": (png := encode(Image.new("RGB", (64, 48), COLOURS[CLASSES[i % 3]]), "PNG"))
            + rng.randbytes(PADDED - len(png)),
        }
        for i in range(PHOTOS)
    ]
    env = {**os.environ, "CNN_CORE_RUNS": str(tmp_path / "runs"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = Dashboard(free_port(), env, tmp_path / "server.log", options=())  # as users run it
    after: list[int] = []
    try:
        server.start()
        for _ in range(SESSIONS):
            context = page.context.browser.new_context()
            tab = context.new_page()
            tab.set_default_timeout(120_000)
            tab.goto(f"{server.url}/predict?run={run.name}")
            tab.locator(".st-key-photos input[type='file']").set_input_files(photos)
            tab.locator(f".st-key-top_{PHOTOS}").wait_for()
            settled(tab)
            context.close()
            time.sleep(16)  # the reconnect window (10 s) and one sweep (5 s), and a second
            after.append(server_rss(server.process.pid))
    finally:
        server.stop()
    print(
        f"\nserver RSS after each of {SESSIONS} sessions of {PHOTOS * PADDED >> 20} MB: {after} MB"
    )
    assert "Traceback" not in server.output()
    # Before the fix: +54 MB a session (each upload kept), so +108 MB over the last two.
    assert after[-1] - after[0] < 40, after


# --- the model file -----------------------------------------------------------------------------


BOMB = """
import resource, sys
from cnn_core.predict import load_run_model
from pathlib import Path
from cnn_core.runs import Run
from cnn_core._keras import keras  # loaded before the baseline: what a dashboard has loaded
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
try:
    load_run_model(Run(Path(sys.argv[1])))
    print("loaded")
except Exception as exc:
    print(type(exc).__name__, exc)
print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - base)
"""


def test_a_keras_file_whose_config_is_a_zip_bomb_is_refused_before_it_is_read(tmp_path: Path):
    run = make_model_run(tmp_path / "runs")
    with zipfile.ZipFile(run.file(MODEL)) as original:
        members = {info.filename: original.read(info) for info in original.infolist()}
    config = members["config.json"]
    padding = 512 * 2**20  # 512 MB of spaces: valid JSON, about 0.5 MB compressed
    with zipfile.ZipFile(run.file(MODEL), "w", zipfile.ZIP_DEFLATED) as bomb:
        for name, data in members.items():
            if name != "config.json":
                bomb.writestr(name, data)
        with bomb.open("config.json", "w", force_zip64=True) as out:
            out.write(config[:-1])
            block = b" " * 2**24
            for _ in range(padding // len(block)):
                out.write(block)
            out.write(config[-1:])
    size = run.file(MODEL).stat().st_size
    env = {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-c", BOMB, str(run.path)],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    *said, peak = done.stdout.strip().splitlines()
    print(f"\nbomb: {size:,} bytes on disk; {' '.join(said)}; {peak} MB above the baseline")
    assert said[0].startswith("RunError"), done.stdout + done.stderr
    assert "config.json" in said[0] and "limit" in said[0]
    assert int(peak.split()[1]) < 50, peak  # refused by size: nothing was decompressed
