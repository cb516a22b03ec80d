"""Cleaning a folder in a real browser: open Clean -> score -> relabel one image -> remove one
-> undo the removal; the files end up where they should, the journal says so, and each change
says on the page which file went where."""

from __future__ import annotations

import json
import os
import random
import re

import pytest
from conftest import screenshot, settle
from PIL import Image, ImageDraw

pytestmark = [pytest.mark.slow, pytest.mark.browser]

COLOURS = {"blue": (40, 60, 220), "green": (40, 190, 60), "red": (220, 40, 40)}


def _dataset(root):
    rng = random.Random(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(8):
            c = tuple(max(0, min(255, v + rng.randint(-30, 30))) for v in colour)
            img = Image.new("RGB", (40, 40), c)
            x, y = rng.randint(0, 20), rng.randint(0, 20)
            ImageDraw.Draw(img).ellipse((x, y, x + 13, y + 13), fill=(rng.randint(0, 255),) * 3)
            img.save(root / name / f"{name}_{i:02d}.png")
    os.replace(root / "red" / "red_03.png", root / "blue" / "red_03.png")  # a wrong label
    return root


def _action(word: str) -> re.Pattern:
    """A button's accessible name: its icon's name (a ligature) may come before the word."""
    return re.compile(rf"^(\w+ )?{word}$")


def test_relabel_remove_and_undo_in_the_browser(page, studio_url, studio_dirs):
    from playwright.sync_api import expect  # installed where the browser fixture ran

    data = _dataset(studio_dirs["data"] / "colours")
    page.goto(studio_url)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Clean").first.click()
    page.wait_for_selector('h2:has-text("Clean"), h1:has-text("Clean")')
    box = page.get_by_label("Dataset folder", exact=True)
    box.fill(str(data))
    box.press("Enter")
    settle(page)
    page.locator('[data-testid="stSelectbox"]', has_text="Features from").click()
    page.get_by_role("option", name=re.compile("Colour thumbnails")).click()
    settle(page)
    page.get_by_role("button", name=re.compile("Find label issues")).click()
    page.get_by_text("Likely label errors").wait_for(timeout=120_000)
    settle(page)
    assert page.get_by_text("blue/red_03.png").count() >= 1

    page.get_by_role("button", name=_action("Relabel")).first.click()  # #1: suggested red
    settle(page)
    assert (data / "red" / "red_03.png").is_file()
    assert not (data / "blue" / "red_03.png").exists()
    said = "Moved blue/red_03.png to red"
    expect(page.get_by_test_id("stToast").filter(has_text=said)).to_be_visible()
    expect(page.get_by_test_id("stAlert").filter(has_text=said)).to_be_visible()

    page.get_by_role("button", name=_action("Remove")).first.click()
    settle(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="to the trash")).to_be_visible()
    entries = [json.loads(x) for x in (data / ".modelkit-journal.jsonl").read_text().splitlines()]
    assert [e["action"] for e in entries] == ["relabel", "remove"]
    removed = entries[1]["src"]
    assert not (data / removed).exists() and (data / entries[1]["dst"]).is_file()

    page.get_by_role("tab", name="Changes").click()
    page.get_by_text(re.compile(r"#2 remove")).wait_for()
    screenshot(page, "clean-1-changes")
    changes = page.get_by_role("tabpanel", name="Changes")
    changes.get_by_role("button", name=_action("Undo")).first.click()  # newest first: #2
    settle(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="Undid #2")).to_be_visible()

    assert (data / removed).is_file()
    assert not any((data / ".modelkit-trash").rglob("*.png"))
    assert (data / "red" / "red_03.png").is_file()
    entries = [json.loads(x) for x in (data / ".modelkit-journal.jsonl").read_text().splitlines()]
    assert [e["action"] for e in entries] == ["relabel", "remove", "undo"]
    assert entries[2]["undoes"] == 2 and entries[2]["dst"] == removed
    expect(page.get_by_text(re.compile(r"#1 relabel"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"#2 remove"))).to_have_count(0)  # undone: not listed
    screenshot(page, "clean-2-after-undo")
