"""The Train page's dataset upload in headless Chromium, against `streamlit run app.py`.

A user whose images are on their own computer uploads a .zip of them: it is kept on the server,
becomes the source (the typed path is set aside) and Start is enabled; an archive over the
photos' 10 MB is accepted too; a broken archive or a picture named .zip shows the reason and
Start is disabled. Fixtures and helpers come from `test_browser.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import test_browser
from playwright.sync_api import Page, expect
from support import folder_files, tar_gz_files, zip_files
from test_browser import SCREENSHOTS, App, button, png_file, settled, widget

app = test_browser.app
page = test_browser.page


def zipped(root: Path, *, padding: int = 0) -> dict:
    """The dataset folder as a .zip upload; `padding` random bytes stored beside it."""
    files = folder_files(root, pattern="*.png")
    if padding:
        files[f"{root.name}/notes.bin"] = np.random.default_rng(0).bytes(padding)  # incompressible
    return {"name": f"{root.name}.zip", "mimeType": "application/zip", "buffer": zip_files(files)}


def cut_tar_gz(root: Path) -> dict:
    data = tar_gz_files(folder_files(root))
    return {"name": "cut.tar.gz", "mimeType": "application/gzip", "buffer": data[: len(data) // 2]}


def upload(page: Page, file: dict) -> None:
    widget(page, "dataset_upload").locator("input[type='file']").set_input_files([file])
    expect(page.get_by_test_id("stMain")).to_contain_text(f"Uploaded: {file['name']} (")
    settled(page)


def dataset_section_screenshot(page: Page, name: str) -> None:
    """The window, scrolled so that the Dataset heading is at its top (to look at, not compared)."""
    page.get_by_role("heading", name="Dataset").evaluate("e => e.scrollIntoView()")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def uploaded_files(app: App) -> list[Path]:
    folder = app.runs.parent / "cache" / "uploads"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_dataset_archive_uploaded_on_the_train_page(app: App, page: Page) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(f"{app.url}/train")
    expect(page.get_by_role("heading", name="Dataset")).to_be_visible()
    settled(page)
    dataset_section_screenshot(page, "train-dataset-1024")
    main = page.get_by_test_id("stMain")
    start = button(page, "start")

    small = zipped(app.data)
    upload(page, small)
    [saved] = uploaded_files(app)
    assert saved.read_bytes() == small["buffer"] and saved.name == "colours.zip"
    expect(main).to_contain_text(f"Uploaded: colours.zip ({len(small['buffer']):,} bytes)")
    expect(main).to_contain_text(str(saved))  # the source note: where it is read from
    expect(widget(page, "data_source").locator("input")).to_be_disabled()
    expect(start).to_be_enabled()
    dataset_section_screenshot(page, "train-dataset-upload-1024")

    # Bigger than a photo may be: the server takes it (its cap is a dataset archive's).
    big = zipped(app.data, padding=11 * 2**20)
    upload(page, big)
    expect(main).to_contain_text("Uploaded: colours.zip (11.")
    expect(start).to_be_enabled()
    assert len(uploaded_files(app)) == 2

    for bad, words in (
        (cut_tar_gz(app.data), "The archive cut.tar.gz is corrupt or unreadable"),
        (png_file("photo.zip", (9, 9, 9), (8, 8)), "not a .zip, .tar or .tar.gz archive"),
    ):
        upload(page, bad)
        alert = page.get_by_test_id("stAlert").filter(has_text=words)
        expect(alert).to_have_count(1)
        message = alert.get_by_test_id("stMarkdownContainer").inner_text().strip()
        assert "\n" not in message and "Traceback" not in message, message
        expect(start).to_be_disabled()
        expect(main).to_contain_text("choose a dataset that can be used")
    dataset_section_screenshot(page, "train-dataset-refused-1024")
    assert len(uploaded_files(app)) == 2  # neither refused upload was kept
    assert "Traceback" not in app.log.read_text(errors="replace"), app.log.read_text()
