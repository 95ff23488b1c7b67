"""Non-UI logic behind the Streamlit pages of GalaxySD Studio.

The pages (``app.py``, ``pages/*.py``) only parse widget values, call the functions here and
draw the results, so everything below is testable without Streamlit:

* model discovery and pipeline loading (:func:`model_status`, :func:`load_pipeline`,
  :func:`model_stamp` as a cache key for ``st.cache_resource``);
* request limits (:func:`check_request`) and the generation gate (:data:`GATE`, a bounded
  semaphore with a timeout) so that concurrent browser sessions queue for the shared pipeline
  instead of running it at the same time;
* the feature controls of the Generate page (one control per GZ2 question, so mutually exclusive
  answers cannot both be on) and their round trip with the prompt text;
* generation and extrapolation sweeps returning :class:`GalleryItem` objects, the per-session
  gallery, and restoring controls from a PNG's stored settings;
* real galaxies of the configured data folder (index, caption matching, cutouts) and the
  "spot the fake" quiz;
* reading the metric files the Metrics page plots (nothing is recomputed).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDError, GalaxySDFileError, GalaxySDValueError, ServerBusyError
from galaxysd_core.schema.gz2 import QUESTION_BY_STEM, SURVEY_PREFIX, TREE_ORDER, captioned_answers

# ===================================================================================== limits
#: Most images per request (one press of Generate or one sweep).
MAX_REQUEST_IMAGES = int(os.environ.get("GALAXYSD_MAX_REQUEST_IMAGES", 16))
#: Most images x denoising steps per request (16 images x 50 steps).
MAX_IMAGE_STEPS = int(os.environ.get("GALAXYSD_MAX_IMAGE_STEPS", 16 * 50))
#: Most steps offered by the steps slider.
MAX_UI_STEPS = 100
#: Largest seed the seed box accepts (A1111 seeds are 32-bit).
MAX_UI_SEED = 2**32 - 1
#: Generations running at the same time in one server process (others wait for a slot).
MAX_CONCURRENT = max(1, int(os.environ.get("GALAXYSD_MAX_CONCURRENT", 1)))
#: Seconds a request waits for a free slot before the page says the server is busy.
QUEUE_TIMEOUT_S = float(os.environ.get("GALAXYSD_QUEUE_TIMEOUT_S", 300))
#: Images kept in a browser session's gallery (oldest dropped first).
GALLERY_LIMIT = 48
#: Weight range of the feature sliders (the grammar accepts 0-3, beyond ~2 is extrapolation).
SLIDER_MIN, SLIDER_MAX, SLIDER_STEP = 0.5, 2.0, 0.05
#: Label of a feature never seen in training.
UNSEEN_LABEL = "(unseen in training)"


def check_request(n_images: int, steps: int, *, max_images: Optional[int] = None,
                  max_image_steps: Optional[int] = None) -> None:
    """Refuse requests too large for a shared CPU server.

    Raises
    ------
    GalaxySDValueError
        When ``n_images`` exceeds :data:`MAX_REQUEST_IMAGES` or ``n_images * steps`` exceeds
        :data:`MAX_IMAGE_STEPS`; the message says what to lower.
    """
    max_images = MAX_REQUEST_IMAGES if max_images is None else max_images
    max_image_steps = MAX_IMAGE_STEPS if max_image_steps is None else max_image_steps
    if not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise GalaxySDValueError(f"number of images must be a positive integer, got {n_images!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise GalaxySDValueError(f"steps must be a positive integer, got {steps!r}")
    if n_images > max_images:
        raise GalaxySDValueError(f"{n_images} images requested; at most {max_images} per request on this server. "
                                 f"Lower the number of images (or of sweep values x seeds).")
    if n_images * steps > max_image_steps:
        raise GalaxySDValueError(
            f"{n_images} images x {steps} steps = {n_images * steps} image-steps; at most {max_image_steps} "
            f"per request on this server (e.g. {max_images} x {max_image_steps // max_images}). "
            f"Lower the number of images or the steps.")


class GenerationGate:
    """Bounded semaphore serialising generations across browser sessions of one server.

    Parameters
    ----------
    slots : int
        Generations allowed at the same time.
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = int(slots)
        self._sem = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot right now."""
        return self._waiting

    @property
    def running(self) -> int:
        """Generations running right now."""
        return self._running

    @contextlib.contextmanager
    def slot(self, timeout: Optional[float] = None) -> Iterator[None]:
        """Hold a generation slot for the ``with`` block.

        Raises
        ------
        ServerBusyError
            When no slot is free within ``timeout`` seconds (default :data:`QUEUE_TIMEOUT_S`).
        """
        timeout = QUEUE_TIMEOUT_S if timeout is None else timeout
        with self._lock:
            self._waiting += 1
        try:
            ok = self._sem.acquire(timeout=max(0.0, float(timeout)))
        finally:
            with self._lock:
                self._waiting -= 1
        if not ok:
            raise ServerBusyError(f"the server is busy with other generations (waited {timeout:.0f} s); "
                                  f"try again in a moment or ask for fewer images/steps")
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
            self._sem.release()


#: The process-wide gate used by the pages.
GATE = GenerationGate(MAX_CONCURRENT)


# ===================================================================================== model
@dataclass
class ModelStatus:
    """Whether a usable model folder is configured, and what to do if not."""

    path: Path
    ok: bool
    message: str
    from_env: bool


def model_status(path: Optional[os.PathLike] = None) -> ModelStatus:
    """Check the configured model folder without loading it.

    Parameters
    ----------
    path : path-like, optional
        Folder to check; default :func:`galaxysd_core.config.model_dir`.
    """
    from galaxysd_core import config

    from_env = bool(os.environ.get(config.MODEL_DIR_ENV)) and path is None
    folder = Path(path) if path is not None else config.model_dir()
    how = (f"Train GalaxySD-mini with `python train/train_diffusion.py --caches cache/gz1_64 "
           f"--output_dir runs/galaxysd-mini` (prepare the caches with `python -m galaxysd_core data prepare`) "
           f"and copy `runs/galaxysd-mini/model` to `{config.DEFAULT_MODEL_DIR.relative_to(config.PROJECT_ROOT)}`, "
           f"or point `{config.MODEL_DIR_ENV}` at a diffusers pipeline folder (GalaxySD-mini, or Stable Diffusion "
           f"1.5 fine-tuned on GZ2; safetensors weights), e.g. "
           f"`{config.MODEL_DIR_ENV}=/path/to/model streamlit run app.py`.")
    if not folder.is_dir():
        return ModelStatus(folder, False, f"No model folder at `{folder}`. {how}", from_env)
    if not (folder / "model_index.json").is_file():
        return ModelStatus(folder, False, f"`{folder}` is not a pipeline folder (no `model_index.json`). {how}",
                           from_env)
    from galaxysd_core.pipelines.model_folder import check_model_folder

    problems, _ = check_model_folder(folder)
    if problems:
        return ModelStatus(folder, False, f"`{folder}` is incomplete ({'; '.join(problems)}). {how}", from_env)
    return ModelStatus(folder, True, f"model `{folder.name}` at `{folder}`", from_env)


def model_stamp(path: os.PathLike) -> Tuple[Any, ...]:
    """Modification times of a model folder's key files: a cache key that changes on retraining."""
    folder = Path(path)
    out: List[Any] = [str(folder.resolve())]
    for rel in ("model_index.json", "unet/diffusion_pytorch_model.safetensors",
                "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                "training_captions.json"):
        p = folder / rel
        out.append(p.stat().st_mtime_ns if p.is_file() else None)
    return tuple(out)


def load_pipeline(path: os.PathLike):
    """Load a :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline` for the app (progress bar off).

    Raises
    ------
    GalaxySDFileError
        Naming the missing or corrupt file.
    """
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline as _load

    return _load(Path(path))


# ===================================================================================== feature controls
@dataclass(frozen=True)
class QuestionControl:
    """One control of the Generate page: a GZ2 question and its captioned answers (tree order)."""

    stem: str
    text: str
    phrases: Tuple[str, ...]

    @property
    def number(self) -> int:
        return int(self.stem[1:3])


def question_controls() -> List[QuestionControl]:
    """One :class:`QuestionControl` per GZ2 question with captioned answers, in tree order."""
    by_q: Dict[str, List[str]] = {}
    for a in captioned_answers():
        by_q.setdefault(a.question, []).append(a.phrase)
    return [QuestionControl(stem, QUESTION_BY_STEM[stem].text, tuple(by_q[stem])) for stem in TREE_ORDER
            if stem in by_q]


_PHRASE_QUESTION = {a.phrase: a.question for a in captioned_answers()}


def controls_from_features(features: Mapping[str, float]) -> Tuple[Dict[str, Tuple[Optional[str], float]], List[str]]:
    """Control states ``{question stem: (phrase or None, weight)}`` of ``{phrase: weight}``.

    Weights outside the slider range are clamped; the returned notes say so (the prompt text
    keeps the exact weight until a control is moved).

    Raises
    ------
    GalaxySDValueError
        When two answers of the same question are on (they exclude each other), or a phrase is
        not a caption feature.
    """
    state: Dict[str, Tuple[Optional[str], float]] = {c.stem: (None, 1.0) for c in question_controls()}
    notes: List[str] = []
    for phrase, weight in features.items():
        stem = _PHRASE_QUESTION.get(phrase)
        if stem is None:
            raise GalaxySDValueError(f"{phrase!r} is not a caption feature the sliders know")
        if state[stem][0] is not None:
            raise GalaxySDValueError(
                f"{state[stem][0]!r} and {phrase!r} both answer the GZ2 question "
                f"\"{QUESTION_BY_STEM[stem].text}\"; they exclude each other, keep one")
        w = float(weight)
        clamped = min(max(w, SLIDER_MIN), SLIDER_MAX)
        if not math.isclose(clamped, w):
            notes.append(f"weight {w:g} of {phrase!r} is outside the slider range "
                         f"[{SLIDER_MIN:g}, {SLIDER_MAX:g}]; the slider shows {clamped:g}, the text keeps {w:g}")
        state[stem] = (phrase, round(clamped, 2))
    return state, notes


def features_from_controls(state: Mapping[str, Tuple[Optional[str], float]]) -> Dict[str, float]:
    """``{phrase: weight}`` of the controls that are on (inverse of :func:`controls_from_features`)."""
    return {phrase: round(float(w), 2) for phrase, w in state.values() if phrase}


def prompt_from_controls(state: Mapping[str, Tuple[Optional[str], float]]) -> str:
    """Prompt text of the controls (``build_prompt``; just ``"sdss"`` when all are off)."""
    from galaxysd_core.prompts.grammar import build_prompt

    return build_prompt(features_from_controls(state))


def controls_from_prompt(text: str) -> Tuple[Dict[str, Tuple[Optional[str], float]], List[str]]:
    """Control states of a prompt text (via ``features_from_prompt``); raises the grammar's errors."""
    from galaxysd_core.prompts.grammar import features_from_prompt

    return controls_from_features(features_from_prompt(text))


def feature_label(phrase: str, unseen: Sequence[str] = ()) -> str:
    """Option label of a feature, marked when the model never saw it in training."""
    return f"{phrase} {UNSEEN_LABEL}" if phrase in unseen else phrase


# ===================================================================================== generation
@dataclass
class GalleryItem:
    """One generated image with everything needed to reproduce and save it."""

    image: np.ndarray
    prompt: str
    seed: int
    parameters: Dict[str, Any]
    created: str = field(default_factory=lambda: _dt.datetime.now().strftime("%H:%M:%S"))
    label: str = ""
    uid: str = field(default_factory=lambda: secrets.token_hex(6))

    @property
    def file_stem(self) -> str:
        return f"galaxysd_seed{self.seed}_{self.uid}"


@dataclass
class GenerationRequest:
    """Settings of one press of Generate (validated by :meth:`check`)."""

    prompt: str
    negative_prompt: str = ""
    tree_negatives: bool = True
    n_images: int = 4
    steps: int = 20
    guidance: float = 6.5
    scheduler: str = "ddim"
    seed: Optional[int] = 0
    init_image: Optional[np.ndarray] = None
    strength: float = 0.6

    def check(self) -> None:
        """Raise :class:`GalaxySDValueError` for a request over the limits (the pipeline checks the rest)."""
        check_request(self.n_images, self.steps)
        if self.init_image is not None:
            from galaxysd_core.pipelines.pipeline_galaxysd import img2img_steps

            n_steps = img2img_steps(self.steps, self.strength)
            if n_steps < 1:
                raise GalaxySDValueError(f"strength {self.strength:g} with {self.steps} steps leaves no denoising "
                                         f"step; raise the strength or the steps")


def _items(out, label: str = "") -> List[GalleryItem]:
    images = out.images
    arrays = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8) for im in images]
    negs = list(getattr(out, "negative_prompts", None) or [out.parameters.get("negative_prompt") or ""] * len(arrays))
    # each image records the negative prompt it was made with (automatic ones differ per prompt)
    return [GalleryItem(image=a, prompt=p, seed=int(s), parameters={**out.parameters, "negative_prompt": n},
                        label=label)
            for a, p, s, n in zip(arrays, out.prompts, out.seeds, negs)]


