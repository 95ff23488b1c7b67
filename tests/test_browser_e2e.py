"""End-to-end: a real ``streamlit run app.py`` server driven by headless Debian chromium (playwright).

Needs ``/usr/bin/chromium`` (Debian package ``chromium``; playwright's own browser download is never
used) and the ``playwright`` Python package; skipped otherwise. Marked ``browser``: deselect with
``-m "not browser"``. Screenshots go to the test's tmp folder and, when ``$GALAXYSD_SCREENSHOT_DIR``
is set, there as well.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

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
    with _streamlit_server(tiny_model, tmp_path_factory.mktemp("e2e_state")) as running:
        yield running


@contextlib.contextmanager
def _streamlit_server(tiny_model: Path, state: Path, extra_env: Optional[dict] = None):
    """A fresh ``streamlit run app.py`` process (its PID held, stopped on exit); yields url, state, pid."""
    port = _free_port()
    env = {**os.environ, "GALAXYSD_MODEL_DIR": str(tiny_model), "GALAXYSD_CANDIDATES": str(REPO / "assets" / "demo_candidates"),
           "GALAXYSD_STORE_URL": f"sqlite:///{state / 'store.sqlite'}", "GALAXYSD_HOME": str(state / "home"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("GALAXYSD_DATA_DIR", None)
    env.update(extra_env or {})
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
    assert page.get_by_test_id("stSidebar").get_by_role("link", name="Generate").is_visible()  # app.py's page links
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
    assert page.get_by_test_id("stSidebar").get_by_role("link", name="Real vs synthetic").is_visible()
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


def _generate_button(page):
    return page.get_by_test_id("stButton").filter(has_text="Generate").locator("button").first


def test_download_all_zip_holds_every_gallery_png(server, browser, tmp_path):
    """"Download all (zip)" serves every gallery image (its data used to be read from session state in a
    thread without the session, so the download failed with "no images to put in the zip")."""
    import zipfile

    page = browser.new_page(viewport={"width": 1400, "height": 2200}, accept_downloads=True)
    page.goto(server["url"])
    page.get_by_text("Gallery (0 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    _generate_button(page).click()
    page.get_by_text("Gallery (4 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    _generate_button(page).click()  # a second request: the zip holds the whole gallery, not the last batch
    page.get_by_text("Gallery (8 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    button = page.get_by_test_id("stDownloadButton").filter(has_text="Download all (zip)").locator("button")
    with page.expect_download(timeout=60_000) as info:  # a failed download never fires the event
        button.click()
    target = tmp_path / "gallery.zip"
    info.value.save_as(target)
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
        pngs = [n for n in names if n.endswith(".png")]
        assert len(pngs) == 8, names
        assert all(zf.read(n).startswith(b"\x89PNG") for n in pngs)
        assert "manifest.json" in names
    log = (server["state"] / "server.log").read_text(errors="replace")
    assert "MediaFileStorageError" not in log and "no images to put in the zip" not in log
    page.close()


PAGE_TITLES = ["Generate", "Metrics", "Real vs synthetic", "Candidates", "About"]


def _navigation_messages(page) -> list:
    """Every ``navigation`` message the server sends this page, as ``(position, [page names])``.

    Read from the websocket frames (Streamlit's ``ForwardMsg`` protobuf), so a navigation that is
    replaced within milliseconds is recorded even when the browser never paints it.
    """
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.Navigation_pb2 import Navigation

    seen: list = []

    def on_frame(payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            msg = ForwardMsg()
            try:
                msg.ParseFromString(bytes(payload))
            except Exception:  # not a ForwardMsg frame
                return
            if msg.WhichOneof("type") == "navigation":
                seen.append((Navigation.Position.Name(msg.navigation.position),
                             [pg.page_name for pg in msg.navigation.app_pages]))

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    return seen


def test_cold_start_sidebar_lists_only_the_five_pages(tiny_model, browser, tmp_path):
    """On a fresh server, the first page load never lists internal modules (``pages/_ui.py`` as "ui")
    or ``app``: Streamlit's automatic ``pages/`` listing, sent before ``app.py``'s ``st.navigation``
    replaced it, used to show for about a second."""
    with _streamlit_server(tiny_model, tmp_path) as cold:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        navigations = _navigation_messages(page)
        page.goto(cold["url"])
        page.get_by_text("Generate galaxies").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        page.get_by_test_id("stSidebar").get_by_role("link", name="About").wait_for(timeout=STEP_TIMEOUT_MS)
        assert navigations, "no navigation message recorded"
        shown = [names for position, names in navigations if position != "HIDDEN"]
        assert all(sorted(names) == sorted(PAGE_TITLES) for names in shown), navigations
        now = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stSidebar"] a'))
                                     .map(a => a.innerText.trim().split('\\n').pop().trim())""")
        assert now == PAGE_TITLES, now  # the sidebar lists exactly the five pages
        page.close()


# ----------------------------------------------------------------------------- server paths stay closed
#: What a visitor types into every server-path box: system files, '..' out of the roots, symbolic links
#: (a folder link and a file through it) pointing out of the allowed folder; {root} = that folder.
HOSTILE_PATHS = ("/proc/self/environ", "/etc/passwd", "../../etc/passwd", "{root}/link_out", "{root}/link_out/secret.txt")
PASSWD_MARK = "root:x:0:0"


