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
from galaxysd_core.studio import display
from galaxysd_core.studio.model_facts import feature_counts
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
THUMB_PX = display.THUMB_PX
LARGE_PX = 384
#: Images inside a container whose key starts with "crisp" are never smoothed by the browser.
CRISP_CSS = """<style>
[class*="st-key-crisp"] img { image-rendering: pixelated; image-rendering: crisp-edges; }
[class*="st-key-crisp"] [data-testid="stImage"] img { image-rendering: pixelated; }
</style>"""


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
    :data:`galaxysd_core.studio.limits.GATE`. Where it runs is added to the sidebar.
    """
    status = model_status()
    if not status.ok:
        if show_notice:
            st.info(f"**No model to generate with.** {status.message}", icon=":material/info:")
        return None
    pipe = get_pipeline_at(status.path)
    if pipe is not None:
        st.sidebar.caption(f"Runs on: {device_text(pipe)} · {pipe.default_size} px")
    return pipe


def get_pipeline_at(path) -> Optional[object]:
    """The cached pipeline of a model folder (shared like :func:`get_pipeline`), or None with an error."""
    try:
        return _cached_pipeline(str(path), model_stamp(path))
    except GalaxySDError as exc:
        st.error(f"The model at `{path}` cannot be loaded: {exc}")
        return None


def device_text(pipe) -> str:
    """Where a pipeline runs: ``galaxysd_core.pipelines.devices.describe_pipeline_device`` when it exists,
    else its device and dtype."""
    try:
        from galaxysd_core.pipelines.devices import describe_pipeline_device
    except ImportError:  # older package without the devices module
        return f"{pipe.device}, {str(getattr(pipe, 'dtype', '')).replace('torch.', '')}"
    return describe_pipeline_device(pipe)


@st.cache_resource(show_spinner="Loading the morphology classifier ...", max_entries=1)
def _cached_classifier(path: str, mtime: float):
    from galaxysd_core.studio.feature_probs import load_feature_classifier  # imports torch

    return load_feature_classifier(path)


def get_classifier():
    """The shipped morphology classifier (cached per process), or None when it is missing."""
    folder = config.DEFAULT_CLASSIFIER_DIR
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    return _cached_classifier(str(folder), weights.stat().st_mtime)


@st.cache_data(show_spinner=False, max_entries=4)
def _counts(path: str, stamp: tuple):
    return feature_counts(path)


def model_counts() -> Optional[dict]:
    """``{feature: training captions}`` of the configured model (``training_captions.json``), or None."""
    status = model_status()
    if not status.path.is_dir():
        return None
    return _counts(str(status.path), model_stamp(status.path))


def crisp() -> None:
    """Tell the browser never to smooth images inside ``st.container(key="crisp...")`` (call once per page)."""
    st.markdown(CRISP_CSS, unsafe_allow_html=True)


@st.cache_resource(show_spinner=False)
def _cached_store(url: str) -> Store:
    return Store(url)


def get_store():
    """The process-wide verdict/quiz store (URL from ``$GALAXYSD_STORE_URL`` or the default SQLite file)."""
    return _cached_store(default_url())


@st.cache_resource(show_spinner=False)
def _cached_history(url: str):
    from galaxysd_core.studio.history import GenerationHistory

    return GenerationHistory(_cached_store(url))


def get_history():
    """The generation history in the same store (rows kept: ``$GALAXYSD_HISTORY_MAX``)."""
    return _cached_history(default_url())


@st.cache_data(show_spinner=False, max_entries=4)
def _fingerprint(path: str, stamp: tuple) -> str:
    from galaxysd_core.science.synthetic import model_fingerprint

    return model_fingerprint(path)


def model_fingerprint() -> str:
    """Short SHA-256 of the configured model's weights (recorded with every generation), ``""`` without a model."""
    status = model_status()
    try:
        return _fingerprint(str(status.path), model_stamp(status.path)) if status.path.is_dir() else ""
    except GalaxySDError:
        return ""