def generate(pipe, request: GenerationRequest, callback: Optional[Callable[[int, int], None]] = None,
             *, gate: Optional[GenerationGate] = None, timeout: Optional[float] = None) -> List[GalleryItem]:
    """Run one request through the shared pipeline, holding a generation slot.

    Parameters
    ----------
    pipe : GalaxySDPipeline
    request : GenerationRequest
    callback : callable, optional
        ``callback(step, total)`` after every denoising step (drives ``st.progress``).
    gate : GenerationGate, optional
        Default :data:`GATE`.
    timeout : float, optional
        Queue timeout (default :data:`QUEUE_TIMEOUT_S`).

    Raises
    ------
    GalaxySDValueError
        Invalid prompt or settings, or a request over the limits.
    ServerBusyError
        No slot within the timeout.
    """
    request.check()
    pipe.parse(request.prompt)  # fail fast, before queueing
    with (gate or GATE).slot(timeout):
        out = pipe(request.prompt, negative_prompt=request.negative_prompt or None,
                   num_images_per_prompt=int(request.n_images), seed=request.seed,
                   num_inference_steps=int(request.steps), guidance_scale=float(request.guidance),
                   scheduler=request.scheduler, image=request.init_image, strength=float(request.strength),
                   output_type="np", callback=callback, tree_negatives=bool(request.tree_negatives))
    return _items(out)


