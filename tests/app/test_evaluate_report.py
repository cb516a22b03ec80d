"""The Evaluate page's report panel (app_pages/_evaluate_report.py) through AppTest: a click builds
the report under a spinner, then it downloads; a failure is one error naming the run."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from modelkit.runs.folder import RunFolder


def _panel(run_dir: str) -> None:
    from app_pages._evaluate_report import render

    render(run_dir)


def _open(run_dir) -> AppTest:
    at = AppTest.from_function(_panel, args=(str(run_dir),), default_timeout=180)
    at.run()
    return at


def test_a_click_builds_the_report_and_offers_its_download(run_dir):
    at = _open(run_dir)
    assert not at.exception
    assert at.button(key="evaluate_report_build").label == "Build report (HTML)"
    assert not at.get("download_button")  # nothing to download before it is built
    at.button(key="evaluate_report_build").click().run()
    assert not at.exception and not at.error
    (download,) = at.get("download_button")
    assert download.label == "Download report (HTML)"
    report = RunFolder(run_dir).report
    assert report.is_file()
    text = report.read_text(encoding="utf-8")
    assert run_dir.name in text and 'id="confusion"' in text
    assert "MB; also in the run folder" in at.caption[0].value
    at.run()  # later visits offer the saved report at once, and to build it again
    assert at.button(key="evaluate_report_build").label == "Build the report again"
    assert len(at.get("download_button")) == 1


def test_a_run_that_cannot_be_reported_says_why(run_dir):
    RunFolder(run_dir).config.unlink()
    at = _open(run_dir)
    at.button(key="evaluate_report_build").click().run()
    assert not at.exception
    assert "not a run folder" in at.error[0].value and run_dir.name in at.error[0].value
    assert not at.get("download_button")
