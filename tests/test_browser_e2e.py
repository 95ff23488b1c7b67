"""End-to-end: a real ``streamlit run app.py`` server driven by headless Debian chromium (playwright).

Needs ``/usr/bin/chromium`` (Debian package ``chromium``; playwright's own browser download is never
used) and the ``playwright`` Python package; skipped otherwise. Marked ``browser``: deselect with
``-m "not browser"``. Screenshots go to the test's tmp folder and, when ``$GALAXYSD_SCREENSHOT_DIR``
is set, there as well. Two walks of a first-time visitor through every page (a fresh server without
a data folder and the tiny test model; one with ``../shared/data`` or ``$GALAXYSD_E2E_DATA_DIR`` and
the shipped model, skipped without the data) and the server-path checks; waits are for page text
and for the end of Streamlit's script run, never sleeps.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import pytest

from bench.load_sessions import CHROMIUM, LAUNCH_ARGS, REPO, browser_missing, streamlit_server, studio_env

pytestmark = pytest.mark.browser

#: Limits of a server start and of one step (a page run); a busy machine may need more: $GALAXYSD_E2E_TIMEOUT_S.
START_TIMEOUT_S = int(os.environ.get("GALAXYSD_E2E_TIMEOUT_S", 180))
STEP_TIMEOUT_MS = 1000 * START_TIMEOUT_S

if browser_missing():
    pytest.skip(f"{browser_missing()}: needed by the browser tests", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").sync_playwright


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny test model with a made-up caption count, or ``$GALAXYSD_E2E_MODEL`` (e.g. the shipped
    ``assets/galaxysd-mini``: both walks then use the real model, slower)."""
    if os.environ.get("GALAXYSD_E2E_MODEL"):
        return Path(os.environ["GALAXYSD_E2E_MODEL"]).resolve()

    import torch

    from tiny_models import save_tiny_app_model

    torch.set_num_threads(1)
    return save_tiny_app_model(tmp_path_factory.mktemp("e2e") / "tiny-model")


def _streamlit_server(tiny_model: Path, state: Path, extra_env: Optional[dict] = None, unset=()):
    """A fresh ``streamlit run app.py`` (bench/load_sessions.py: own process group, PID held, stopped on
    exit) with the demo catalog and a store under ``state``; yields url, state, pid."""
    env = {**studio_env(tiny_model, state, candidates=REPO / "assets" / "demo_candidates"), **(extra_env or {})}
    return streamlit_server(env, state, unset=unset, start_timeout=START_TIMEOUT_S)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def _save_screenshot(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    """Screenshot to ``tmp_path`` (and ``$GALAXYSD_SCREENSHOT_DIR``). Streamlit scrolls inside its main
    container, not the document, so a full-page shot grows the viewport to that container's height."""
    path = tmp_path / f"{name}.png"
    size = page.viewport_size
    if full_page:
        height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                          return m ? m.scrollHeight : document.body.scrollHeight; }""")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 12000))})
        _wait_idle(page)
        # two animation frames: the table canvases and charts repaint at the new size
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    try:
        page.screenshot(path=str(path))
    finally:
        if full_page:
            page.set_viewport_size(size)
    extra = os.environ.get("GALAXYSD_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def _wait_idle(page) -> None:
    """Wait until Streamlit's "running" indicator is gone (the script run finished)."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)


PAGE_TITLES = ["Generate", "Compare", "Metrics", "Real vs synthetic", "Candidates", "History", "About"]
#: Viewport of a laptop screen: "above the fold" means inside its first screen.
VIEWPORT = {"width": 1400, "height": 900}


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


