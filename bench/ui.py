"""Dashboard responsiveness in a real browser: headless Chromium driving `streamlit run app.py`.

(a) cold start: from launching the server to a usable Build page (the layer table drawn and the
    add button enabled), each a fresh server and a fresh browser context; median of 5, alternated
    with the same for a one-button Streamlit app (the floor that Streamlit itself sets);
(b) a Build edit: click a move-down or delete button until the page shows the change; median of
    10 edits;
(c) the Train page's live view: from an epoch's row landing in history.csv to its point on the
    accuracy chart, over the epochs of a tiny run on synthetic 8x8 images (the view rereads the
    run directory every 1.5 s, so about 0.75 s plus drawing is expected).

Drives Debian's chromium (never a browser that Playwright downloads); needs no dataset.

    python -m bench.ui
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from bench.common import write_result
from cnn_core import api
from cnn_core.config import TrainConfig
from cnn_core.presets import load_preset
from cnn_core.runs import Run
from tests.support import (
    TINTED,
    Dashboard,
    chromium_path,
    dashboard_env,
    free_port,
    launch_chromium,
    write_colours,
)

VIEWPORT = {"width": 1400, "height": 900}
COLD_STARTS = 5
EDITS = 10
EPOCHS = 30  # batch 1 on 96 images: ~0.3 s an epoch on a laptop CPU

# The first curve's markers on the Train page's accuracy chart (0 before it is drawn).
POINTS_JS = """() => {
    const trace = document.querySelector('.st-key-acc_chart .scatterlayer .trace');
    return trace ? trace.querySelectorAll('.point').length : 0;
}"""


# --- the server --------------------------------------------------------------------------------


# The floor for (a): a one-button Streamlit app, which pays Streamlit's own server start and
# JavaScript bundle but draws next to nothing; it has the two buttons `usable_build_page` waits for.
FLOOR_APP = """import streamlit as st

