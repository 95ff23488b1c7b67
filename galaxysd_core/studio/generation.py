"""Generation requests of the app: one press of Generate through the shared pipeline, and the gallery.

:func:`generate` validates a :class:`GenerationRequest` (request limits, prompt grammar) before
queueing, holds a slot of the generation gate (:data:`galaxysd_core.studio.limits.GATE`) while the
pipeline runs, and returns one :class:`GalleryItem` per image with everything needed to reproduce
and save it. The per-session gallery is a plain list, newest first (:func:`add_to_gallery`).
"""
from __future__ import annotations

import datetime as _dt
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.io.archives import zip_images
from galaxysd_core.io.provenance import provenance
from galaxysd_core.studio.controls import settings_from_png
from galaxysd_core.studio.limits import GALLERY_LIMIT, GATE, GenerationGate, check_request

#: ``callback(step, total)`` called after every denoising step.
def recommended_ui_settings(pipe: Any, max_steps: int) -> Dict[str, Any]:
    """The loaded model's recommended settings (``generation_defaults.json``, chosen from the
    measured front in its card) as the app's widget values.

    Parameters
    ----------
    pipe : GalaxySDPipeline or None
        The app's pipeline; its ``generation_defaults`` (None for a folder without the file).
    max_steps : int
        The app's step limit.

    Returns
    -------
    dict
        ``guidance`` (on the slider's 0.5 grid, at most 15), ``steps``, ``tree_negatives``; the
        pipeline's fall-back values when the folder has no recommendation.
    """
    from galaxysd_core.pipelines.generation_defaults import FALLBACK

    rec = getattr(pipe, "generation_defaults", None) or FALLBACK
    return {"guidance": min(15.0, round(float(rec.guidance_scale) * 2) / 2),
            "steps": min(int(max_steps), int(rec.num_inference_steps)),
            "tree_negatives": bool(rec.tree_negatives)}


#: ``callback(step, total)`` called after every denoising step.
StepCallback = Callable[[int, int], None]


@dataclass
class GalleryItem:
    """One generated image with everything needed to reproduce and save it.

    Attributes
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8.
    prompt : str
        Prompt of this image, with weights.
    seed : int
        Seed of this image.
    parameters : dict
        The pipeline's ``out.parameters`` with this image's negative prompt.
    created : str
        ``HH:MM:SS`` of creation (shown under the image).
    label : str
        Extra caption (e.g. a sweep's ``"dust lane 1.3 / seed 0"``).
    uid : str
        Random id (widget keys, file names).
    """

    image: np.ndarray
    prompt: str
    seed: int
    parameters: Dict[str, Any]
    created: str = field(default_factory=lambda: _dt.datetime.now().strftime("%H:%M:%S"))
    label: str = ""
    uid: str = field(default_factory=lambda: secrets.token_hex(6))

    @property
    def file_stem(self) -> str:
        """Download file name without extension: ``galaxysd_seed<seed>_<uid>``."""
        return f"galaxysd_seed{self.seed}_{self.uid}"


