"""A/B comparisons: the same seeds generated twice with exactly one difference, pair by pair.

What a slider does is hard to see from two separate generations with different noise; here both
sides use the same seeds (so the same starting noise for one model), and only one setting differs:

* ``feature``: a caption feature on (weight 1) / off;
* ``weight``: one feature at two weights;
* ``guidance``: two classifier-free guidance scales;
* ``model``: two model folders (the same seeds give the same noise only when both models have the
  same latent shape; a model of another image size draws other galaxies).

:func:`plan_ab` builds and checks the two sides, :func:`run_ab` generates them through
:func:`galaxysd_core.studio.generation.generate` (request limits, generation gate) and pairs the
images with their :func:`~galaxysd_core.studio.display.difference_image`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from galaxysd_core import config
from galaxysd_core._utils import resize_images
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.config import set_phrase_weight
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.schema.gz2 import SURVEY_PREFIX
from galaxysd_core.studio.controls import PHRASE_QUESTION, tree_conflicts
from galaxysd_core.studio.display import difference_image
from galaxysd_core.studio.generation import GalleryItem, GenerationRequest, StepCallback, generate
from galaxysd_core.studio.limits import MAX_REQUEST_IMAGES, GenerationGate

#: The kinds of difference, with their labels.
AB_KINDS: Dict[str, str] = {"feature": "a feature on / off", "weight": "two weights of one feature",
                            "guidance": "two guidance scales", "model": "two models"}


@dataclass
class ABSide:
    """One side of a comparison: its label, prompt, guidance and model folder (``""`` = the app's model)."""

    label: str
    prompt: str
    guidance: float
    model: str = ""


@dataclass
class ABPlan:
    """Both sides of a comparison and the settings they share (from :func:`plan_ab`).

    ``notes`` says what to keep in mind (e.g. a feature the tree excludes from the base prompt).
    """

    kind: str
    a: ABSide
    b: ABSide
    seeds: List[int]
    phrase: Optional[str] = None
    steps: int = 20
    scheduler: str = "ddim"
    negative_prompt: str = ""
    tree_negatives: bool = True
    notes: List[str] = field(default_factory=list)


def _without(prompt: str, phrase: str) -> str:
    tags = parse_prompt(prompt, strict=False).phrase_weights()
    tags.pop(phrase, None)
    parts = [t if w == 1.0 else f"{{{t}:{round(w, 3):g}}}" for t, w in tags.items()]
    return ", ".join(parts) or SURVEY_PREFIX


def _with(prompt: str, phrase: str, weight: float) -> str:
    """``prompt`` with ``phrase`` at ``weight``, the other answers of its question removed (they exclude it)."""
    stem = PHRASE_QUESTION[phrase]
    tags = parse_prompt(prompt, strict=False).phrase_weights()
    for t in [t for t in tags if PHRASE_QUESTION.get(t) == stem and t != phrase]:
        prompt = _without(prompt, t)
    return set_phrase_weight(prompt, phrase, weight)


def plan_ab(kind: str, prompt: str, seeds: Sequence[int], *, phrase: Optional[str] = None,
            weights: Sequence[float] = (1.0, 1.5), guidances: Sequence[float] = (3.0, 6.5),
            models: Sequence[str] = ("", ""), model_labels: Sequence[str] = ("A", "B"),
            guidance: float = 6.5, steps: int = 20, scheduler: str = "ddim", negative_prompt: str = "",
            tree_negatives: bool = True) -> ABPlan:
    """The two sides of an A/B comparison of ``prompt`` (see the module docstring for ``kind``).

    Raises
    ------
    GalaxySDValueError
        Unknown kind, a missing or unknown feature, equal sides (nothing would differ), no seeds
        or more than :data:`~galaxysd_core.studio.limits.MAX_REQUEST_IMAGES` per side.
    """
    if kind not in AB_KINDS:
        raise GalaxySDValueError(f"comparison kind must be one of {list(AB_KINDS)}, got {kind!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise GalaxySDValueError("a comparison needs at least one seed")
    if len(seeds) > MAX_REQUEST_IMAGES:
        raise GalaxySDValueError(f"at most {MAX_REQUEST_IMAGES} seeds per side; choose fewer pairs")
    common = dict(seeds=seeds, steps=int(steps), scheduler=scheduler, negative_prompt=negative_prompt,
                  tree_negatives=bool(tree_negatives))
    g = float(guidance)
    if kind in ("feature", "weight"):
        if phrase not in PHRASE_QUESTION:
            raise GalaxySDValueError(f"{phrase!r} is not a caption feature; pick one from the list")
        if kind == "feature":
            on, off = _with(prompt, phrase, 1.0), _without(prompt, phrase)
            a, b = ABSide(f"{phrase} on", on, g), ABSide(f"{phrase} off", off, g)
        else:
            wa, wb = (round(float(w), 2) for w in weights)
            if wa == wb:
                raise GalaxySDValueError(f"both weights are {wa:g}; choose two different weights")
            a, b = (ABSide(f"{phrase} {w:g}", _with(prompt, phrase, w), g) for w in (wa, wb))
        notes = [f"side A: {c}" for c in tree_conflicts(list(parse_prompt(a.prompt, strict=False).phrase_weights()))]
        return ABPlan(kind, a, b, phrase=phrase, notes=notes, **common)
    if kind == "guidance":
        ga, gb = (round(float(x), 2) for x in guidances)
        if ga == gb:
            raise GalaxySDValueError(f"both guidance scales are {ga:g}; choose two different values")
        return ABPlan(kind, ABSide(f"guidance {ga:g}", prompt, ga), ABSide(f"guidance {gb:g}", prompt, gb), **common)
    ma, mb = (str(m) for m in models)
    if ma == mb:
        raise GalaxySDValueError("both sides use the same model; choose two different model folders")
    la, lb = model_labels
    return ABPlan(kind, ABSide(str(la), prompt, g, ma), ABSide(str(lb), prompt, g, mb), **common)


@dataclass
class ABPair:
    """One seed of a comparison: both images, their difference and the feature's probability on each."""

    seed: int
    a: GalleryItem
    b: GalleryItem
    diff: np.ndarray
    mean_diff: float
    prob_a: Optional[float] = None
    prob_b: Optional[float] = None


@dataclass
class ABResult:
    """Pairs of a comparison, in seed order, with the plan that made them."""

    plan: ABPlan
    pairs: List[ABPair]
    notes: List[str] = field(default_factory=list)

    @property
    def mean_diff(self) -> float:
        """Mean absolute difference over all pairs (0-255 scale)."""
        return float(np.mean([p.mean_diff for p in self.pairs])) if self.pairs else 0.0


def run_ab(pipe_a, pipe_b, plan: ABPlan, callback: Optional[StepCallback] = None, *,
           gate: Optional[GenerationGate] = None, timeout: Optional[float] = None,
           probability: Optional[Callable[[Sequence[np.ndarray]], Optional[np.ndarray]]] = None) -> ABResult:
    """Generate both sides of ``plan`` with the same seeds and pair the images.

    Parameters
    ----------
    pipe_a, pipe_b : GalaxySDPipeline
        Pipelines of sides A and B (the same object unless ``plan.kind == "model"``).
    plan : ABPlan
    callback : callable, optional
        ``callback(step, total)`` over both generations (``total`` = twice the steps).
    probability : callable, optional
        ``probability(images) -> (N,) or None``, e.g. the classifier's probability of
        ``plan.phrase`` (:func:`galaxysd_core.studio.feature_probs.feature_probability`).

    Raises
    ------
    GalaxySDValueError
        Invalid prompts or settings.
    ServerBusyError
        No generation slot within the timeout.
    """
    sides = []
    for i, (pipe, side) in enumerate(((pipe_a, plan.a), (pipe_b, plan.b))):
        def step(s: int, t: int, offset=i) -> None:
            if callback is not None:
                callback(offset * t + s, 2 * t)

        request = GenerationRequest(prompt=side.prompt, negative_prompt=plan.negative_prompt,
                                    tree_negatives=plan.tree_negatives, n_images=len(plan.seeds),
                                    steps=plan.steps, guidance=side.guidance, scheduler=plan.scheduler,
                                    seed=plan.seeds[0])
        items = generate(pipe, request, callback=step, gate=gate, timeout=timeout)
        for it in items:
            it.label = side.label
        sides.append(items)
    notes: List[str] = []
    a_imgs = [it.image for it in sides[0]]
    b_imgs = [it.image for it in sides[1]]
    size = max(a_imgs[0].shape[0], b_imgs[0].shape[0])
    if a_imgs[0].shape != b_imgs[0].shape:
        notes.append(f"the two models draw {a_imgs[0].shape[0]} px and {b_imgs[0].shape[0]} px images; the smaller "
                     f"ones are resized to {size} px for the difference images")
    a_cmp = resize_images(np.stack(a_imgs), size) if a_imgs[0].shape[0] != size else np.stack(a_imgs)
    b_cmp = resize_images(np.stack(b_imgs), size) if b_imgs[0].shape[0] != size else np.stack(b_imgs)
    vmax = max(8.0, float(np.abs(a_cmp.astype(np.float32) - b_cmp.astype(np.float32)).mean(axis=-1).max()))
    pa = probability(a_imgs) if probability is not None else None
    pb = probability(b_imgs) if probability is not None else None
    pairs = []
    for k, (ia, ib) in enumerate(zip(sides[0], sides[1])):
        diff, mean = difference_image(a_cmp[k], b_cmp[k], vmax=vmax)
        pairs.append(ABPair(seed=ia.seed, a=ia, b=ib, diff=diff, mean_diff=mean,
                            prob_a=None if pa is None else float(pa[k]), prob_b=None if pb is None else float(pb[k])))
    return ABResult(plan=plan, pairs=pairs, notes=notes)


def model_choices(configured: os.PathLike, assets: Optional[os.PathLike] = None) -> List[Path]:
    """Model folders a comparison may use: the configured one, its sibling folders and those in ``assets``.

    Only folders with a ``model_index.json`` and complete weights
    (:func:`galaxysd_core.studio.model_status.model_status`) are listed, the configured one first;
    all are folders the operator placed, none is typed by a visitor.
    """
    from galaxysd_core.studio.model_status import model_status

    first = Path(configured)
    places = [first.parent, Path(assets) if assets is not None else config.ASSETS_DIR]
    found: List[Path] = [first] if model_status(first).ok else []
    seen = {first.resolve()} if found else set()
    for place in places:
        if not place.is_dir():
            continue
        for folder in sorted(p for p in place.iterdir() if p.is_dir()):
            if (folder / "model_index.json").is_file() and folder.resolve() not in seen and model_status(folder).ok:
                seen.add(folder.resolve())
                found.append(folder)
    return found