st.button("Delete", key="del_0")
st.button("Add", key="add_button")
"""


def server(home: Path, data: Path, script: str = "app.py") -> Dashboard:
    """`streamlit run SCRIPT` (our app.py by default) on a free port, with runs, cache and data
    under `home`; not started yet."""
    return Dashboard(free_port(), dashboard_env(home, data=data), script=script)


def write_dataset(root: Path) -> Path:
    """Three classes of noisy tinted 8x8 PNGs, 40 training and 10 test images each."""
    return write_colours(root, train=40, test=10, colours=TINTED, noise=100)


# --- the three measurements ---------------------------------------------------------------------


def usable_build_page(page: Page) -> None:
    page.locator(".st-key-del_0 button").first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => { const b = document.querySelector('.st-key-add_button button');"
        " return b && !b.disabled; }",
        polling="raf",
        timeout=60_000,
    )


def cold_start(browser: Browser, home: Path, data: Path, script: str = "app.py") -> float:
    start = time.perf_counter()
    dashboard = server(home, data, script)
    try:
        dashboard.start()
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.goto(dashboard.url)
        usable_build_page(page)
        seconds = time.perf_counter() - start
        context.close()
        return seconds
    finally:
        dashboard.close()


def settle(page: Page) -> None:
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached"
    )


def row_text(page: Page, index: int) -> str:
    return page.evaluate(
        "(i) => { const d = document.querySelector(`.st-key-del_${i}`);"
        " const row = d && d.closest('[data-testid=stHorizontalBlock]');"
        " return row ? row.innerText : ''; }",
        index,
    )


def build_edits(page: Page, url: str) -> list[tuple[str, float]]:
    """Alternate moving layer 1 down and deleting the last layer; time each until it shows."""
    page.goto(url)
    usable_build_page(page)
    settle(page)
    timings = []
    for i in range(EDITS):
        layers = page.locator("[class*='st-key-del_']").count()
        if i % 2 == 0:
            kind, before = "move down", row_text(page, 0)
            check = "(b) => document.querySelector('.st-key-del_0')"
            check += ".closest('[data-testid=stHorizontalBlock]').innerText !== b"
            arg: object = before
            key = "down_0"
        else:
            kind, arg, key = "delete", layers - 1, f"del_{layers - 1}"
            check = "(i) => !document.querySelector(`.st-key-del_${i}`)"
        target = page.locator(f".st-key-{key} button").filter(visible=True).first
        target.wait_for()
        start = time.perf_counter()
        target.click()
        page.wait_for_function(check, arg=arg, polling="raf")
        timings.append((kind, time.perf_counter() - start))
        settle(page)
    return timings


def live_view_delays(
    page: Page, server: Dashboard, data: Path, *, epochs: int
) -> tuple[list[float], list[float]]:
    """Start a tiny run, open its Train page, and time each epoch from disk to chart.

    Returns the delays of the epochs shown by the chart's first drawing (the browser loads
    plotly.js and the data grid then) and those of the epochs after it.
    """
    spec = replace(load_preset("tutorial_cnn").spec, input_shape=(8, 8, 3), num_classes=3)
    config = TrainConfig(epochs=epochs, batch_size=1, seed=1)
    run = api.start_run(spec, config, data_source=str(data), root=server.runs)
    page.goto(f"{server.url}/train?run={run.name}")
    history = run.file("history.csv")
    written: dict[int, float] = {}  # epoch (1-based) -> mtime of the history.csv that added it
    shown: dict[int, float] = {}
    last_look = 0.0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(shown) < epochs:
        rows = _rows(run)
        for n in range(1, rows + 1):
            written.setdefault(n, history.stat().st_mtime)
        if time.monotonic() - last_look >= 0.05:
            last_look = time.monotonic()
            points = page.evaluate(POINTS_JS)
            for n in written.keys() - shown.keys():
                if n <= points:
                    shown[n] = time.time()
        if run.status().finished and len(shown) == rows:
            break
        time.sleep(0.01)
    if not shown:
        raise SystemExit(f"no epoch reached the Train page: {run.status()}\n{run.log_tail()}")
    first_draw = min(shown.values())
    delays = [(shown[n] - written[n], shown[n] == first_draw) for n in sorted(shown)]
    return [d for d, first in delays if first], [d for d, first in delays if not first]


def _rows(run: Run) -> int:
    return len(run.history())


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    if chromium_path() is None:
        raise SystemExit("bench.ui needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        tmp_path = Path(tmp)
        data = write_dataset(tmp_path / "colours")
        browser = launch_chromium(playwright)
        try:
            floor_app = tmp_path / "floor_app.py"
            floor_app.write_text(FLOOR_APP)
            starts, floors = [], []
            for i in range(COLD_STARTS):  # alternated, so that both see the same machine
                starts.append(cold_start(browser, tmp_path / f"cold{i}", data))
                floors.append(cold_start(browser, tmp_path / f"floor{i}", data, str(floor_app)))
            warm = server(tmp_path / "warm", data)
            try:
                warm.start()
                page = browser.new_page(viewport=VIEWPORT)
                edits = build_edits(page, warm.url)
                first, delays = live_view_delays(page, warm, data, epochs=EPOCHS)
            finally:
                warm.close()
        finally:
            browser.close()

    edit_seconds = [s for _, s in edits]
    print(f"{'measure':36} {'median':>8} {'min':>8} {'max':>8} {'n':>3}")
    for name, values, unit in (
        ("cold start -> usable Build page", starts, "s"),
        ("  the same, one-button Streamlit app", floors, "s"),
        ("Build edit -> redrawn", edit_seconds, "ms"),
        ("epoch on disk -> on the Train chart", delays, "s"),
        ("  epochs shown by its first drawing", first, "s"),
    ):
        cells = [_format(f(values), unit) for f in (statistics.median, min, max)]
        print(f"{name:36} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8} {len(values):>3}")
    write_result(
        "ui",
        {
            "cold_start_seconds": starts,
            "cold_start_median_seconds": statistics.median(starts),
            "floor_cold_start_seconds": floors,
            "floor_cold_start_median_seconds": statistics.median(floors),
            "build_edit_seconds": [{"edit": kind, "seconds": s} for kind, s in edits],
            "build_edit_median_seconds": statistics.median(edit_seconds),
            "epoch_to_chart_seconds": delays,
            "epoch_to_chart_median_seconds": statistics.median(delays),
            "first_drawing_epoch_to_chart_seconds": first,
            "live_view_refresh_seconds": 1.5,
            "browser": "headless chromium (Debian)",
        },
    )


def _format(seconds: float, unit: str) -> str:
    return f"{seconds * 1000:.0f} ms" if unit == "ms" else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