def sweep_values(start: float, stop: float, n: int) -> List[float]:
    """``n`` weights evenly spaced from ``start`` to ``stop`` (rounded to 2 decimals)."""
    if n < 1:
        raise GalaxySDValueError("a sweep needs at least one value")
    if n == 1:
        return [round(float(start), 2)]
    return [round(float(v), 2) for v in np.linspace(float(start), float(stop), int(n))]


@dataclass
class SweepResult:
    """Images of an extrapolation sweep: ``grid[i][j]`` is seed ``seeds[i]`` at weight ``weights[j]``."""

    phrase: str
    weights: List[float]
    seeds: List[int]
    prompts: List[str]
    grid: List[List[GalleryItem]]


def run_sweep(pipe, base_prompt: str, phrase: str, weights: Sequence[float], seeds: Sequence[int], *,
              negative_prompt: str = "", tree_negatives: bool = True, steps: int = 20, guidance: float = 6.5,
              scheduler: str = "ddim",
              callback: Optional[Callable[[int, int], None]] = None, gate: Optional[GenerationGate] = None,
              timeout: Optional[float] = None) -> SweepResult:
    """One feature's weight x seeds grid in a single pipeline call (the same seeds at every weight).

    The feature is added to the prompt when absent. The request limit counts
    ``len(weights) * len(seeds)`` images.
    """
    from galaxysd_core.evaluation.runner import set_phrase_weight

    weights = [round(float(w), 2) for w in weights]
    seeds = [int(s) for s in seeds]
    if not weights or not seeds:
        raise GalaxySDValueError("a sweep needs at least one weight and one seed")
    if phrase not in _PHRASE_QUESTION:
        raise GalaxySDValueError(f"{phrase!r} is not a caption feature; pick one from the list")
    check_request(len(weights) * len(seeds), int(steps))
    base = pipe.parse(base_prompt)  # validates the base prompt
    # remove other answers of the same question: they exclude the swept one
    tags = base.phrase_weights()
    stem = _PHRASE_QUESTION[phrase]
    kept = [t for t in tags if _PHRASE_QUESTION.get(t) != stem or t == phrase]
    text = ", ".join(t if tags[t] == 1.0 else f"{{{t}:{round(tags[t], 3):g}}}" for t in kept) or SURVEY_PREFIX
    prompts = [set_phrase_weight(text, phrase, w) for w in weights]
    for p in prompts:
        pipe.parse(p)
    with (gate or GATE).slot(timeout):
        out = pipe(prompts, negative_prompt=negative_prompt or None, num_images_per_prompt=len(seeds),
                   seed=[s for _ in weights for s in seeds], num_inference_steps=int(steps),
                   guidance_scale=float(guidance), scheduler=scheduler, output_type="np", callback=callback,
                   tree_negatives=bool(tree_negatives))
    items = _items(out)
    for it, (w, s) in zip(items, [(w, s) for w in weights for s in seeds]):
        it.label = f"{phrase} {w:g} / seed {s}"
    n = len(seeds)
    grid = [[items[j * n + i] for j in range(len(weights))] for i in range(n)]
    return SweepResult(phrase=phrase, weights=weights, seeds=seeds, prompts=prompts, grid=grid)