def _goto_page(page, title: str, wait_text: str) -> None:
    """Open a page from the sidebar as a visitor would and wait for its text and the end of the run."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=title, exact=True).click()
    page.get_by_text(wait_text).first.wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)


def _images_loaded(page, selector: str, n: int) -> None:
    page.wait_for_function("""([sel, n]) => {
        const imgs = Array.from(document.querySelectorAll(sel));
        return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", arg=[selector, n], timeout=STEP_TIMEOUT_MS)


def _image_boxes(page, selector: str) -> list:
    return page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel)).map(i => {
        const r = i.getBoundingClientRect();
        return {natural: i.naturalWidth, shown: r.width, top: r.top + window.scrollY, left: r.left,
                rendering: getComputedStyle(i).imageRendering};
    })""", selector)


def _press_until(page, key: str, done_text: str, before_text: str) -> None:
    """Press a shortcut key until ``done_text`` shows. The very first keystroke after a page load is
    sometimes dropped while the frontend wires its shortcut listeners; press again only while the page
    still shows ``before_text``, so an action can never happen twice."""
    done = page.get_by_text(done_text).first
    for _ in range(5):
        page.keyboard.press(key)
        try:
            done.wait_for(timeout=8000)
            return
        except Exception:  # playwright TimeoutError
            assert page.get_by_text(before_text).first.is_visible()
    done.wait_for(timeout=STEP_TIMEOUT_MS)


def _download(page, test_id_text: str, target: Path) -> Path:
    button = page.get_by_test_id("stDownloadButton").filter(has_text=test_id_text).locator("button").first
    with page.expect_download(timeout=60_000) as info:  # a failed download never fires the event
        button.click()
    info.value.save_as(target)
    return target


def test_first_time_user_without_data_folder(tiny_model, browser, tmp_path):
    """A visitor of a fresh server without a data folder: every page, generate, enlarge, compare, sweep,
    download the gallery zip, vote by keyboard, export; screenshots of each step."""
    import zipfile

    from galaxysd_core.studio.store import Store

    with _streamlit_server(tiny_model, tmp_path) as srv:
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        navigations = _navigation_messages(page)
        page.goto(srv["url"])  # Generate is the default page (served at the root URL)
        page.get_by_text("Generate galaxies").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("Gallery (0 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        # cold start: the sidebar only ever listed app.py's pages, never pages/_ui.py as "ui" or "app"
        shown = [names for position, names in navigations if position != "HIDDEN"]
        assert navigations and all(sorted(names) == sorted(PAGE_TITLES) for names in shown), navigations
        links = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stSidebar"] a'))
                                       .map(a => a.innerText.trim().split('\\n').pop().trim())""")
        assert links == PAGE_TITLES, links
        assert page.get_by_text("Runs on: cpu").first.is_visible()  # where the model runs, in the sidebar
        # the widgets are drawn (not Streamlit's grey placeholders) before the first screenshot
        page.get_by_role("button", name="Generate", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_role("combobox", name="Q1. Smooth or features?").wait_for(timeout=STEP_TIMEOUT_MS)
        _save_screenshot(page, tmp_path, "01_generate_first_visit")
        # the GZ2 tree: with the default smooth prompt, the spiral question is not asked
        spiral = page.get_by_role("combobox", name="Q4. Spiral arms?")
        assert spiral.is_disabled(), spiral.evaluate("e => e.outerHTML")

        page.get_by_role("button", name="Generate", exact=True).click()
        page.get_by_text("Gallery (4 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _images_loaded(page, ".st-key-crisp-results img", 4)
        boxes = _image_boxes(page, ".st-key-crisp-results img")
        assert len(boxes) == 4, boxes
        controls_left = page.get_by_text("Q1. Smooth or features?").first.bounding_box()["x"]
        for b in boxes:  # beside the controls, at least 256 px, served at that size and never smoothed
            assert b["natural"] >= 256 and b["shown"] >= 255 and b["rendering"] == "pixelated", b
            assert b["left"] > controls_left + 300
        assert min(b["top"] for b in boxes) < VIEWPORT["height"] - 256  # the first row is above the fold
        _save_screenshot(page, tmp_path, "02_generate_results", full_page=False)

        page.get_by_role("button", name="Enlarge").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("seed 0").first.wait_for(timeout=STEP_TIMEOUT_MS)
        dialog.get_by_text("guidance_scale").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        text = dialog.inner_text()
        assert "guidance_scale" in text and "num_inference_steps" in text and "negative_prompt" in text
        _images_loaded(page, '[role="dialog"] img', 1)
        assert _image_boxes(page, '[role="dialog"] img')[0]["natural"] >= 512
        _save_screenshot(page, tmp_path, "03_enlarged_view", full_page=False)
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)

        page.get_by_role("button", name="Generate", exact=True).click()  # the zip holds the whole gallery
        page.get_by_text("Gallery (8 images this session)").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        with zipfile.ZipFile(_download(page, "Download all (zip)", tmp_path / "gallery.zip")) as zf:
            pngs = [n for n in zf.namelist() if n.endswith(".png")]
            assert len(pngs) == 8 and all(zf.read(n).startswith(b"\x89PNG") for n in pngs), zf.namelist()
            assert "manifest.json" in zf.namelist()

        # the history keeps both presses of Generate; search, compare with the current controls, reuse
        _goto_page(page, "History", "2 generations stored, 2 of them from this session")
        _images_loaded(page, ".st-key-crisp-history img", 2)
        page.get_by_role("button", name="Compare with current").last.click()
        page.get_by_text("next to the current settings").first.wait_for(timeout=STEP_TIMEOUT_MS)
        # the oldest entry has the controls of now (the second press changed nothing)
        page.get_by_text("Same settings as the current controls").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_role("button", name="Compare with current").nth(1).wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _images_loaded(page, ".st-key-crisp-history img", 2)
        _save_screenshot(page, tmp_path, "04a_history_compare")
        box = page.get_by_role("textbox", name="Prompt contains")
        box.fill("no such galaxy")
        box.press("Enter")
        page.get_by_text("No generation matches.").wait_for(timeout=STEP_TIMEOUT_MS)
        box.fill("round")
        box.press("Enter")
        page.get_by_role("button", name="Reuse settings").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        page.get_by_role("button", name="Reuse settings").first.click()
        page.get_by_text("settings of history entry").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        assert "Changed since these images" not in page.inner_text("body")  # the same settings came back
        _save_screenshot(page, tmp_path, "04b_history_reused", full_page=False)

        _goto_page(page, "Compare", "One difference")
        page.get_by_role("button", name="Generate A and B").click()
        page.get_by_text("|A − B|").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _images_loaded(page, ".st-key-crisp-ab img", 12)  # 4 pairs: A, B and the difference
        assert "P(merger) =" in page.inner_text("body")  # the classifier judges both sides
        _save_screenshot(page, tmp_path, "04_compare_ab")
        page.get_by_role("tab", name="Extrapolation sweep").click()
        page.get_by_role("button", name="Run sweep").click()
        page.get_by_text("P(merger), mean").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _images_loaded(page, ".st-key-crisp-sweep img", 8)
        _save_screenshot(page, tmp_path, "05_compare_sweep")

        _goto_page(page, "Metrics", "Over training")
        _save_screenshot(page, tmp_path, "06_metrics_without_files")
        _goto_page(page, "Real vs synthetic", "No real-data folder configured")
        assert page.get_by_role("textbox", name="Real data folder").count() == 0  # no server paths by default
        _save_screenshot(page, tmp_path, "07_real_vs_synthetic_without_data")
        _goto_page(page, "About", "What it can and cannot draw")
        _save_screenshot(page, tmp_path, "08_about")

        _goto_page(page, "Candidates", "0 / 12 vetted")
        page.get_by_role("heading", name="Candidates", exact=True).click()  # focus the page, not the sidebar link
        assert page.evaluate("() => document.activeElement.tagName") not in ("INPUT", "TEXTAREA", "A", "BUTTON")
        _press_until(page, "y", "1 / 12 vetted", "0 / 12 vetted")
        _wait_idle(page)
        store = Store(f"sqlite:///{srv['state'] / 'store.sqlite'}")
        assert store.latest_verdicts("demo_candidates")["demo-00"].verdict == "yes"
        assert store.count_verdicts("demo_candidates") == 1
        assert page.get_by_role("heading", name="demo-01").first.is_visible()  # moved on to the next candidate
        assert page.get_by_text("1 visibly confirmed").first.is_visible()
        exported = _download(page, "Export CSV", tmp_path / "vetted.csv").read_text()
        assert exported.splitlines()[0].startswith("id,") and len(exported.splitlines()) == 2
        assert "demo-00" in exported and ",yes," in exported
        from astropy.io.votable import parse

        vot = parse(str(_download(page, "Export VOTable", tmp_path / "vetted.vot"))).get_first_table()
        assert [str(i) for i in vot.array["id"]] == ["demo-00"] and {f.name: f.ucd for f in vot.fields}["id"] == \
            "meta.id;meta.main"
        _save_screenshot(page, tmp_path, "09_candidates_demo")
        # more like this: the nearest galaxies of the catalog, one click from vetting
        page.get_by_role("button", name="More like this").first.click()
        page.get_by_text("More like demo-01").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _images_loaded(page, ".st-key-cand-similar img", 11)
        _save_screenshot(page, tmp_path, "09b_candidates_more_like_this")
        # re-rank from the verdicts: one yes is there, give one no
        page.get_by_role("heading", name="Candidates", exact=True).click()
        _press_until(page, "n", "2 / 12 vetted", "1 / 12 vetted")
        _wait_idle(page)
        page.get_by_role("button", name="Re-rank from my verdicts").click()
        try:
            page.get_by_text("re-ranked from 2 verdicts").first.wait_for(timeout=STEP_TIMEOUT_MS)
        except Exception:
            _save_screenshot(page, tmp_path, "09c_rerank_failed")
            raise
        _wait_idle(page)
        _save_screenshot(page, tmp_path, "09c_candidates_reranked")
        # the vetting view: zoom, asinh stretch and inversion in the enlarged candidate
        page.get_by_role("button", name="Enlarge").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Stretch").first.wait_for(timeout=STEP_TIMEOUT_MS)
        dialog.get_by_text("asinh", exact=True).click()
        dialog.get_by_text("· asinh").first.wait_for(timeout=STEP_TIMEOUT_MS)
        dialog.get_by_text("Invert", exact=True).click()
        dialog.get_by_text("· inverted").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        _save_screenshot(page, tmp_path, "09d_candidate_vetting_view", full_page=False)
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)
        # an uploaded catalog without an image folder: absolute and '..' image paths are refused
        outside = tmp_path / "outside"
        outside.mkdir()
        _tiny_png(outside / "secret.png", 250)
        page.get_by_text("Upload a catalog").click()
        _wait_idle(page)
        assert page.get_by_role("textbox", name="Image folder").count() == 0
        _upload(page, "hostile.csv", _hostile_catalog(tmp_path, outside))
        page.get_by_text("4 image path(s) refused (ids abs, climb, passwd, climb2)").wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        assert page.locator('[data-testid="stImage"] img').count() == 0 and PASSWD_MARK not in page.content()
        page.close()
        log = (srv["state"] / "server.log").read_text(errors="replace")
        assert "Traceback" not in log and "MediaFileStorageError" not in log, log[-3000:]


