"""The app asks nothing of the internet: on a machine offline, a page that fetches from the web
shows errors in the console (the newcomer saw one for the favicon, a Material icon that the
browser fetched from fonts.gstatic.com; issue #29)."""

from __future__ import annotations

import pytest
from conftest import goto

pytestmark = pytest.mark.browser

LOCAL = ("http://127.0.0.1", "http://localhost", "data:", "blob:")


def test_the_first_pages_load_nothing_from_the_web(page, studio_url):
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(LOCAL) else None)
    page.goto(studio_url)
    page.wait_for_selector('h2:has-text("Dataset"), h1:has-text("Dataset")')
    goto(page, "Train")
    page.wait_for_timeout(1500)  # late requests: the favicon, icons, fonts
    assert outside == []
    icons = page.locator('link[rel~="icon"]')
    assert icons.count() and icons.first.get_attribute("href").startswith(("/", "http://127."))
