"""The Evaluate page's confusion matrix in headless Chromium: every cell is clickable.

The run holds a model and a stored evaluation written by hand (no model is run), so the matrix is
known: the page first shows the most common mistake; a click anywhere in a cell, an empty one
too, shows that cell's images; and after the class selectboxes are used, a click wins again.

This drives Debian's chromium (`/usr/bin/chromium`) through the `app` and `page` fixtures of
`test_browser.py`; it never runs `playwright install`.
"""

from __future__ import annotations

import re

import numpy as np
import test_browser
from playwright.sync_api import Page, expect
from reliability.kit import make_model_run
from support import CLASSES
from test_browser import App, settled, widget

from cnn_core.evaluate import metrics
from cnn_core.runs import EVALUATION, MODEL, PREDICTIONS, Run, atomic_write_json

app, page = test_browser.app, test_browser.page  # the path test's fixtures: server, browser

# rows: true blue, green, red (10 test images each, as test_browser writes them); columns:
# predicted. The most common mistake is red taken for green; green is never taken for blue.
MATRIX = [[5, 1, 4], [0, 7, 3], [2, 6, 2]]


def confidence(true: int, predicted: int, rank: int) -> float:
    """The predicted class's probability of the `rank`-th image of a cell: a whole percentage
    that names the cell (50% + 5% per cell, row by row), minus 1% per rank."""
    return 0.50 + 0.05 * (3 * true + predicted) - 0.01 * rank


def evaluated_run(app: App) -> Run:
    """A run with a model and a stored evaluation whose confusion matrix is MATRIX."""
    run = make_model_run(app.runs, data_source=str(app.data))
    y_true, probabilities = [], []
    for true, row in enumerate(MATRIX):
        for predicted, count in enumerate(row):
            for rank in range(count):
                p = confidence(true, predicted, rank)
                probabilities.append([(1 - p) / 2] * 3)
                probabilities[-1][predicted] = p
                y_true.append(true)
    y_true, probabilities = np.array(y_true), np.array(probabilities)
    report = metrics(y_true, probabilities, CLASSES)
    assert report["confusion_matrix"] == MATRIX
    report.update(
        seconds=0.0,
        data_source=str(app.data),
        evaluated_at="2000-01-01T00:00:00",
        model_mtime=run.file(MODEL).stat().st_mtime_ns,
    )
    np.savez(
        run.file(PREDICTIONS),
        y_true=y_true.astype(np.int16),
        y_pred=probabilities.argmax(axis=1).astype(np.int16),
        probabilities=probabilities.astype(np.float16),
    )
    atomic_write_json(run.file(EVALUATION), report)
    return run


def cell_centre(page: Page, true: int, predicted: int, *, at: float = 0.5) -> tuple[float, float]:
    """Where on the screen the matrix's cell is; `at` is how far across and down it (0 to 1).
    The plot area is plotly's drag rectangle; rows go down (true), columns across (predicted)."""
    area = widget(page, "confusion").locator("rect.nsewdrag").first
    area.scroll_into_view_if_needed()  # the mouse points only at what is on the screen
    box = area.bounding_box()
    assert box is not None
    n = len(MATRIX)
    width, height = box["width"] / n, box["height"] / n
    return box["x"] + (predicted + at) * width, box["y"] + (true + at) * height


def click_cell(page: Page, true: int, predicted: int, *, at: float = 0.5) -> None:
    """Point at the cell until plotly's hover label names it, as a user would, then click."""
    x, y = cell_centre(page, true, predicted, at=at)
    label = f"true {CLASSES[true]}, predicted {CLASSES[predicted]}: {MATRIX[true][predicted]}"
    hover = widget(page, "confusion").locator(".hoverlayer")
    for step in range(20):  # a chart redrawn after the last click may miss the first move
        page.mouse.move(x + step % 2, y)
        page.wait_for_timeout(100)
        if label in (hover.text_content() or ""):
            break
    expect(hover).to_contain_text(label)
    page.mouse.click(x, y)


def expect_cell(page: Page, true: int, predicted: int) -> None:
    """The subheader names the cell and its count; its images are below, most confident first."""
    count = MATRIX[true][predicted]
    title = f"True {CLASSES[true]}, predicted {CLASSES[predicted]}: {count} image"
    expect(page.get_by_role("heading", name=re.compile(f"^{title}s?$"))).to_be_visible()
    captions = [f"{confidence(true, predicted, rank):.0%}" for rank in range(count)]
    images = widget(page, "cell_images").get_by_test_id("stImage")
    expect(images).to_have_count(count)
    if count:
        expect(images.get_by_test_id("stImageCaption")).to_have_text(captions)
    else:
        expect(widget(page, "cell_images")).to_contain_text("No test images in this cell.")
    settled(page)


def choose(page: Page, key: str, option: str) -> None:
    field = widget(page, key).locator("input")
    field.scroll_into_view_if_needed()  # a list opened while the page scrolls closes again
    field.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_click_on_any_cell_shows_its_images(app: App, page: Page) -> None:
    run = evaluated_run(app)
    page.goto(f"{app.url}/evaluate?run={run.name}")
    expect(widget(page, "confusion").locator("rect.nsewdrag")).to_be_attached(timeout=60_000)
    settled(page)
    expect_cell(page, 2, 1)  # the most common mistake comes first

    click_cell(page, 0, 2, at=0.9)  # near a corner: the whole cell is the target
    expect_cell(page, 0, 2)
    click_cell(page, 1, 0)  # a cell with no images
    expect_cell(page, 1, 0)

    # The selectboxes follow the clicks and choose a cell too; then a click wins again, also on
    # the cell clicked before.
    expect(widget(page, "cell_true").locator("input")).to_have_value("green")
    expect(widget(page, "cell_pred").locator("input")).to_have_value("blue")
    choose(page, "cell_true", "blue")
    expect_cell(page, 0, 0)
    click_cell(page, 1, 0)
    expect_cell(page, 1, 0)
    click_cell(page, 2, 2, at=0.1)
    expect_cell(page, 2, 2)
    assert "Traceback" not in app.log.read_text(errors="replace"), app.log.read_text()
