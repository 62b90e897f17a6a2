"""A new user's path through the dashboard, in headless Chromium against `streamlit run app.py`.

Build (add, move, delete a layer; break the network and mend it with the one-click fix; size it
for 8x8 images), Train (start, watch the curves grow, refresh, stop), Evaluate (confusion
matrix), Runs, and Predict (a photo, then a broken file beside a good one), on a tiny synthetic
image-folder dataset. After every step no Streamlit exception may be on the page, and at the end
no traceback may be in the server's output. It saves screenshots of each page to the temp folder.

This test drives Debian's chromium (`/usr/bin/chromium`); it never runs `playwright install`.
Figures (start-up time, redraw time, live-view delay) come from `python -m bench.ui`.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect, sync_playwright
from support import (
    TINTED,
    Dashboard,
    dashboard_env,
    encode,
    free_port,
    launch_chromium,
    wait_until,
    write_colours,
)

from cnn_core.runs import Run, list_runs

# Pictures of what the test saw, to look at after a failure. The README's screenshots show a
# real CIFAR-10 run and come from `python -m bench.screenshots`, never from this synthetic data.
SCREENSHOTS = Path(tempfile.gettempdir()) / "cnn_core_screenshots"
WIDTH, HEIGHT = 1400, 900  # the viewport; screenshots grow to the page's full height
MAX_SCREENSHOT_BYTES = 400_000  # they are committed and shown in the README
EPOCHS, BATCH = 200, 1  # ~0.4 s an epoch: it trains while we watch, refresh and stop it
LIVE_REFRESH = 1.5  # seconds between the Train page's reads of the run directory
TIMEOUT_MS = 30_000
PERCENT = re.compile(r"^\d+\.\d\d%$")


# --- the server and the browser ---------------------------------------------------------------


@dataclass
class App:
    url: str
    runs: Path
    data: Path
    log: Path


def write_dataset(root: Path) -> Path:
    """Three classes of 8x8 PNGs, 40 training and 10 test images each: grey tinted towards blue,
    green or red under heavy noise, so that the curves take a few epochs to climb."""
    return write_colours(root, train=40, test=10, colours=TINTED, noise=100)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """`streamlit run app.py` on a free port, with its runs, cache and data in tmp_path."""
    data = write_dataset(tmp_path / "colours")
    server = Dashboard(free_port(), dashboard_env(tmp_path, data=data), tmp_path / "server.log")
    try:
        server.start()
        yield App(server.url, server.runs, data, server.log)
    finally:
        server.close()


@pytest.fixture
def page(chromium: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS / 2)
            yield page
        finally:
            browser.close()


# --- finding things on a Streamlit page --------------------------------------------------------


def widget(page: Page, key: str) -> Locator:
    """The element container Streamlit marks with the widget's key (class `st-key-<key>`)."""
    return page.locator(f".st-key-{key}")


def button(page: Page, key: str) -> Locator:
    # A button with a tooltip is drawn twice (one copy hidden); the user clicks the visible one.
    return widget(page, key).locator("button").filter(visible=True).first


def layer_row(page: Page, index: int) -> Locator:
    """The Build page's row of layer `index` (0-based): the columns holding its delete button."""
    return page.get_by_test_id("stHorizontalBlock").filter(has=widget(page, f"del_{index}"))


def layer_count(page: Page) -> int:
    return page.locator("[class*='st-key-del_']").count()