@dataclass
class GenerationRequest:
    """Settings of one press of Generate (validated by :meth:`check`).

    ``init_image`` (``(H, W, 3)`` uint8) starts from a real galaxy (img2img) with ``strength`` in
    (0, 1]; ``tree_negatives`` uses the automatic GZ2-tree negative prompt when
    ``negative_prompt`` is empty. ``guidance`` and ``tree_negatives`` None: the loaded model's
    recommended settings (``generation_defaults.json``, as chosen in its card).
    ``feature_guidance`` ``{phrase: scale}``: guidance per feature (absolute scales,
    :func:`galaxysd_core.studio.controls.feature_scales` of the sliders' strengths).
    """

    prompt: str
    negative_prompt: str = ""
    tree_negatives: Optional[bool] = None
    n_images: int = 4
    steps: int = 20
    guidance: Optional[float] = None
    scheduler: str = "ddim"
    seed: Optional[int] = 0
    init_image: Optional[np.ndarray] = None
    strength: float = 0.6
    feature_guidance: Dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`GalaxySDValueError` for a request over the limits (the pipeline checks the rest)."""
        check_request(self.n_images, self.steps)
        if self.init_image is None:
            return
        from galaxysd_core.pipelines.pipeline_galaxysd import img2img_steps  # imports torch: only for img2img

        if img2img_steps(self.steps, self.strength) < 1:
            raise GalaxySDValueError(f"strength {self.strength:g} with {self.steps} steps leaves no denoising "
                                     f"step; raise the strength or the steps")


def gallery_items(out, label: str = "") -> List[GalleryItem]:
    """One :class:`GalleryItem` per image of a pipeline output (``output_type="np"`` or PIL images).

    Each item records the negative prompt it was made with (automatic ones differ per prompt).
    """
    arrays = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8) for im in out.images]
    negs = list(getattr(out, "negative_prompts", None) or [out.parameters.get("negative_prompt") or ""] * len(arrays))
    return [GalleryItem(image=a, prompt=p, seed=int(s), parameters={**out.parameters, "negative_prompt": n},
                        label=label)
            for a, p, s, n in zip(arrays, out.prompts, out.seeds, negs)]


def generate(pipe, request: GenerationRequest, callback: Optional[StepCallback] = None,
             *, gate: Optional[GenerationGate] = None, timeout: Optional[float] = None) -> List[GalleryItem]:
    """Run one request through the shared pipeline, holding a generation slot.

    Parameters
    ----------
    pipe : GalaxySDPipeline
    request : GenerationRequest
    callback : callable, optional
        ``callback(step, total)`` after every denoising step (drives ``st.progress``).
    gate : GenerationGate, optional
        Default :data:`~galaxysd_core.studio.limits.GATE`.
    timeout : float, optional
        Queue timeout (default :data:`~galaxysd_core.studio.limits.QUEUE_TIMEOUT_S`).

    Raises
    ------
    GalaxySDValueError
        Invalid prompt or settings, or a request over the limits.
    ServerBusyError
        No slot: the queue is full, or the expected or actual wait is longer than the timeout (the
        message says when to try again).
    """
    request.check()
    pipe.parse(request.prompt)  # fail fast, before queueing
    with (gate or GATE).slot(timeout, work=int(request.n_images) * int(request.steps)):
        out = pipe(request.prompt, negative_prompt=request.negative_prompt or None,
                   num_images_per_prompt=int(request.n_images), seed=request.seed,
                   num_inference_steps=int(request.steps),
                   guidance_scale=None if request.guidance is None else float(request.guidance),
                   scheduler=request.scheduler, image=request.init_image, strength=float(request.strength),
                   output_type="np", callback=callback,
                   tree_negatives=None if request.tree_negatives is None else bool(request.tree_negatives),
                   feature_guidance=dict(request.feature_guidance) or None)
    return gallery_items(out)


def add_to_gallery(gallery: List[GalleryItem], items: Sequence[GalleryItem],
                   limit: int = GALLERY_LIMIT) -> List[GalleryItem]:
    """Gallery with ``items`` in front (newest first), at most ``limit`` long."""
    return (list(items) + list(gallery))[:limit]


def gallery_zip(items: Sequence[GalleryItem], include_fits: bool = True) -> bytes:
    """All gallery images as one zip (PNG with settings, FITS, ``manifest.json``)."""
    return zip_images(items, include_fits=include_fits)


def reuse_settings(item: GalleryItem, contrast: Optional[Mapping[str, float]] = None
                   ) -> Tuple[Dict[str, Any], List[str]]:
    """Control values that remake a gallery image ("Reuse"): its stored settings, one image.

    Same return as :func:`galaxysd_core.studio.controls.settings_from_png`.
    """
    info = provenance(item.prompt, item.seed, item.parameters)
    info["num_images_per_prompt"] = 1
    return settings_from_png(info, contrast)


def random_seed() -> int:
    """A fresh random seed in [0, 2**31)."""
    return secrets.randbelow(2**31)


#: Settings compared by :func:`settings_changes`, with their names.
CHANGE_FIELDS = {"feature_guidance": "feature guidance", "negative_prompt": "negative prompt",
                 "tree_negatives": "automatic negative prompt",
                 "steps": "steps", "guidance": "guidance", "scheduler": "sampler", "seed": "seed",
                 "n_images": "images", "strength": "strength"}


def request_settings(request: GenerationRequest) -> Dict[str, Any]:
    """The comparable settings of a request (no images): what :func:`settings_changes` diffs."""
    return {"prompt": request.prompt, "negative_prompt": request.negative_prompt,
            "tree_negatives": None if request.tree_negatives is None else bool(request.tree_negatives),
            "steps": int(request.steps), "guidance": None if request.guidance is None else float(request.guidance),
            "scheduler": request.scheduler, "seed": request.seed,
            "n_images": int(request.n_images),
            "strength": float(request.strength) if request.init_image is not None else None,
            "feature_guidance": {p: float(v) for p, v in sorted(dict(request.feature_guidance).items())}}


def settings_changes(old: Optional[Dict[str, Any]], new: Dict[str, Any]) -> List[str]:
    """What changed from the settings of the images shown (``old``) to the controls now (``new``).

    Features are compared one by one (``"dust lane 1 → 1.5"``, ``"+ merger"``, ``"− dust lane"``);
    the other settings by value. Empty when nothing changed or there is nothing to compare with.
    """
    from galaxysd_core.prompts.grammar import features_from_prompt

    if not old:
        return []
    out: List[str] = []
    try:
        fa, fb = features_from_prompt(old.get("prompt", "")), features_from_prompt(new.get("prompt", ""))
    except GalaxySDValueError:
        fa, fb = {}, {}
        if old.get("prompt") != new.get("prompt"):
            out.append("prompt text")
    for f in dict.fromkeys([*fa, *fb]):
        if f not in fb:
            out.append(f"− {f}")
        elif f not in fa:
            out.append(f"+ {f}" + (f" {fb[f]:g}" if fb[f] != 1.0 else ""))
        elif fa[f] != fb[f]:
            out.append(f"{f} {fa[f]:g} → {fb[f]:g}")
    for key, name in CHANGE_FIELDS.items():
        a, b = old.get(key), new.get(key)
        if key == "feature_guidance":
            a, b = a or {}, b or {}
        if a != b and not (key == "seed" and (a is None or b is None)):
            fmt = (lambda v: f"{v:g}" if isinstance(v, float) else ("on" if v is True else "off" if v is False
                   else (", ".join(f"{p} {x:g}" for p, x in v.items()) or "none") if isinstance(v, dict)
                   else (repr(v) if v not in (None, "") else "none")))
            out.append(f"{name} {fmt(a)} → {fmt(b)}")
    return out
