"""The README's screenshots, from a real CIFAR-10 run in a real browser (headless Chromium).

Starts `streamlit run app.py` on the JPEG copy of CIFAR-10 beside the repository, and walks the
path the README describes: the Build page as a new user first sees it (at 1400x1000 and at
1024x768), a run of the Fast CPU preset trained from the Train page, its evaluation on the
10,000 test images, the Runs table, and four test images on the Predict page. It also times the
first point of the live chart: from the first epoch's row landing in history.csv to its point on
the chart, while training keeps the CPU busy.

    python -m bench.screenshots          # writes docs/screenshots/*.png (about 4 minutes)

The browser test (`tests/test_browser.py`) walks the same pages on tiny synthetic data and
never writes these files.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

from bench.common import ROOT, cifar_source, write_result
from bench.ui import server, settle, usable_build_page
from cnn_core.runs import Run, list_runs
from tests.support import chromium_path, launch_chromium

SHOTS = ROOT / "docs" / "screenshots"
WIDE = {"width": 1400, "height": 1000}
SMALL = {"width": 1024, "height": 768}
MAX_BYTES = 400_000  # committed and shown in the README
PHOTOS = ("cat", "ship", "horse", "truck")  # one test image of each, as uploads
TRAIN_TIMEOUT = 20 * 60  # seconds: decoding 60,000 JPEGs once, then the preset's epochs


def shot(page: Page, name: str, *, full: bool = True) -> Path:
    """The page (grown to its full height when `full`), as SHOTS/name.png, under MAX_BYTES."""
    viewport = page.viewport_size
    if full:
        height = page.evaluate(
            "() => Math.max(...['stMain', 'stSidebarContent'].map(id =>"
            " document.querySelector(`[data-testid=${id}]`)?.scrollHeight || 0))"
        )
        page.set_viewport_size({**viewport, "height": max(viewport["height"], min(height, 6000))})
    page.mouse.move(viewport["width"] - 1, 0)  # no hover effects in the picture
    page.wait_for_timeout(800)  # charts follow the new size
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=full, animations="disabled")
    page.set_viewport_size(viewport)
    if path.stat().st_size > MAX_BYTES:  # mostly flat colours: a palette keeps it sharp
        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1000} kB")
    return path


def sample_photos(source: str, folder: Path) -> list[Path]:
    """One test image of each class in PHOTOS, copied out of the archive."""
    wanted: dict[str, Path | None] = dict.fromkeys(PHOTOS)
    with tarfile.open(source) as archive:
        for member in archive:
            parts = member.name.split("/")
            if len(parts) >= 3 and parts[-3] == "test" and wanted.get(parts[-2], 1) is None:
                path = folder / f"{parts[-2]}.jpg"
                path.write_bytes(archive.extractfile(member).read())
                wanted[parts[-2]] = path
            if all(wanted.values()):
                break
    return [wanted[name] for name in PHOTOS]


def click_key(page: Page, key: str) -> None:
    page.locator(f".st-key-{key} button").filter(visible=True).first.click()


def first_point_delay(page: Page, run: Run) -> float:
    """Seconds from epoch 1's row in history.csv to its point on the Train page's chart."""
    history = run.file("history.csv")
    deadline = time.monotonic() + TRAIN_TIMEOUT
    while not run.history():
        if time.monotonic() > deadline or run.status().finished:
            raise SystemExit(f"no epoch finished: {run.status()}\n{run.log_tail()}")
        time.sleep(0.01)
    written = history.stat().st_mtime
    page.locator(".st-key-acc_chart .scatterlayer .trace .point").first.wait_for(
        state="attached", timeout=120_000
    )
    return time.time() - written


def main() -> None:
    source = cifar_source()
    if chromium_path() is None:
        raise SystemExit("bench.screenshots needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        home = Path(tmp)
        dashboard = server(home, Path(source))
        browser = launch_chromium(playwright)
        try:
            dashboard.start()
            page = browser.new_page(viewport=WIDE)
            page.set_default_timeout(60_000)

            # Build: the tutorial network, as a new user first sees it.
            page.goto(dashboard.url)
            usable_build_page(page)
            settle(page)
            shot(page, "build")
            shot(page, "build-1400x1000", full=False)
            page.set_viewport_size(SMALL)
            page.wait_for_timeout(500)
            shot(page, "build-1024x768", full=False)
            page.set_viewport_size(WIDE)

            # Train: the Fast CPU preset with its recommended settings, watched live.
            page.goto(f"{dashboard.url}/train")
            page.get_by_test_id("stRadio").get_by_text("Preset: Fast CPU CNN").click()
            settle(page)
            click_key(page, "recommend_fast_cpu")
            settle(page)
            click_key(page, "start")
            page.locator(".st-key-stop_run").wait_for()
            (run,) = list_runs(dashboard.runs)
            delay = first_point_delay(page, run)
            print(f"epoch 1 on disk -> its point on the chart: {delay:.2f} s")
            deadline = time.monotonic() + TRAIN_TIMEOUT
            while not run.status().finished:
                if time.monotonic() > deadline:
                    raise SystemExit(f"training did not finish: {run.status()}")
                time.sleep(1)
            status = run.status()
            if status.state != "completed":
                raise SystemExit(f"the run {status.state}: {status.error}\n{run.log_tail()}")
            page.get_by_test_id("stMetricValue").filter(has_text="completed").wait_for()
            page.wait_for_timeout(2000)  # the last refresh of the live view
            shot(page, "train")

            # Evaluate on the 10,000 test images.
            page.get_by_test_id("stMain").get_by_role("link", name="Evaluate").click()
            click_key(page, "evaluate")
            page.get_by_test_id("stMetric").filter(has_text="Test accuracy").wait_for(
                timeout=300_000
            )
            settle(page)
            page.wait_for_timeout(1500)  # the test images of the chosen cell
            shot(page, "evaluate")
            accuracy = run.evaluation().accuracy

            # Runs: the run selected in the table, its curves drawn.
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
            table = page.get_by_test_id("stDataFrame")
            table.wait_for()
            settle(page)
            table.click(position={"x": 16, "y": 52})  # the first row's checkbox
            page.locator(".st-key-cmp_acc .scatterlayer .trace").first.wait_for(state="attached")
            settle(page)
            shot(page, "runs")

            # Predict: four CIFAR-10 test images, uploaded as photos.
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Predict").click()
            photos = sample_photos(source, home)
            page.locator(".st-key-photos input[type='file']").set_input_files(photos)
            page.locator(f".st-key-top_{len(photos)} text.bartext").first.wait_for(timeout=120_000)
            settle(page)
            page.wait_for_timeout(1500)
            shot(page, "predict")
        finally:
            browser.close()
            dashboard.close()
    print(f"{run.name}: {status.epochs_completed} epochs, test accuracy {accuracy:.2%}")
    write_result(
        "screenshots",
        {
            "run": run.name,
            "epochs": status.epochs_completed,
            "test_accuracy": accuracy,
            "best_val_accuracy": status.best_val_accuracy,
            "first_epoch_to_chart_seconds": round(delay, 2),
            "training_seconds": run.duration(status),
            "data": "cifar10-jpeg.tar.gz",
        },
    )


if __name__ == "__main__":
    main()
