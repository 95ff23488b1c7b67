"""End-to-end: a real ``streamlit run app.py`` server driven by headless Debian chromium (playwright).

Needs ``/usr/bin/chromium`` (Debian package ``chromium``; playwright's own browser download is never
used) and the ``playwright`` Python package; skipped otherwise. Marked ``browser``: deselect with
``-m "not browser"``. Screenshots go to the test's tmp folder and, when ``$GALAXYSD_SCREENSHOT_DIR``
is set, there as well.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
STREAMLIT = Path(sys.executable).with_name("streamlit")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync"]
START_TIMEOUT_S = 180
STEP_TIMEOUT_MS = 180_000

if not CHROMIUM.is_file():
    pytest.skip("/usr/bin/chromium not found: install Debian's chromium package (apt-get install -y chromium) "
                "to run the browser tests", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch

    from tiny_models import build_tiny_pipeline

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("e2e") / "tiny-model"
    build_tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """``streamlit run app.py`` on a free port; yields the base URL; the process is stopped afterwards."""
    state = tmp_path_factory.mktemp("e2e_state")
    port = _free_port()
    env = {**os.environ, "GALAXYSD_MODEL_DIR": str(tiny_model), "GALAXYSD_CANDIDATES": str(REPO / "assets" / "demo_candidates"),
           "GALAXYSD_STORE_URL": f"sqlite:///{state / 'store.sqlite'}", "GALAXYSD_HOME": str(state / "home"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("GALAXYSD_DATA_DIR", None)
    log = open(state / "server.log", "wb")
    cmd = [str(STREAMLIT) if STREAMLIT.exists() else sys.executable, *([] if STREAMLIT.exists() else ["-m", "streamlit"]),
           "run", str(REPO / "app.py"), "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: "
                                   f"{(state / 'server.log').read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.5)
        yield {"url": base, "state": state, "pid": proc.pid}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def _save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("GALAXYSD_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def _wait_idle(page) -> None:
    """Wait until Streamlit's "running" indicator is gone (the script run finished)."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)


def test_vote_with_keyboard_shortcut(server, browser, tmp_path):
    from galaxysd_core.studio.store import Store

    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{server['url']}/candidates")  # first visit of a fresh server is a deep link
    page.get_by_text("0 / 12 vetted").first.wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.get_by_test_id("stSidebarNav").get_by_text("Generate").is_visible()  # app.py's navigation
    assert page.evaluate("() => document.activeElement.tagName") == "BODY"  # no input has the focus
    # The very first keystroke after a page load is sometimes dropped while the frontend is still
    # wiring its shortcut listeners; press again only while the page still shows no vote, so a
    # vote can never be cast twice.
    voted = page.get_by_text("1 / 12 vetted").first
    for _ in range(5):
        page.keyboard.press("y")
        try:
            voted.wait_for(timeout=8000)
            break
        except Exception:  # playwright TimeoutError
            assert page.get_by_text("0 / 12 vetted").first.is_visible()
    voted.wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    store = Store(f"sqlite:///{server['state'] / 'store.sqlite'}")
    assert store.latest_verdicts("demo_candidates")["demo-00"].verdict == "yes"
    assert store.count_verdicts("demo_candidates") == 1
    assert page.get_by_role("heading", name="demo-01").first.is_visible()  # moved on to the next candidate
    _save_screenshot(page, tmp_path, "e2e_candidates")
    page.close()


def test_generate_in_the_browser(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    page.goto(server["url"])  # Generate is the default page (served at the root URL)
    page.get_by_text("Generate galaxies").first.wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_text("Gallery (0 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
    # the sidebar comes from app.py's st.navigation (not the legacy pages/ listing)
    assert page.get_by_test_id("stSidebarNav").get_by_text("Real vs synthetic").is_visible()
    _wait_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("Gallery (4 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    gallery = page.locator('[data-testid="stImage"] img')
    gallery.nth(3).wait_for(timeout=STEP_TIMEOUT_MS)
    assert gallery.count() >= 4
    page.wait_for_function("""() => {
        const imgs = Array.from(document.querySelectorAll('[data-testid="stImage"] img'));
        return imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", timeout=STEP_TIMEOUT_MS)  # the generated PNGs were served and decoded
    assert page.get_by_text("seed 0 ·").first.is_visible()
    shot = _save_screenshot(page, tmp_path, "e2e_generate")
    assert shot.stat().st_size > 10_000
    page.close()
