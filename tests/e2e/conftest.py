"""A real studio server on a free loopback port, and Debian's Chromium driven by Playwright.

Under CI (``CI`` set) a browser that cannot start is a failure, never a skip: these tests are the
only proof that a person can do the journey.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MODELKIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def studio_dirs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("studio")
    dirs = {"data": base / "data", "runs": base / "runs", "home": base}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    return dirs


def start_server(dirs: dict[str, Path]) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on a free loopback port against ``dirs``; waits until healthy."""
    port = free_port()
    env = {
        **os.environ,
        "MODELKIT_DATA_DIR": str(dirs["data"]),
        "MODELKIT_RUNS_DIR": str(dirs["runs"]),
        "MODELKIT_ALLOWED_ROOTS": str(dirs["home"]),
    }
    log_path = dirs["home"] / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.port", str(port),
                "--server.address", "127.0.0.1",
                "--server.headless", "true",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("streamlit did not start: " + log_path.read_text(errors="replace")[-2000:])


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def studio_url(studio_dirs):
    proc, url = start_server(studio_dirs)
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc})")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found: apt-get install chromium")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
    except Exception as exc:  # noqa: BLE001 - any launch failure means no browser
        pw.stop()
        _unavailable(f"Chromium could not be started: {exc}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


# The journey's screenshots the README shows; MODELKIT_UPDATE_SCREENSHOTS=1 writes them anew.
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
DOCS_SHOTS = {"2-train": "train", "3-evaluate": "evaluate", "4-classify": "classify"}


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MODELKIT_UPDATE_SCREENSHOTS") and name in DOCS_SHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        top = {"x": 0, "y": 0, "width": 1400, "height": 1000}
        out = DOCS_IMG / f"{DOCS_SHOTS[name]}.jpg"
        page.screenshot(path=str(out), type="jpeg", quality=70, clip=top)
    return path


def goto(page, title: str) -> None:
    """Navigate inside the app (the session, and so the chosen dataset, survives)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'h2:has-text("{title}"), h1:has-text("{title}")')


def settle(page) -> None:
    """Wait until no script run is going on and every image shown has loaded. (Streamlit marks
    the run's state on stApp; there is no status-widget button to wait for any more, so the
    old wait for one returned at once.) A click's rerun may not have started yet: give it a
    moment first, as the old waits did."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
                   ?.getAttribute('data-test-script-state') === 'notRunning'
              && Array.from(document.images).every(i => i.complete)""",
        timeout=90_000,
    )