SHARED_DATA = Path(os.environ.get("GALAXYSD_E2E_DATA_DIR", REPO.parent / "shared" / "data"))


def test_first_time_user_with_the_data_folder(tiny_model, browser, tmp_path):
    """The same visitor on a server with the real data folder: real galaxies from gz2_cutouts beside generated
    ones, the quiz, the shipped D-ETG catalog with its images, the metrics. The model is the tiny one (fast)
    carrying the shipped model's card and metric files, so Metrics and About show real numbers."""
    if not (SHARED_DATA / "gz2_cutouts" / "labels.csv").is_file():
        pytest.skip(f"real data folder {SHARED_DATA} (with gz2_cutouts) not found")
    model = Path(os.environ.get("GALAXYSD_E2E_MODEL", "")) if os.environ.get("GALAXYSD_E2E_MODEL") else None
    if model is None:  # $GALAXYSD_E2E_MODEL=assets/galaxysd-mini walks with the real model (slower)
        model = tmp_path / "tiny-with-card"
        shutil.copytree(tiny_model, model)
        shipped = REPO / "assets" / "galaxysd-mini"
        for name in ("metrics", "README.md", "training_captions.json"):
            if (shipped / name).is_dir():
                shutil.copytree(shipped / name, model / name)
            elif (shipped / name).is_file():
                shutil.copy(shipped / name, model / name)
    with _streamlit_server(model, tmp_path, {"GALAXYSD_DATA_DIR": str(SHARED_DATA)}, unset=("GALAXYSD_CANDIDATES",)) as srv:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{srv['url']}/real_vs_synthetic")
        page.get_by_text("Real galaxies from").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        body = page.inner_text("body")
        assert "gz2_cutouts" in body and "share size and framing" in body
        _images_loaded(page, '[data-testid="stImage"] img', 8)
        page.get_by_role("button", name="Generate for comparison").click()
        page.get_by_text("generated with seeds").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        page.get_by_role("button", name="New round").click()
        page.get_by_role("button", name="This one is fake").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        quiz = [b for b in _image_boxes(page, '[data-testid="stImage"] img')][-4:]
        assert len({(b["natural"], round(b["shown"])) for b in quiz}) == 1, quiz  # same size, real and fake
        _save_screenshot(page, tmp_path, "10_real_vs_synthetic_gz2_cutouts")

        _goto_page(page, "Candidates", "detg_candidates")
        _images_loaded(page, '[data-testid="stImage"] img', 2)
        assert "Image not found" not in page.inner_text("body")
        page.get_by_role("button", name="Enlarge").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("p_dust").first.wait_for(timeout=STEP_TIMEOUT_MS)  # the component probabilities
        page.get_by_text("Eye check of the top 50").first.wait_for(timeout=STEP_TIMEOUT_MS)
        _save_screenshot(page, tmp_path, "11_candidates_enlarged", full_page=False)
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)
        _save_screenshot(page, tmp_path, "12_candidates_detg")

        _goto_page(page, "Metrics", "Over training")
        page.get_by_text("Augmentation with generated galaxies").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 1",
                               timeout=STEP_TIMEOUT_MS)  # how many depends on the model's metric files
        _save_screenshot(page, tmp_path, "13_metrics")
        _goto_page(page, "About", "What it can and cannot draw")
        _save_screenshot(page, tmp_path, "14_about_with_card")
        page.close()
        log = (srv["state"] / "server.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]


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
