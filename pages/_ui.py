"""Streamlit helpers shared by the pages: cached resources, session identity, image display.

Not a page itself (``app.py`` lists the pages explicitly with ``st.navigation``). Logic lives in
:mod:`galaxysd_core.studio`; this module only wraps it in Streamlit caches and widgets.
"""
from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Optional

import numpy as np
import streamlit as st
from PIL import Image

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.io.uploads import load_uploaded_image
from galaxysd_core.studio.path_policy import PathPolicy, is_inside
from galaxysd_core.studio.model_status import ModelStatus, model_stamp
from galaxysd_core.studio.model_status import model_status as configured_model_status
from galaxysd_core.studio.real_data import load_real_index
from galaxysd_core.studio.session import new_session_id
from galaxysd_core.studio.store import Store, default_url

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"


def ensure_app_navigation() -> None:
    """Make sure the page runs under ``app.py``'s ``st.navigation``.

    Streamlit treats an app with a ``pages/`` folder as a legacy (v1) multipage app until a run
    calls ``st.navigation``; a first visitor opening e.g. ``/generate`` directly (and every
    ``AppTest`` run, which resets that state) would then get this page without ``app.py`` (no page
    config, no sidebar, pages listed by file name). Every page calls this first: in that case it
    switches Streamlit to ``st.navigation`` mode, runs ``app.py`` in place (which draws the sidebar
    and runs this same page through the navigation) and stops the legacy run. No rerun is
    involved, so a button press that started the run is not lost.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP_PATH), run_name="__main__")
        st.stop()


#: Side (pixels) at which small images are shown, enlarged with nearest-neighbour sampling.
THUMB_PX = 160
LARGE_PX = 384


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def _cached_pipeline(path: str, stamp: tuple):
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline  # imports torch: first use only

    return load_pipeline(path)


def model_status() -> ModelStatus:
    """Status of the configured model folder (cheap; no loading)."""
    return configured_model_status()


def get_pipeline(show_notice: bool = True):
    """The shared pipeline of the configured model, or None (with a notice on the page).

    Loaded once per server process and model version (``st.cache_resource`` keyed on the folder
    and its files' modification times); every session shares it, generation is serialised by
    :data:`galaxysd_core.studio.limits.GATE`.
    """
    status = model_status()
    if not status.ok:
        if show_notice:
            st.info(f"**No model to generate with.** {status.message}", icon=":material/info:")
        return None
    try:
        return _cached_pipeline(str(status.path), model_stamp(status.path))
    except GalaxySDError as exc:
        st.error(f"The model at `{status.path}` cannot be loaded: {exc}")
        return None


@st.cache_resource(show_spinner=False)
def _cached_store(url: str) -> Store:
    return Store(url)


def get_store():
    """The process-wide verdict/quiz store (URL from ``$GALAXYSD_STORE_URL`` or the default SQLite file)."""
    return _cached_store(default_url())


def session_id() -> str:
    """Random id of this browser session (kept in session state)."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = new_session_id()
    return st.session_state["session_id"]


def user_name() -> str:
    """Name typed in the sidebar (stored with verdicts), or ``""``."""
    return str(st.session_state.get("user_name", "") or "").strip()[:100]


def enlarge(image: np.ndarray, px: int = THUMB_PX) -> np.ndarray:
    """Image scaled up by an integer factor (nearest neighbour) to about ``px`` pixels, for display.

    Nearest-neighbour keeps the model's real pixels visible instead of a blurred upscale.
    """
    arr = np.asarray(image)
    side = max(arr.shape[0], arr.shape[1])
    k = max(1, int(round(px / max(side, 1))))
    if k == 1:
        return arr
    return np.repeat(np.repeat(arr, k, axis=0), k, axis=1)


def show_error(exc: BaseException) -> None:
    """Show a GalaxySD error as a message (never a traceback)."""
    st.error(str(exc), icon=":material/error:")


def data_dir_input(key: str = "data_dir") -> Optional[Path]:
    """The real-data folder: ``$GALAXYSD_DATA_DIR``, or None when unset.

    Only when the operator enables server paths (``$GALAXYSD_ALLOW_SERVER_PATHS``) is there a
    sidebar box to type another folder, and then only folders inside the policy's roots
    (:class:`~galaxysd_core.studio.path_policy.PathPolicy`) are used; a refused one gives a message
    in the sidebar and None.
    """
    policy = PathPolicy.from_config()
    if not policy.allow_typed:
        return config.data_dir()
    if key not in st.session_state:
        st.session_state[key] = os.environ.get(config.DATA_DIR_ENV, "")
    value = st.sidebar.text_input(
        "Real data folder", key=key,
        help=f"Folder with Galaxy Zoo images: a GZ2 release (gz2_hart16.csv, gz2_filename_mapping.csv, "
             f"images_gz2/) or folders with a labels.csv and images. Default: ${config.DATA_DIR_ENV}. "
             f"Only folders inside the server's allowed folders ({policy.describe()}) are accepted.")
    value = str(value or "").strip()
    if not value:
        return None
    try:
        return policy.check_typed(value, what="real-data folder", kind="dir")
    except GalaxySDError as exc:
        st.sidebar.error(str(exc), icon=":material/error:")
        return None


def data_dir_notice() -> None:
    """How to configure real data, shown when no folder is set."""
    st.info(
        "**No real-data folder configured.** Set the environment variable "
        f"`{config.DATA_DIR_ENV}` before starting the app (e.g. "
        f"`{config.DATA_DIR_ENV}=~/gz2 streamlit run app.py`)"
        + (" or type a folder in the sidebar." if config.allow_server_paths() else ".") + "\n\n"
        "Download the Galaxy Zoo 2 release (Hart et al. 2016 table + about 3.4 GB of images) with "
        "`galaxysd data download --out ~/gz2 --extract`. "
        "A folder with a `labels.csv` and images (like the Galaxy Zoo 1 cutouts) works too.",
        icon=":material/folder_open:")


@st.cache_data(show_spinner="Indexing real galaxies ...", max_entries=4)
def real_index(data_dir: str, stamp: float):
    """Cached :func:`galaxysd_core.studio.real_data.load_real_index` (``stamp`` = folder mtime)."""
    return load_real_index(data_dir)


def get_real_index(data_dir: Path):
    """Index of the real galaxies in ``data_dir`` (cached), or raises GalaxySDError."""
    try:
        stamp = data_dir.stat().st_mtime
    except OSError:
        stamp = 0.0
    return real_index(str(data_dir), stamp)


def thumbnail(path: str, px: int = THUMB_PX, *, root: Optional[os.PathLike]) -> Optional[np.ndarray]:
    """Validated, downsized RGB array of an image file inside ``root``, or None.

    None when the file is unreadable, when there is no ``root`` or when ``path`` (symbolic links
    followed) lies outside it: a file outside the image folder is never opened.
    """
    if root is None or not path or not is_inside(path, root):
        return None
    return _thumb(str(path), px, _mtime(path))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


@st.cache_data(show_spinner=False, max_entries=512)
def _thumb(path: str, px: int, mtime: float) -> Optional[np.ndarray]:
    if mtime < 0:
        return None
    try:
        arr = load_uploaded_image(path)
    except GalaxySDError:
        return None
    im = Image.fromarray(arr)
    if max(im.size) > px:
        im.thumbnail((px, px), Image.Resampling.LANCZOS)
        return np.asarray(im)
    return enlarge(arr, px)


if __name__ == "__main__":  # opened as a legacy page (/ui): hand over to app.py
    ensure_app_navigation()
