"""The Build page's layer list in headless Chromium at laptop sizes, against `streamlit run app.py`.

At 1024x768 and 1280x800 (the sidebar open) and at 1400x1000, every row button shows its whole
icon in a button of a sane size, nothing covers it, and a click does what it says. A layer dragged
in the "Drag to reorder the layers" list under the stack (a component in an iframe) moves there,
once, and the draft is then named "Tutorial CNN (modified)". It saves screenshots of the Build page
at 1024x768 and 1400x1000 into the temp folder (the README's: `python -m bench.screenshots`).

The server, the browser and the helpers are test_browser.py's.
"""

from __future__ import annotations

import re

import test_browser
from playwright.sync_api import Locator, Page, expect
from test_browser import (
    App,
    button,
    layer_count,
    layer_row,
    screenshot,
    settled,
    widget,
)

app = test_browser.app  # the fixtures: the server and the browser; pytest finds them here
page = test_browser.page

SIZES = ((1024, 768), (1280, 800), (1400, 1000))  # small laptops, a common laptop, a desktop
SCREENSHOT_SIZES = ((1024, 768), (1400, 1000))
ROW_BUTTONS = ("edit", "up", "down", "dup", "del")
MIN_BUTTON_PX, MIN_ICON_PX = 24, 12  # the icons are 14 px glyphs; a clipped one is a sliver

# For each row button: the visible copy (one with a tooltip is drawn twice), scrolled into view;
# what is wrong with it, if anything, in words.
ICON_PROBLEMS = """(keys) => {
  const main = document.querySelector("[data-testid=stMain]").getBoundingClientRect();
  return keys.map((key) => {
    const button = [...document.querySelectorAll(`.st-key-${key} button`)]
      .find((b) => b.checkVisibility());
    if (!button) return `${key}: no visible button`;
    button.scrollIntoView({block: "center"});
    const b = button.getBoundingClientRect();
    const icon = button.querySelector("span[role=img]");
    if (!icon) return `${key}: no icon`;
    const i = icon.getBoundingClientRect();
    const problems = [];
    if (b.width < MIN_BUTTON || b.height < MIN_BUTTON) {
      problems.push(`button ${b.width}x${b.height} px`);
    }
    if (i.width < MIN_ICON || icon.scrollWidth > icon.clientWidth + 1) {
      problems.push(`icon ${i.width} px wide, its glyph ${icon.scrollWidth} px`);
    }
    // The glyph must lie inside the button and inside every box between them that clips.
    for (let box = icon.parentElement; box !== button.parentElement; box = box.parentElement) {
      if (box !== button && getComputedStyle(box).overflowX === "visible") continue;
      const r = box.getBoundingClientRect();
      const left = r.left + box.clientLeft, top = r.top + box.clientTop;
      if (i.left < left - 0.5 || i.right > left + box.clientWidth + 0.5 ||
          i.top < top - 0.5 || i.bottom > top + box.clientHeight + 0.5) {
        problems.push(`icon cut off by ${box === button ? "its button" : box.className}`);
        break;
      }
    }
    if (b.left < main.left || b.right > main.right) problems.push("button outside the main area");
    const hit = document.elementFromPoint(i.left + i.width / 2, i.top + i.height / 2);
    if (!button.disabled && !button.contains(hit)) problems.push(`covered by ${hit?.className}`);
    return problems.length ? `${key}: ${problems.join(", ")}` : null;
  }).filter(Boolean);
}""".replace("MIN_BUTTON", str(MIN_BUTTON_PX)).replace("MIN_ICON", str(MIN_ICON_PX))


def name_field(page: Page) -> Locator:
    """The name field. Its key carries a version, so during a rerun that changes the name the old
    field (marked stale) and the new one are both on the page for a moment."""
    return page.locator("[class*='st-key-spec_name_']:not([data-stale='true']) input")


