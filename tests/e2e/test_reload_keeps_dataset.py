"""A reload of any page reopens the chosen data set: it lives in the address (``?dataset=``),
which every page keeps in step; before, a reload of Train forgot it (issue #29, item 9)."""

from __future__ import annotations

import pytest
from conftest import goto, settle
from helpers import write_dataset

pytestmark = pytest.mark.browser


def test_a_reload_of_the_train_page_keeps_the_data_set(page, studio_url, studio_dirs):
    data = write_dataset(studio_dirs["data"] / "reload-birds", num_classes=2, per_class=4)
    page.goto(f"{studio_url}/?dataset={data}")
    page.wait_for_selector('h2:has-text("Dataset"), h1:has-text("Dataset")')
    settle(page)
    goto(page, "Train")
    settle(page)
    # the page writes the address as it runs: wait for it rather than read it at once
    page.wait_for_function("() => location.search.includes('reload-birds')", timeout=30_000)
    page.reload()
    page.wait_for_selector('h2:has-text("Train"), h1:has-text("Train")')
    settle(page)
    box = page.get_by_role("textbox", name="Dataset folder")
    box.wait_for(timeout=30_000)
    page.wait_for_function(
        "(want) => [...document.querySelectorAll('input')].some(i => i.value === want)",
        arg=str(data),
        timeout=30_000,
    )
    assert box.input_value() == str(data)
    assert page.get_by_text("Pick a dataset first.").count() == 0
