"""Every page at the two widths people use (a laptop at 1280 px, a desktop at 1920 px), in a real
browser: no exception box, and no button whose words are cut to "K…" (a newcomer could not tell
Clean's Relabel from Remove at 1400 px, issue #29). The pages have a tiny data set chosen and a
tiny trained run to show, and Clean has scored the data set and kept one image, so its row
actions and the line saying what a change did (with its Undo) are drawn."""

from __future__ import annotations

import re

import pytest
from conftest import goto, screenshot, settle, start_server, stop_server
from helpers import fast_config, write_dataset

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WIDTHS = (1280, 1920)
PAGES = ("Dataset", "Label", "Train", "Evaluate", "Classify", "Clean", "Runs", "Tune")
ROW_ACTIONS = ("Keep", "Relabel", "Remove")

# Each visible button whose label (or a part of it) is narrower than its text: CSS cuts such a
# label with an ellipsis the page's text never contains, so only the widths tell.
CUT_BUTTONS = """() => Array.from(document.querySelectorAll('button'))
    .filter(b => b.checkVisibility() && b.getClientRects().length > 0)
    .filter(b => [b, ...b.querySelectorAll('*')].some(
        el => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1))
    .map(b => b.innerText.trim() || b.getAttribute('aria-label') || b.outerHTML.slice(0, 80))"""
# The same test for one button: true when every part of it shows all of its text.
FITS = """b => [b, ...b.querySelectorAll('*')].every(el => el.scrollWidth <= el.clientWidth + 1)"""


@pytest.fixture(scope="module")
def width_server(tmp_path_factory):
    """A server of its own over a tiny data set and one tiny finished run (the session's shared
    server is left to the journeys, which expect their folders empty)."""
    from modelkit.training.loop import Trainer

    base = tmp_path_factory.mktemp("widths")
    dirs = {"data": base / "data", "runs": base / "runs", "home": base}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    data = write_dataset(dirs["data"] / "shapes", num_classes=3, per_class=8)
    result = Trainer(fast_config(data, dirs["runs"], epochs=1, arch="resnet18")).fit()
    assert result.state == "finished"
    proc, url = start_server(dirs)
    yield url, data
    stop_server(proc)


def _choose_dataset(page, url: str, data) -> None:
    page.goto(url)
    page.wait_for_selector('h2:has-text("Dataset"), h1:has-text("Dataset")')
    box = page.get_by_label("Dataset folder", exact=True)
    box.fill(str(data))
    box.press("Enter")
    page.get_by_role("button", name="Open", exact=True).click()
    settle(page)


def _score_on_clean(page) -> None:
    page.locator('[data-testid="stSelectbox"]', has_text="Features from").click()
    page.get_by_role("option", name=re.compile("Colour thumbnails")).click()
    settle(page)
    page.get_by_role("button", name=re.compile("Find label issues")).click()
    page.get_by_text("Likely label errors").wait_for(timeout=120_000)
    settle(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_its_buttons(browser, width_server, width):
    url, data = width_server
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        _choose_dataset(page, url, data)
        problems = []
        for title in PAGES:
            goto(page, title)
            settle(page)
            if title == "Clean":
                _score_on_clean(page)
                for word in ROW_ACTIONS:
                    button = page.get_by_role("button", name=re.compile(rf"^(\w+ )?{word}$")).first
                    button.scroll_into_view_if_needed()
                    shown = button.inner_text().strip()
                    assert shown.endswith(word), f"Clean at {width} px shows {shown!r}"
                    assert button.evaluate(FITS), f"Clean at {width} px cuts {word} short"
                page.get_by_role("button", name=re.compile(r"^(\w+ )?Keep$")).first.click()
                settle(page)  # the change's line, with its Undo, is checked with the rest
                page.get_by_test_id("stAlert").filter(has_text="Kept ").wait_for()
            screenshot(page, f"width-{width}-{title.lower()}")
            if page.locator('[data-testid="stException"]').count():
                problems.append(f"{title}: an exception is shown")
            if cut := page.evaluate(CUT_BUTTONS):
                problems.append(f"{title}: buttons cut short: {cut}")
        assert not problems, f"at {width} px: " + "; ".join(problems)
    finally:
        context.close()