def drag_list(page: Page) -> Locator:
    """The chips of the drag-and-drop list, inside the component's iframe."""
    frame = page.locator("[class*='st-key-layer_order_'] iframe").content_frame
    return frame.locator(".sortable-item")


def drag(page: Page, source: Locator, target: Locator) -> None:
    """Drag `source` onto `target` as a hand would: dnd-kit starts a drag only after 10 px."""
    source.scroll_into_view_if_needed()  # the list is under the stack, often below the fold
    start, end = source.bounding_box(), target.bounding_box()
    assert start and end
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 15, y, steps=3)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=15)
    page.wait_for_timeout(200)  # the list settles on its drop position
    page.mouse.up()


def test_row_buttons_show_whole_icons_and_work_at_laptop_sizes(app: App, page: Page) -> None:
    page.goto(app.url)
    expect(button(page, "del_6")).to_be_visible()
    settled(page)
    layers = layer_count(page)
    keys = [f"{name}_{i}" for i in range(layers) for name in ROW_BUTTONS]
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        expect(page.get_by_test_id("stSidebarContent")).to_be_visible()  # the sidebar stays open
        page.wait_for_timeout(300)  # the layout follows the new size
        problems = page.evaluate(ICON_PROBLEMS, keys)
        assert not problems, f"at {width}x{height}: {problems}"
        if (width, height) in SCREENSHOT_SIZES:
            screenshot(page, f"build-{width}x{height}", width=width, height=height)

        # Each kind of button does its job at this size.
        button(page, "down_0").click()
        expect(layer_row(page, 0)).to_contain_text("MaxPooling2D")
        settled(page)
        button(page, "up_1").click()
        expect(layer_row(page, 0)).to_contain_text("Conv2D 32")
        settled(page)
        button(page, f"dup_{layers - 1}").click()
        expect(layer_row(page, layers)).to_contain_text("Dense 64")
        settled(page)
        button(page, f"del_{layers}").click()
        expect(widget(page, f"del_{layers}")).to_have_count(0)
        settled(page)
        button(page, "edit_0").click()
        expect(button(page, "apply_0")).to_be_visible()
        settled(page)
        button(page, "cancel_0").click()
        expect(widget(page, "apply_0")).to_have_count(0)
        settled(page)
        expect(name_field(page)).to_have_value("Tutorial CNN (modified)")
        button(page, "preset_tutorial_cnn").click()  # the preset again: its plain name
        expect(name_field(page)).to_have_value("Tutorial CNN")
        settled(page)


def test_dragging_a_layer_in_the_list_moves_it_there_once(app: App, page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(app.url)
    chips = drag_list(page)
    expect(chips).to_have_count(7)
    settled(page)
    drag(page, chips.filter(has_text="1. Conv2D"), chips.filter(has_text="3. Conv2D"))

    # The first Conv2D (32 filters) now comes after the pooling and the second Conv2D (64).
    expect(layer_row(page, 2)).to_contain_text("Conv2D 32")
    settled(page)
    expected = ("MaxPooling2D 2x2", "Conv2D 64", "Conv2D 32", "MaxPooling2D 2x2", "Conv2D 64")
    for i, text in enumerate(expected):
        expect(layer_row(page, i)).to_contain_text(text)
    expect(chips.first).to_have_text("1. MaxPooling2D")  # the list shows the new order
    expect(name_field(page)).to_have_value("Tutorial CNN (modified)")

    # Once: another run of the page (opening an expander reruns it) moves nothing.
    widget(page, "spec_json").locator("summary").click()
    expect(widget(page, "spec_json").get_by_text('"input_shape"')).to_be_visible()
    settled(page)
    for i, text in enumerate(expected):
        expect(layer_row(page, i)).to_contain_text(text)
    expect(chips).to_have_text(
        [re.compile(rf"^{i + 1}\. ") for i in range(7)]  # renumbered, still seven
    )
    assert layer_count(page) == 7