def add_to_gallery(gallery: List[GalleryItem], items: Sequence[GalleryItem], limit: int = GALLERY_LIMIT) -> List[GalleryItem]:
    """Gallery with ``items`` in front (newest first), at most ``limit`` long."""
    return (list(items) + list(gallery))[:limit]


def gallery_zip(items: Sequence[GalleryItem], include_fits: bool = True) -> bytes:
    """All gallery images as one zip (PNG with settings, FITS, ``manifest.json``)."""
    from galaxysd_core.io.image_io import zip_images

    return zip_images(items, include_fits=include_fits)


def random_seed() -> int:
    """A fresh random seed in [0, 2**31)."""
    return secrets.randbelow(2**31)


def settings_from_png(info: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Control values of the Generate page from :func:`galaxysd_core.io.image_io.read_png_parameters`.

    Returns
    -------
    settings : dict
        ``prompt``, ``negative_prompt``, ``tree_negatives`` and, when stored, ``steps``, ``guidance``, ``scheduler``,
        ``seed``, ``n_images``, ``strength``, clamped to the ranges the controls offer.
    notes : list of str
        What was clamped or could not be restored (e.g. an unknown sampler, the start image).

    Raises
    ------
    GalaxySDValueError
        When the PNG has no prompt.
    """
    from galaxysd_core.pipelines.pipeline_galaxysd import MAX_GUIDANCE, SCHEDULERS

    prompt = info.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise GalaxySDValueError("the PNG's settings have no prompt")
    out: Dict[str, Any] = {"prompt": prompt.strip(), "negative_prompt": str(info.get("negative_prompt") or ""),
                           # the recorded negative prompt is the one used; only a GalaxySD Studio image that
                           # used the automatic one says so (others: exactly what was recorded, nothing added)
                           "tree_negatives": bool(info.get("tree_negatives", False))}
    notes: List[str] = []

    def clamp(name: str, value: Any, lo: float, hi: float, kind: type) -> None:
        try:
            v = kind(value)
        except (TypeError, ValueError):
            notes.append(f"{name} {value!r} is not a number; kept the current value")
            return
        c = min(max(v, lo), hi)
        if c != v:
            notes.append(f"{name} {v:g} is outside [{lo:g}, {hi:g}]; set to {c:g}")
        out[name] = kind(c)

    if info.get("num_inference_steps") is not None:
        clamp("steps", info["num_inference_steps"], 1, MAX_UI_STEPS, int)
    if info.get("guidance_scale") is not None:
        clamp("guidance", info["guidance_scale"], 0.0, MAX_GUIDANCE, float)
    if info.get("seed") is not None:
        clamp("seed", info["seed"], 0, MAX_UI_SEED, int)
    if info.get("num_images_per_prompt") is not None:
        clamp("n_images", info["num_images_per_prompt"], 1, MAX_REQUEST_IMAGES, int)
    sched = info.get("scheduler")
    if sched in SCHEDULERS:
        out["scheduler"] = sched
    elif sched or info.get("sampler"):
        notes.append(f"sampler {sched or info.get('sampler')!r} is not available; kept the current one")
    if info.get("init_image"):
        if info.get("strength") is not None:
            clamp("strength", info["strength"], 0.05, 1.0, float)
        notes.append("the image was made from a real galaxy (img2img); pick the start image again")
    return out, notes


# ===================================================================================== real galaxies
@dataclass(frozen=True)
class RealSource:
    """A source of real galaxies in the data folder."""

    name: str
    kind: str  # "catalog" or "gz2"
    path: Path


#: Largest number of GZ2-release rows read for the app (the full release has ~240k).
REAL_GZ2_LIMIT = 30_000


def real_sources(data_dir: os.PathLike) -> List[RealSource]:
    """Sources of real galaxies with images in ``data_dir``.

    Understands a GZ2 release folder (``gz2_hart16.csv`` + mapping + images, at the top or one
    level down) and catalog folders with a ``labels.csv`` (the layout of the shared data:
    ``gz1_sdss/labels.csv``, ``gz2_examples/labels.csv``).

    Raises
    ------
    GalaxySDFileError
        When ``data_dir`` is not a folder.
    """
    from galaxysd_core.data.readers import GZ2_MAPPING_NAME

    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise GalaxySDFileError(f"data folder {str(root)!r} does not exist; set GALAXYSD_DATA_DIR or the sidebar "
                                f"path to a folder with Galaxy Zoo images (download GZ2 with "
                                f"'galaxysd data download --out <folder>')")
    out: List[RealSource] = []
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (folder / GZ2_MAPPING_NAME).is_file():
            out.append(RealSource(folder.name, "gz2", folder))
        if (folder / "labels.csv").is_file():
            out.append(RealSource(folder.name, "catalog", folder / "labels.csv"))
    return out


def caption_features(text: str) -> Tuple[str, ...]:
    """Sorted feature tags of a caption or prompt (weights and the survey prefix dropped)."""
    from galaxysd_core.prompts.grammar import prompt_tags

    return prompt_tags(text, keep_prefix=False)


def load_real_index(data_dir: os.PathLike, limit: Optional[int] = None) -> Tuple[pd.DataFrame, List[str]]:
    """Index of the real galaxies of ``data_dir``: ``id, caption, features, image_path, source, crop``.

    Returns
    -------
    index : pandas.DataFrame
        Rows with an image path only; ``features`` is the sorted tuple of caption features and
        ``crop`` the central crop fraction of the source's cutouts.
    problems : list of str
        Sources that could not be read, with the reason.

    Raises
    ------
    GalaxySDFileError
        When ``data_dir`` is missing. An empty index is returned when nothing usable is found.
    """
    from galaxysd_core.data.cache import default_crop_fraction
    from galaxysd_core.data.readers import read_catalog, read_gz2_release

    rows: List[Dict[str, Any]] = []
    problems: List[str] = []
    for src in real_sources(data_dir):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if src.kind == "gz2":
                    recs = read_gz2_release(src.path, limit=limit or REAL_GZ2_LIMIT, on_error="skip")
                else:
                    recs = read_catalog(src.path, limit=limit, on_error="skip")
        except GalaxySDError as exc:
            problems.append(f"{src.name}: {exc}")
            continue
        for r in recs:
            if r.image_path is None:
                continue
            rows.append({"id": r.id, "caption": r.caption, "image_path": str(r.image_path), "source": r.source,
                         "crop": default_crop_fraction(r.label_kind, r.source)})
    df = pd.DataFrame(rows, columns=["id", "caption", "image_path", "source", "crop"])
    cache: Dict[str, Tuple[str, ...]] = {c: caption_features(c) for c in df["caption"].unique()}
    df["features"] = [cache[c] for c in df["caption"]]
    return df, problems


def caption_counts(index: pd.DataFrame) -> pd.DataFrame:
    """``caption, count`` of an index, most common first."""
    if len(index) == 0:
        return pd.DataFrame(columns=["caption", "count"])
    counts = index["caption"].value_counts()
    return pd.DataFrame({"caption": counts.index.tolist(), "count": counts.to_numpy().astype(int)})


def real_matches(index: pd.DataFrame, prompt: str, n: int, seed: int = 0) -> Tuple[pd.DataFrame, str]:
    """Up to ``n`` real galaxies for a prompt, and how they match.

    Exact caption matches first (same features, weights ignored); if there are none, galaxies
    whose caption contains every prompted feature ("has these features"). Random order fixed by
    ``seed``.

    Returns
    -------
    rows : pandas.DataFrame
    match : str
        ``"same caption"``, ``"has these features"`` or ``"none"``.
    """
    if len(index) == 0:
        return index.iloc[:0], "none"
    want = caption_features(prompt)
    exact = index[index["features"].map(lambda f: f == want)]
    match = "same caption"
    if len(exact) == 0:
        wanted = set(want)
        exact = index[index["features"].map(lambda f: wanted <= set(f))] if wanted else index.iloc[:0]
        match = "has these features"
    if len(exact) == 0:
        return exact, "none"
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(exact))[: int(n)]
    return exact.iloc[np.sort(take)], match


def load_real_images(rows: pd.DataFrame, resolution: int) -> Tuple[np.ndarray, List[str]]:
    """Cutouts ``(N, resolution, resolution, 3)`` uint8 of index rows, and the ids kept.

    Unreadable images are skipped (the decoder refuses corrupt or oversized files).
    """
    from galaxysd_core.data.cache import ImageRejected, load_image

    images, ids = [], []
    for _, r in rows.iterrows():
        try:
            images.append(load_image(r["image_path"], resolution=int(resolution), crop_fraction=float(r["crop"])))
            ids.append(str(r["id"]))
        except ImageRejected:
            continue
    if not images:
        return np.zeros((0, resolution, resolution, 3), np.uint8), []
    return np.stack(images), ids


# ===================================================================================== quiz
@dataclass
class QuizRound:
    """A "spot the fake" round: images (one generated) and the position of the fake."""

    images: List[np.ndarray]
    fake_index: int
    prompt: str
    real_ids: List[str]
    fake_seed: int
    answered: Optional[int] = None

    @property
    def correct(self) -> Optional[bool]:
        return None if self.answered is None else self.answered == self.fake_index


def new_quiz_round(real_images: np.ndarray, real_ids: Sequence[str], fake_image: np.ndarray, prompt: str,
                   fake_seed: int, n_real: int = 3, rng: Optional[np.random.Generator] = None) -> QuizRound:
    """Mix ``n_real`` real cutouts and one generated image in random order.

    Raises
    ------
    GalaxySDValueError
        With fewer than ``n_real`` real images.
    """
    rng = rng or np.random.default_rng()
    if len(real_images) < n_real:
        raise GalaxySDValueError(f"the quiz needs {n_real} real galaxies, only {len(real_images)} were found; "
                                 f"choose a more common prompt or another data folder")
    pick = rng.choice(len(real_images), size=n_real, replace=False)
    fake = np.asarray(fake_image, dtype=np.uint8)
    size = real_images.shape[1]
    if fake.shape[0] != size:
        from PIL import Image

        fake = np.asarray(Image.fromarray(fake).resize((size, size), Image.Resampling.LANCZOS))
    pos = int(rng.integers(0, n_real + 1))
    images = [real_images[i] for i in pick]
    images.insert(pos, fake)
    return QuizRound(images=images, fake_index=pos, prompt=prompt, real_ids=[real_ids[i] for i in pick],
                     fake_seed=int(fake_seed))


# ===================================================================================== metric files
#: File names looked up in ``<model>/metrics`` (first found wins).
TRAINING_FILES = ("training_metrics.csv", "checkpoints.csv")
PARETO_FILES = ("pareto.csv", "evaluation.csv")
BENCHMARK_FILE = "real_benchmark.json"
MORPHOLOGY_DIR = "morphology_distribution"
#: Column roles of the Pareto plot and the names accepted for each (first present wins).
PARETO_ROLES: Dict[str, Tuple[str, ...]] = {
    "realism": ("realism", "precision", "density"),
    "diversity": ("diversity", "recall", "coverage"),
    "consistency": ("consistency",),
    "sweep_value": ("sweep_value", "value", "weight", "guidance"),
    "prompt": ("base_prompt", "prompt"),
    "sweep_variable": ("sweep_variable", "variable", "sweep"),
}
#: Metric columns plotted over training steps, when present.
TRAINING_METRICS = ("consistency", "precision", "recall", "density", "coverage", "domain_fd", "domain_kid", "loss",
                    "val_loss")


@dataclass
class MetricsBundle:
    """Metric files of a model (and of the classifier / augmentation assets), read without recomputing.

    Every table is None when its file is missing; ``problems`` lists files that exist but could
    not be read.
    """

    metrics_dir: Path
    training: Optional[pd.DataFrame] = None
    training_file: Optional[Path] = None
    benchmark: Optional[Dict[str, Any]] = None
    pareto: Optional[pd.DataFrame] = None
    pareto_file: Optional[Path] = None
    morphology: Dict[str, Dict[str, pd.DataFrame]] = field(default_factory=dict)
    classifier_readme: Optional[str] = None
    classifier_metrics: Optional[pd.DataFrame] = None
    augmentation: Optional[pd.DataFrame] = None
    problems: List[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return all(x is None for x in (self.training, self.benchmark, self.pareto, self.classifier_readme,
                                       self.augmentation)) and not self.morphology


def _read_csv_tolerant(path: Path, problems: List[str]) -> Optional[pd.DataFrame]:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        problems.append(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})")
        return None
    if len(df) == 0:
        problems.append(f"{path.name}: has no rows")
        return None
    return df


def benchmark_consistency(bench: Optional[Mapping[str, Any]]) -> List[Tuple[str, float]]:
    """Horizontal reference lines of the consistency plot: ``[(label, value), ...]``.

    Reads ``consistency`` (flat layout) or ``consistency_on_real.consistency`` (written by
    :mod:`galaxysd_core.evaluation.runner`) and ``paper_real_consistency``.
    """
    if not bench:
        return []
    out: List[Tuple[str, float]] = []
    val = bench.get("consistency")
    if isinstance(val, Mapping):
        val = val.get("consistency", val.get("overall"))
    if val is None and isinstance(bench.get("consistency_on_real"), Mapping):
        val = bench["consistency_on_real"].get("consistency")
    if isinstance(val, (int, float)) and math.isfinite(val):
        out.append(("real images (our classifier)", float(val)))
    paper = bench.get("paper_real_consistency")
    if isinstance(paper, (int, float)) and math.isfinite(paper):
        out.append(("real images (GalaxySD paper)", float(paper)))
    return out


def pareto_columns(df: pd.DataFrame) -> Dict[str, Optional[str]]:
    """Column used for each role of :data:`PARETO_ROLES` (None where absent)."""
    return {role: next((c for c in names if c in df.columns and df[c].notna().any()), None)
            for role, names in PARETO_ROLES.items()}


def read_metrics(model_dir: os.PathLike, assets_dir: Optional[os.PathLike] = None) -> MetricsBundle:
    """Read every metric file the Metrics page shows.

    Parameters
    ----------
    model_dir : path-like
        Model folder; tables are read from ``<model_dir>/metrics``.
    assets_dir : path-like, optional
        Folder with ``classifier/README.md`` and ``augmentation/results.csv`` (default the
        repository's ``assets``).
    """
    from galaxysd_core import config

    mdir = Path(model_dir) / "metrics"
    assets = Path(assets_dir) if assets_dir is not None else config.ASSETS_DIR
    b = MetricsBundle(metrics_dir=mdir)
    if mdir.is_dir():
        for name in TRAINING_FILES:
            if (mdir / name).is_file():
                df = _read_csv_tolerant(mdir / name, b.problems)
                if df is not None and "step" not in df.columns:
                    b.problems.append(f"{name}: no 'step' column (columns: {list(df.columns)[:10]})")
                    df = None
                if df is not None:
                    b.training, b.training_file = df.sort_values("step", kind="stable"), mdir / name
                    break
        bench = mdir / BENCHMARK_FILE
        if bench.is_file():
            try:
                data = json.loads(bench.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("top level is not an object")
                b.benchmark = data
            except (OSError, ValueError) as exc:
                b.problems.append(f"{BENCHMARK_FILE}: cannot be read ({exc})")
        for name in PARETO_FILES:
            if (mdir / name).is_file():
                df = _read_csv_tolerant(mdir / name, b.problems)
                if df is not None:
                    cols = pareto_columns(df)
                    if cols["realism"] is None or cols["diversity"] is None:
                        b.problems.append(f"{name}: needs realism/precision and diversity/recall columns "
                                          f"(columns: {list(df.columns)[:10]})")
                    else:
                        b.pareto, b.pareto_file = df, mdir / name
                        break
        morph = mdir / MORPHOLOGY_DIR
        for feat_file in sorted(morph.rglob("features.csv")) if morph.is_dir() else []:
            label = feat_file.parent.name if feat_file.parent != morph else "training data"
            feats = _read_csv_tolerant(feat_file, b.problems)
            combos = (_read_csv_tolerant(feat_file.parent / "combinations.csv", b.problems)
                      if (feat_file.parent / "combinations.csv").is_file() else None)
            if feats is not None and {"feature", "count"} <= set(feats.columns):
                b.morphology[label] = {"features": feats, "combinations": combos}
            elif feats is not None:
                b.problems.append(f"{feat_file.relative_to(mdir)}: needs 'feature' and 'count' columns")
    readme = assets / "classifier" / "README.md"
    if readme.is_file():
        b.classifier_readme = readme.read_text(encoding="utf-8", errors="replace")
        if (assets / "classifier" / "metrics.csv").is_file():
            b.classifier_metrics = _read_csv_tolerant(assets / "classifier" / "metrics.csv", b.problems)
    aug = assets / "augmentation" / "results.csv"
    if aug.is_file():
        b.augmentation = _read_csv_tolerant(aug, b.problems)
    return b


# ===================================================================================== misc
def new_session_id() -> str:
    """Random id of a browser session (stored with verdicts and quiz answers)."""
    return secrets.token_hex(8)


class Stopwatch:
    """``with Stopwatch() as t: ...; t.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0


def training_curves(df: pd.DataFrame, prompt: Optional[str] = None) -> pd.DataFrame:
    """Metric columns of a training-metrics table per step: one prompt's rows, or the mean over prompts.

    Non-numeric columns are dropped; rows are sorted by ``step``.
    """
    if "step" not in df.columns:
        raise GalaxySDDataError(f"training metrics need a 'step' column (columns: {list(df.columns)[:10]})")
    sel = df
    pcol = "base_prompt" if "base_prompt" in df.columns else ("prompt" if "prompt" in df.columns else None)
    if prompt is not None and pcol is not None:
        sel = df[df[pcol] == prompt]
    num = sel.select_dtypes("number")
    if "step" not in num.columns:
        num = num.assign(step=pd.to_numeric(sel["step"], errors="coerce"))
    return num.groupby("step", as_index=False).mean(numeric_only=True).sort_values("step")


def upset_data(combinations: pd.DataFrame, top: int = 15) -> Tuple[pd.DataFrame, List[str]]:
    """Top feature combinations and the features they use, for an UpSet-style plot.

    Returns
    -------
    combos : pandas.DataFrame
        ``combination, count, members`` (tuple of features), most frequent first.
    features : list of str
        Features appearing in those combinations, most frequent (by the combinations' counts) first.
    """
    from galaxysd_core.schema.morphology_stats import COMBINATION_SEP, NO_FEATURE

    if combinations is None or len(combinations) == 0 or not {"combination", "count"} <= set(combinations.columns):
        return pd.DataFrame(columns=["combination", "count", "members"]), []
    c = combinations.sort_values("count", ascending=False, kind="stable").head(int(top)).copy()
    c["members"] = [tuple() if str(x) == NO_FEATURE else tuple(str(x).split(COMBINATION_SEP))
                    for x in c["combination"]]
    weight: Dict[str, float] = {}
    for members, count in zip(c["members"], c["count"]):
        for f in members:
            weight[f] = weight.get(f, 0.0) + float(count)
    feats = sorted(weight, key=lambda f: -weight[f])
    return c[["combination", "count", "members"]].reset_index(drop=True), feats