def metric(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def nav(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()


def settled(page: Page) -> None:
    """Wait for the script run to end, then check that it drew no exception."""
    expect(
        page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")
    ).to_be_attached()
    exceptions = page.get_by_test_id("stException")
    assert exceptions.count() == 0, exceptions.first.inner_text()


def chart_points(page: Page, key: str) -> int:
    """Markers of the first (training) curve of a plotly line chart; 0 before it is drawn."""
    return widget(page, key).locator(".scatterlayer .trace").first.locator(".point").count()


def table_rows(page: Page) -> int:
    """Data rows of the page's first dataframe (its accessible grid counts the header too)."""
    grid = page.get_by_test_id("stDataFrame").locator("table[role='grid']").first
    rows = grid.get_attribute("aria-rowcount", timeout=1000) if grid.count() else None
    return int(rows) - 1 if rows else 0


def screenshot(page: Page, name: str, *, width: int = WIDTH, height: int = HEIGHT) -> None:
    """The whole page at this window size (Streamlit scrolls inside its main area, so the
    viewport grows to fit, then returns to width x height)."""
    full = page.evaluate(
        "() => Math.max(...['stMain', 'stSidebarContent'].map(id =>"
        " document.querySelector(`[data-testid=${id}]`)?.scrollHeight || 0))"
    )
    page.set_viewport_size({"width": width, "height": max(height, min(int(full), 6000))})
    page.mouse.move(width - 1, 0)  # no hover effects (plotly's toolbar) in the picture
    page.wait_for_timeout(500)  # charts follow the new size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled")
    page.set_viewport_size({"width": width, "height": height})
    if path.stat().st_size > MAX_SCREENSHOT_BYTES:  # mostly flat colours: a palette keeps it sharp
        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    assert path.stat().st_size <= MAX_SCREENSHOT_BYTES, f"{path.name} is too big for the README"


def png_file(name: str, colour: tuple[int, int, int], size: tuple[int, int]) -> dict:
    """A photo-sized PNG for an upload: a colour with texture, as a camera would give it."""
    rng = np.random.default_rng(1)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255)
    picture = encode(Image.fromarray(pixels.astype(np.uint8)), "PNG")
    return {"name": name, "mimeType": "image/png", "buffer": picture}


def history_rows(run: Run) -> int:
    return len(run.history())


# --- the path ---------------------------------------------------------------------------------


PAGES = ["Build", "Train", "Runs", "Evaluate", "Predict", "Search"]


def test_a_new_users_path(app: App, page: Page) -> None:
    defects: list[str] = []  # user-facing bugs that do not block the path: reported at the end
    open_a_shared_link_first(page, app)
    build_a_network(page, app)
    run = train_watch_refresh_and_stop(page, app)
    evaluate_it(page, run, defects)
    compare_runs(page)
    predict_photos(page)
    assert "Traceback" not in app.log.read_text(errors="replace"), app.log.read_text()
    assert "Traceback" not in run.log_tail(10_000), run.log_tail()
    assert not defects, defects


def sidebar_pages(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    return [link.inner_text().split("\n")[-1].strip() for link in links.all()]


def open_a_shared_link_first(page: Page, app: App) -> None:
    # The server is fresh: a deep link is its very first request (as after a restart, or when a
    # colleague opens a shared link). Streamlit's old pages-folder discovery used to take over:
    # every file in pages/ in the sidebar, a blank "ui" page, the narrow layout.
    page.goto(f"{app.url}/runs")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    settled(page)
    assert sidebar_pages(page) == PAGES
    width = page.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
    assert width > 900, f"the layout is narrow ({width:.0f} px of a {WIDTH} px window)"
    nav(page, "Train")  # and the navigation leads where it says
    expect(page.get_by_role("heading", name="Train")).to_be_visible()
    assert sidebar_pages(page) == PAGES and page.url.split("?")[0].endswith("/train")
    settled(page)


def build_a_network(page: Page, app: App) -> None:
    # The tutorial network is waiting, with its seven layers.
    page.goto(app.url)
    expect(button(page, "add_button")).to_be_enabled()
    settled(page)
    assert "draft=" in page.url
    assert layer_count(page) == 7
    expect(layer_row(page, 5)).to_contain_text("Flatten")

    # Add a Dropout at the end, move it above the Dense layer, then delete it.
    widget(page, "add_kind").locator("input").click()
    page.get_by_role("option", name="Dropout", exact=True).click()
    expect(button(page, "add_button")).to_have_text("Add Dropout")
    button(page, "add_button").click()
    expect(layer_row(page, 7)).to_contain_text("Dropout")
    settled(page)
    button(page, "down_6").click()
    expect(layer_row(page, 6)).to_contain_text("Dropout")
    expect(layer_row(page, 7)).to_contain_text("Dense 64")
    settled(page)
    button(page, "del_6").click()
    expect(widget(page, "del_7")).to_have_count(0)
    expect(layer_row(page, 6)).to_contain_text("Dense 64")
    settled(page)

    # Delete the Flatten: the Dense layer now gets a feature map; the fix puts a Flatten back.
    button(page, "del_5").click()
    problem = page.get_by_test_id("stAlert").filter(has_text="needs a flat input")
    expect(problem).to_contain_text("Layer 6 (Dense)")
    expect(page.get_by_text("1 problem(s) to fix")).to_be_visible()
    settled(page)
    button(page, "fix_5_dense_on_spatial").click()
    expect(page.get_by_text("This network is ready to train.")).to_be_visible()
    expect(problem).to_have_count(0)
    expect(layer_row(page, 5)).to_contain_text("Flatten")
    settled(page)

    # Size it for the dataset's 8x8 images.
    for side, shape in (("h", "8x32x3"), ("w", "8x8x3")):
        field = page.locator(f"[class*='st-key-input_{side}_'] input")
        field.fill("8")
        field.press("Enter")
        expect(page.get_by_role("code").filter(has_text=re.compile(f"^{shape}$"))).to_be_visible()
        settled(page)
    expect(metric(page, "Final feature map")).to_have_text("2x2x64")
    expect(page.get_by_text("This network is ready to train.")).to_be_visible()

    # The diagram, the Keras code and the spec are drawn when their expander is opened.
    for key, drawn in (
        ("diagram", widget(page, "diagram").locator("svg .node")),
        ("code", widget(page, "code").get_by_text("keras.Input(shape=(8, 8, 3)")),
        ("spec_json", widget(page, "spec_json").get_by_text('"input_shape"')),
    ):
        expect(drawn).to_have_count(0)
        widget(page, key).locator("summary").click()
        expect(drawn.first).to_be_visible()
        settled(page)
    expect(button(page, "download_code")).to_be_visible()
    for key in ("code", "spec_json"):  # closed again for the README's screenshot
        widget(page, key).locator("summary").click()
        expect(widget(page, key).locator("pre")).to_have_count(0)
        settled(page)
    screenshot(page, "build")


def train_watch_refresh_and_stop(page: Page, app: App) -> Run:
    # The draft and the dataset are already chosen; a long run of tiny batches, to watch.
    nav(page, "Train")
    expect(button(page, "start")).to_be_enabled()
    expect(page.get_by_text("Tutorial CNN (modified): 7 layers")).to_be_visible()  # edited
    expect(widget(page, "data_source").locator("input")).to_have_value(str(app.data))
    for key, value in (("ep", EPOCHS), ("bs", BATCH)):
        field = page.locator(f"[class*='st-key-{key}_v'] input")
        field.fill(str(value))
        field.press("Enter")
        expect(field).to_have_value(str(value))
        settled(page)
    button(page, "start").click()
    expect(button(page, "stop_run")).to_be_visible()
    (run,) = list_runs(app.runs)
    assert f"run={run.name}" in page.url
    settled(page)

    # Once the charts are drawn, every epoch written to history.csv reaches the chart and the
    # table within about one refresh of the live view (training keeps the CPU busy, so allow for
    # more). bench/ui.py measures this delay properly.
    delays = watch_epochs(page, run, epochs=6)
    print(f"\nepoch on disk -> on the page: {delays} s")
    assert statistics.median(delays) < 2 * LIVE_REFRESH, f"epochs reached the page after {delays} s"
    assert max(delays) < 4 * LIVE_REFRESH, f"epochs reached the page after {delays} s"
    settled(page)
    screenshot(page, "train")

    # A refresh shows the same run, still training, with its history.
    seen = chart_points(page, "acc_chart")
    page.reload()
    expect(widget(page, "acc_chart")).to_be_visible()
    assert f"run={run.name}" in page.url
    expect(page.get_by_role("heading", name=run.name)).to_be_visible()
    expect(metric(page, "State")).to_have_text("running")
    # Plotly draws the points a moment after the chart's frame appears.
    wait_until(
        lambda: chart_points(page, "acc_chart") >= seen, 30, what="the whole history after reload"
    )
    settled(page)

    # Stop it: it ends within a batch, keeps its model and offers to resume.
    button(page, "stop_run").click()
    expect(metric(page, "State")).to_have_text("stopped")
    expect(button(page, "resume_run")).to_be_visible()
    assert run.status().state == "stopped" and run.has_model()
    assert history_rows(run) < EPOCHS
    settled(page)
    return run


def evaluate_it(page: Page, run: Run, defects: list[str]) -> None:
    # From the run's own link, as a user would go.
    page.get_by_test_id("stMain").get_by_role("link", name="Evaluate").click()
    expect(button(page, "evaluate")).to_be_visible()
    assert f"run={run.name}" in page.url
    settled(page)
    button(page, "evaluate").click()
    expect(widget(page, "confusion").locator("g.hm")).to_be_attached(timeout=60_000)
    expect(metric(page, "Test accuracy")).to_have_text(PERCENT)
    expect(metric(page, "Test images")).to_have_text("30")
    settled(page)
    if page.get_by_text("has not been evaluated on the test set yet").count():
        defects.append("Evaluate still says the run has not been evaluated, beside its results")
    screenshot(page, "evaluate")


def compare_runs(page: Page) -> None:
    # The run is in the table; selecting its row (the grid's checkbox) draws its curves.
    nav(page, "Runs")
    table = page.get_by_test_id("stDataFrame")
    expect(table).to_be_visible()
    wait_until(lambda: table_rows(page) == 1, 30, what="the runs table to list the run")
    settled(page)
    table.click(position={"x": 16, "y": 52})  # header and rows are 35 px high
    expect(widget(page, "cmp_acc").locator(".scatterlayer .trace").first).to_be_attached()
    settled(page)
    screenshot(page, "runs")


def predict_photos(page: Page) -> None:
    # A photo gets percentages.
    nav(page, "Predict")
    uploader = widget(page, "photos").locator("input[type='file']")
    uploader.set_input_files([png_file("red.png", (200, 40, 40), (320, 240))])
    top = widget(page, "top_1").locator("text.bartext").first
    expect(top).to_contain_text("%", timeout=60_000)  # the server loads the model first
    settled(page)

    # A broken file beside a good one: one line for the broken one, percentages for the good one.
    broken = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture\n"}
    uploader.set_input_files([broken, png_file("green.png", (40, 200, 40), (200, 150))])
    error = page.get_by_test_id("stAlert").filter(has_text="broken.jpg")
    expect(error).to_have_count(1)
    message = error.get_by_test_id("stMarkdownContainer").inner_text().strip()
    assert "\n" not in message and "Traceback" not in message, message
    expect(widget(page, "top_3").locator("text.bartext").first).to_contain_text("%")
    expect(top).to_contain_text("%")
    settled(page)
    screenshot(page, "predict")


def watch_epochs(page: Page, run: Run, *, epochs: int) -> list[float]:
    """Seconds from each history.csv row appearing on disk to its point on the chart and its row
    in the table, for `epochs` epochs after the charts are first drawn.

    The disk is polled every 10 ms and the page every 100 ms, so each delay is good to ~0.1 s.
    """
    expect(widget(page, "acc_chart").locator(".point").first).to_be_attached(timeout=60_000)
    history = run.file("history.csv")
    first_points, known = chart_points(page, "acc_chart"), history_rows(run)
    written: dict[int, float] = {}  # epoch (1-based) -> when its row appeared on disk
    shown: dict[int, float] = {}  # epoch -> when both its point and its table row were there
    last_look, deadline = 0.0, time.monotonic() + 60
    while len(shown) < epochs and time.monotonic() < deadline:
        rows = history_rows(run)
        for n in range(known + 1, rows + 1):  # only rows written while watching are timed
            written.setdefault(n, history.stat().st_mtime)
        if time.monotonic() - last_look >= 0.1:
            last_look = time.monotonic()
            on_page = min(chart_points(page, "acc_chart"), table_rows(page))
            for n in written.keys() - shown.keys():
                if n <= on_page:
                    shown[n] = time.time()
        time.sleep(0.01)
    assert len(shown) >= epochs, f"{len(shown)} of {epochs} epochs reached the page: {run.status()}"
    assert chart_points(page, "acc_chart") > first_points  # the chart grew between two looks
    assert run.status().state == "running", "the run ended before it could be watched"
    return [round(shown[n] - written[n], 2) for n in sorted(shown)]


def test_tabs_opened_together_on_a_fresh_server_each_show_the_six_pages(app: App, page: Page):
    """After a restart every open tab reconnects at once: each first run is set up the old
    pages-folder way, and each must still end in app.py's navigation (a check of the server's
    flag alone let all but the first show every file in pages/)."""
    browser = page.context.browser
    assert browser is not None
    tabs = [page, *(browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}) for _ in "123")]
    for tab, path in zip(tabs, ("runs", "train?run=x", "evaluate", "predict"), strict=True):
        tab.goto(f"{app.url}/{path}", wait_until="commit")  # all four in flight together
    for tab in tabs:
        expect(tab.get_by_test_id("stSidebarNav")).to_be_visible()
        settled(tab)
        assert sidebar_pages(tab) == PAGES, tab.url
    assert "Traceback" not in app.log.read_text(errors="replace")


def test_the_search_page_in_chromium_at_a_laptop_and_a_wide_screen(app: App, page: Page):
    """A search's trials as users see them: the table, the best-so-far curve, the parallel
    coordinates and the importances drawn (a real Optuna study, its trials' runs on disk)."""
    from test_search import write_study

    told = [
        ({"learning_rate": 0.001, "1.filters": 4}, 0.62),
        ({"learning_rate": 0.01, "1.filters": 8}, 0.81),
        ({"learning_rate": 0.03, "1.filters": 8}, 0.74),
    ]
    write_study("colours-search", app.runs, told)
    for width, height in ((1024, 768), (WIDTH, HEIGHT)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{app.url}/search")
        expect(page.locator(".js-plotly-plot .parcoords")).to_have_count(1)
        expect(page.locator(".js-plotly-plot")).to_have_count(3)
        settled(page)
        screenshot(page, f"search-{width}", width=width, height=height)
    assert "Traceback" not in app.log.read_text(errors="replace")