def _tiny_png(path: Path, value: int) -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def open_server(tiny_model, tmp_path_factory):
    """A server whose operator enabled server paths (one allowed catalogs folder), with a canary in its
    environment (so in its /proc/self/environ), a canary file and image outside the folder and a symbolic
    link to them inside it."""
    import secrets

    base = tmp_path_factory.mktemp("e2e_paths")
    root, outside = base / "served", base / "outside"
    (root / "imgs").mkdir(parents=True)
    outside.mkdir()
    _tiny_png(root / "imgs" / "a.png", 120)
    (root / "mine.csv").write_text("id,score,image_path\nx,0.1,imgs/a.png\n")
    canary = f"canary-{secrets.token_hex(8)}"
    (outside / "secret.txt").write_text(f"GALAXYSD_CANARY={canary}\n{PASSWD_MARK}:{canary}:/root:/bin/sh\n")
    _tiny_png(outside / "secret.png", 250)
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    state = base / "state"
    state.mkdir()
    extra = {"GALAXYSD_ALLOW_SERVER_PATHS": "1", "GALAXYSD_CATALOGS_DIR": str(root), "GALAXYSD_CANARY": canary}
    with _streamlit_server(tiny_model, state, extra) as running:
        assert canary.encode() in Path(f"/proc/{running['pid']}/environ").read_bytes()  # the canary is planted
        yield {**running, "root": root, "outside": outside, "canary": canary}


def _assert_nothing_leaked(page, canary: str) -> None:
    for text in (page.content(), page.inner_text("body")):
        assert canary not in text, "a canary (server environment / file outside the roots) reached the page"
        assert PASSWD_MARK not in text, "server file content reached the page"


def _type(page, box, text: str) -> None:
    box.fill(text)
    box.press("Enter")


def _upload(page, name: str, data: bytes) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"], input[type="file"]').first.set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}])


def _hostile_catalog(root: Path, outside: Path) -> bytes:
    return ("id,score,image_path\n"
            f"abs,0.9,{outside / 'secret.png'}\nclimb,0.8,../outside/secret.png\nlink,0.7,link_out/secret.png\n"
            "passwd,0.6,/etc/passwd\nclimb2,0.5,../../etc/passwd\nok,0.1,imgs/a.png\n").encode()


def test_typed_server_paths_are_refused_and_nothing_leaks(open_server, browser, tmp_path):
    root, canary = open_server["root"], open_server["canary"]
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(f"{open_server['url']}/candidates")
    page.get_by_text("0 / 12 vetted").first.wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    page.get_by_text("Catalog file on the server").click()
    catalog_box = page.get_by_role("textbox", name="Catalog file (CSV or ECSV")
    catalog_box.wait_for(timeout=STEP_TIMEOUT_MS)
    for typed in (p.format(root=root) for p in HOSTILE_PATHS):
        _type(page, catalog_box, typed)
        page.get_by_text(f"'{typed}' is outside the folders this server allows").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _assert_nothing_leaked(page, canary)
    _type(page, catalog_box, "mine.csv")  # inside the catalogs folder: opens
    page.get_by_text("0 / 1 vetted").first.wait_for(timeout=STEP_TIMEOUT_MS)
    folder_box = page.get_by_role("textbox", name="Image folder")
    for typed in (p.format(root=root) for p in HOSTILE_PATHS):
        _type(page, folder_box, typed)
        page.get_by_text(f"'{typed}' is outside the folders this server allows").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _assert_nothing_leaked(page, canary)
    # an uploaded catalog whose image paths leave the image folder: refused per row, never shown
    _type(page, folder_box, str(root))
    page.get_by_text("Upload a catalog").click()
    _wait_idle(page)
    _upload(page, "hostile.csv", _hostile_catalog(root, open_server["outside"]))
    page.get_by_text("5 image path(s) refused (ids abs, climb, link, passwd, climb2)").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    page.wait_for_function("""() => {
        const imgs = Array.from(document.querySelectorAll('[data-testid="stImage"] img'));
        return imgs.length === 1 && imgs[0].complete && imgs[0].naturalWidth > 0;
    }""", timeout=STEP_TIMEOUT_MS)  # only the grid thumbnail of the image inside the folder
    _assert_nothing_leaked(page, canary)
    _save_screenshot(page, tmp_path, "e2e_refused_upload")
    # the sidebar real-data box (Real vs synthetic; Generate's start image uses the same box)
    page.goto(f"{open_server['url']}/real_vs_synthetic")
    data_box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Real data folder")
    data_box.wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    for typed in (p.format(root=root) for p in HOSTILE_PATHS):
        _type(page, data_box, typed)
        page.get_by_text(f"'{typed}' is outside the folders this server allows").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _assert_nothing_leaked(page, canary)
    page.close()


def test_server_path_inputs_are_absent_by_default(server, browser, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _tiny_png(outside / "secret.png", 250)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(f"{server['url']}/candidates")
    page.get_by_text("Upload a catalog").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.get_by_text("Catalog file on the server").count() == 0
    page.get_by_text("Upload a catalog").click()
    _wait_idle(page)
    assert page.get_by_role("textbox", name="Image folder").count() == 0
    _upload(page, "hostile.csv", _hostile_catalog(tmp_path, outside))
    # no image folder here: relative paths stay unresolved, absolute and '..' ones are refused
    page.get_by_text("4 image path(s) refused (ids abs, climb, passwd, climb2)").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator('[data-testid="stImage"] img').count() == 0
    assert PASSWD_MARK not in page.content()
    page.goto(f"{server['url']}/real_vs_synthetic")
    page.get_by_text("No real-data folder configured").wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.get_by_role("textbox", name="Real data folder").count() == 0
    page.close()