def session_id() -> str:
    """Random id of this browser session (kept in session state)."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = new_session_id()
    return st.session_state["session_id"]


def user_name() -> str:
    """Name typed in the sidebar (stored with verdicts), or ``""``."""
    return str(st.session_state.get("user_name", "") or "").strip()[:100]


def enlarge(image: np.ndarray, px: int = THUMB_PX) -> np.ndarray:
    """Image scaled up by an integer factor (nearest neighbour) to at least ``px`` pixels, for display.

    Nearest-neighbour keeps the model's real pixels visible instead of a blurred upscale
    (:func:`galaxysd_core.studio.display.upscale`).
    """
    return display.upscale(image, px, "nearest")


def show_generated(item, caption: str = "", *, px: int = display.RESULT_PX, key: str = "") -> None:
    """A generated image at ``px`` or more (crisp), its caption and an "Enlarge" button opening :func:`enlarged`."""
    st.image(enlarge(item.image, px), caption=caption or f"seed {item.seed}")
    if key:
        st.button("Enlarge", key=key, on_click=open_enlarged, args=(item,), icon=":material/zoom_in:",
                  type="tertiary", help="Bigger view with the seed and every setting of this image")


def open_enlarged(item) -> None:
    st.session_state["ui.enlarged"] = item


def show_enlarged_dialog() -> None:
    """Open the dialog of the item chosen with "Enlarge" (call once, near the end of the page)."""
    item = st.session_state.pop("ui.enlarged", None)
    if item is not None:
        _enlarged(item)


@st.dialog("Generated galaxy", width="large")
def _enlarged(item) -> None:
    import pandas as pd

    from galaxysd_core.io.png import png_bytes

    with st.container(key="crisp-dialog"):
        a, b = st.columns([3, 2])
        a.image(enlarge(item.image, display.ENLARGED_PX), caption=f"{item.image.shape[1]} x {item.image.shape[0]} px "
                f"model output, shown {display.display_factor(item.image.shape[0], display.ENLARGED_PX)}x "
                f"(nearest neighbour)")
        with b:
            st.markdown(f"**seed {item.seed}**" + (f" · {item.label}" if item.label else ""))
            st.markdown(f"`{item.prompt}`")
            st.table(pd.DataFrame(parameter_rows(item)).set_index("setting"))
            st.download_button("PNG (settings embedded)", data=png_bytes(item.image, item.prompt, item.seed,
                                                                         item.parameters),
                               file_name=f"{item.file_stem}.png", mime="image/png", key=f"dl.dialog.{item.uid}",
                               on_click="ignore", icon=":material/download:")


def parameter_rows(item) -> list:
    """``[{"setting", "value"}]`` of a gallery item: seed, prompt, negative prompt and every pipeline parameter."""
    rows = [{"setting": "seed", "value": str(item.seed)}, {"setting": "prompt", "value": item.prompt}]
    for k, v in sorted(item.parameters.items()):
        if k in ("prompt", "seed", "seeds", "prompts"):
            continue
        rows.append({"setting": k, "value": "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))})
    return rows


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


@st.cache_data(show_spinner=False, max_entries=64)
def _cutouts(items: tuple, resolution: int):
    import pandas as pd

    from galaxysd_core.studio.real_data import load_real_images

    return load_real_images(pd.DataFrame(list(items), columns=["id", "image_path", "crop"]), resolution)


def real_cutouts(rows, resolution: int):
    """Cached :func:`galaxysd_core.studio.real_data.load_real_images` of index rows (reruns of a page
    re-decode nothing): ``(images, ids)``."""
    items = tuple((str(r.id), str(r.image_path), float(r.crop)) for r in rows.itertuples())
    return _cutouts(items, int(resolution))


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
    followed) lies outside it: a file outside the image folder is never opened. Cached per process
    in two bounded caches, so the memory they hold does not grow with the visitors: grid
    thumbnails (at most :data:`THUMB_PX`, 512 of them, at most about 40 MB) and the few large views
    (16 of them, at most about 20 MB at 640 px).
    """
    if root is None or not path or not is_inside(path, root):
        return None
    return (_thumb if px <= THUMB_PX else _large_view)(str(path), px, _mtime(path))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


@st.cache_data(show_spinner=False, max_entries=16)
def _large_view(path: str, px: int, mtime: float) -> Optional[np.ndarray]:
    return _read_thumb(path, px, mtime)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumb(path: str, px: int, mtime: float) -> Optional[np.ndarray]:
    return _read_thumb(path, px, mtime)


def _read_thumb(path: str, px: int, mtime: float) -> Optional[np.ndarray]:
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
    return display.upscale(arr, px, "lanczos")  # a photograph: smooth resampling on the server, not the browser's


if __name__ == "__main__":  # opened as a legacy page (/ui): hand over to app.py
    ensure_app_navigation()
