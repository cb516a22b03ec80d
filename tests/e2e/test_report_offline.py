"""A run's HTML report opened from disk in Chromium with the network off: every section is
there, every picture shows, and nothing tries to leave the machine, not even for a class whose
name is an HTML tag pointing at a web address."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelkit.report import SECTION_IDS, write_report

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# A folder name cannot hold a "/", but "https:host" is still an absolute web address: were the
# name not escaped, the browser would try to fetch it (and run the handler).
HOSTILE = "<img src=https:evil.example onerror=alert(1)>"


@pytest.fixture(scope="module")
def report(tmp_path_factory, helpers) -> tuple[Path, Path]:
    """(report file, run folder) of a tiny finished run with a hostile class name."""
    from modelkit.training.loop import Trainer

    base = tmp_path_factory.mktemp("report_offline")
    data = helpers.write_dataset(base / "data", num_classes=3, per_class=10, seed=2)
    (data / "green").rename(data / HOSTILE)
    shutil.copy(data / "red" / "red_01.png", data / "red" / "same_as_red_01.png")
    result = Trainer(helpers.fast_config(data, base / "runs")).fit()
    assert result.state == "finished"
    return write_report(result.run_dir, base / "shared" / "report.html"), result.run_dir


def test_report_opens_offline_with_every_section_and_no_request_out(browser, report):
    path, run = report
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.set_offline(True)
    outside: list[str] = []
    dialogs: list[str] = []

    def refuse(route, request):
        if request.url.startswith(("file:", "data:")):
            return route.continue_()
        outside.append(request.url)
        return route.abort()

    context.route("**/*", refuse)
    page = context.new_page()
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else outside.append(r.url),
    )
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(path.as_uri(), wait_until="load")
        for sid in SECTION_IDS:
            section = page.locator(f"section#{sid}")
            assert section.count() == 1, sid
            assert section.locator("h2").inner_text().strip(), sid
        saved = json.loads((run / "evaluation" / "val.json").read_text())
        assert f"{saved['accuracy']:.1%}" in page.locator("section#summary").inner_text()
        assert HOSTILE in page.locator("section#data").inner_text()  # shown as text
        assert "same_as_red_01.png" in page.locator("section#data").inner_text()
        assert page.locator("section#confusion svg").count() == 1
        assert page.locator("section#samples img[alt='Grad-CAM']").count() > 0
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || !i.naturalWidth).length"
        )
        assert broken == 0
        assert page.evaluate("document.scripts.length") == 0
    finally:
        context.close()
    assert outside == [], f"requests left the machine: {outside}"
    assert dialogs == []
