"""Extrapolation sweeps: one feature's weight (or guidance strength) against seeds.

Two mechanisms (:data:`galaxysd_core.studio.controls.MECHANISMS`): ``"weight"`` sweeps the
``{phrase:w}`` embedding weight (GalaxySD Sec. 2.3) in a single pipeline call; ``"guidance"``
sweeps the strength of guidance per feature (:mod:`galaxysd_core.pipelines.feature_guidance`:
0 = the base prompt, 1 = the plain prompt, more extrapolates), one call per strength under one
generation slot.

The same seeds are used at every weight, so a row of the grid shows how one galaxy changes as
the feature is emphasised, and where the model stops following it (GalaxySD, Ma, Sun et al. 2025,
arXiv:2506.16233, Sec. 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.config import set_phrase_weight
from galaxysd_core.schema.gz2 import SURVEY_PREFIX
from galaxysd_core.studio.controls import PHRASE_QUESTION
from galaxysd_core.studio.generation import GalleryItem, StepCallback, gallery_items
from galaxysd_core.studio.limits import GATE, GenerationGate, check_request


def sweep_values(start: float, stop: float, n: int) -> List[float]:
    """``n`` weights evenly spaced from ``start`` to ``stop`` (rounded to 2 decimals)."""
    if n < 1:
        raise GalaxySDValueError("a sweep needs at least one value")
    if n == 1:
        return [round(float(start), 2)]
    return [round(float(v), 2) for v in np.linspace(float(start), float(stop), int(n))]


def sweep_seeds(first_seed: int, n: int) -> List[int]:
    """The ``n`` seeds of a sweep's rows: ``first_seed, first_seed + 1, ...``."""
    return [int(first_seed) + i for i in range(int(n))]


@dataclass
class SweepResult:
    """Images of an extrapolation sweep: ``grid[i][j]`` is seed ``seeds[i]`` at weight ``weights[j]``."""

    phrase: str
    weights: List[float]
    seeds: List[int]
    prompts: List[str]
    grid: List[List[GalleryItem]]
    #: What ``weights`` are: ``"weight"`` (embedding weight) or ``"guidance"`` (strength x guidance scale).
    mechanism: str = "weight"
    #: ``probs[i][j]``: the classifier's probability of :attr:`phrase` on ``grid[i][j]`` (None: no head).
    probs: Optional[List[List[float]]] = None

    def column_probabilities(self) -> Optional[List[float]]:
        """Mean probability of the swept feature per weight (column), or None without probabilities."""
        if self.probs is None:
            return None
        return [float(np.mean([row[j] for row in self.probs])) for j in range(len(self.weights))]


def add_probabilities(result: SweepResult, probability) -> SweepResult:
    """Fill :attr:`SweepResult.probs` with ``probability(images) -> (N,) or None`` over the whole grid
    (e.g. :func:`galaxysd_core.studio.feature_probs.feature_probability` of the swept feature)."""
    flat = [it.image for row in result.grid for it in row]
    p = probability(flat)
    if p is not None:
        n = len(result.weights)
        result.probs = [[float(p[i * n + j]) for j in range(n)] for i in range(len(result.seeds))]
    return result


def sweep_base_prompt(tags: dict, phrase: str) -> str:
    """Prompt text of ``{tag: weight}`` without the other answers of ``phrase``'s question (they exclude it)."""
    stem = PHRASE_QUESTION[phrase]
    kept = [t for t in tags if PHRASE_QUESTION.get(t) != stem or t == phrase]
    return ", ".join(t if tags[t] == 1.0 else f"{{{t}:{round(tags[t], 3):g}}}" for t in kept) or SURVEY_PREFIX


def run_sweep(pipe, base_prompt: str, phrase: str, weights: Sequence[float], seeds: Sequence[int], *,
              negative_prompt: str = "", tree_negatives: bool = True, steps: int = 20, guidance: float = 6.5,
              scheduler: str = "ddim", callback: Optional[StepCallback] = None,
              gate: Optional[GenerationGate] = None, timeout: Optional[float] = None,
              mechanism: str = "weight") -> SweepResult:
    """One feature's weight (or strength) x seeds grid (the same seeds at every value).

    The feature is added to the prompt when absent. The request limit counts
    ``len(weights) * len(seeds)`` images. ``mechanism="guidance"``: ``weights`` are strengths of
    guidance per feature (module docstring).

    Raises
    ------
    GalaxySDValueError
        For an empty sweep, a phrase that is not a caption feature, an invalid prompt or a
        request over the limits.
    ServerBusyError
        No generation slot within the timeout.
    """
    weights = [round(float(w), 2) for w in weights]
    seeds = [int(s) for s in seeds]
    if not weights or not seeds:
        raise GalaxySDValueError("a sweep needs at least one weight and one seed")
    if phrase not in PHRASE_QUESTION:
        raise GalaxySDValueError(f"{phrase!r} is not a caption feature; pick one from the list")
    if mechanism not in ("weight", "guidance"):
        raise GalaxySDValueError(f"mechanism must be 'weight' or 'guidance', got {mechanism!r}")
    check_request(len(weights) * len(seeds), int(steps))
    base = pipe.parse(base_prompt)  # validates the base prompt
    text = sweep_base_prompt(base.phrase_weights(), phrase)
    if mechanism == "guidance":
        return _guidance_sweep(pipe, set_phrase_weight(text, phrase, 1.0), phrase, weights, seeds,
                               negative_prompt=negative_prompt, tree_negatives=tree_negatives, steps=steps,
                               guidance=guidance, scheduler=scheduler, callback=callback, gate=gate, timeout=timeout)
    prompts = [set_phrase_weight(text, phrase, w) for w in weights]
    for p in prompts:
        pipe.parse(p)
    with (gate or GATE).slot(timeout):
        out = pipe(prompts, negative_prompt=negative_prompt or None, num_images_per_prompt=len(seeds),
                   seed=[s for _ in weights for s in seeds], num_inference_steps=int(steps),
                   guidance_scale=float(guidance), scheduler=scheduler, output_type="np", callback=callback,
                   tree_negatives=bool(tree_negatives))
    items = gallery_items(out)
    for it, (w, s) in zip(items, [(w, s) for w in weights for s in seeds]):
        it.label = f"{phrase} {w:g} / seed {s}"
    n = len(seeds)
    grid = [[items[j * n + i] for j in range(len(weights))] for i in range(n)]
    return SweepResult(phrase=phrase, weights=weights, seeds=seeds, prompts=prompts, grid=grid)


def _guidance_sweep(pipe, prompt: str, phrase: str, strengths: Sequence[float], seeds: Sequence[int], *,
                    negative_prompt: str, tree_negatives: bool, steps: int, guidance: float, scheduler: str,
                    callback: Optional[StepCallback], gate: Optional[GenerationGate],
                    timeout: Optional[float]) -> SweepResult:
    from galaxysd_core.studio.controls import feature_scales

    pipe.parse(prompt)
    fd = getattr(pipe, "feature_defaults", None)
    contrast = dict(fd.contrast) if fd is not None else {}  # the model's slider: contrast where chosen
    columns: List[List[GalleryItem]] = []
    n_cols = len(strengths)

    def step_cb(j: int) -> Optional[StepCallback]:
        if callback is None:
            return None
        return lambda s, t: callback(j * t + s, n_cols * t)

    with (gate or GATE).slot(timeout):
        for j, m in enumerate(strengths):
            out = pipe(prompt, negative_prompt=negative_prompt or None, num_images_per_prompt=len(seeds),
                       seed=list(seeds), num_inference_steps=int(steps), guidance_scale=float(guidance),
                       scheduler=scheduler, output_type="np", callback=step_cb(j),
                       tree_negatives=bool(tree_negatives),
                       feature_guidance=feature_scales({phrase: m}, guidance, contrast) or None)
            items = gallery_items(out)
            for it, s in zip(items, seeds):
                it.label = f"{phrase} strength {m:g} / seed {s}"
            columns.append(items)
    grid = [[columns[j][i] for j in range(n_cols)] for i in range(len(seeds))]
    return SweepResult(phrase=phrase, weights=list(strengths), seeds=list(seeds), prompts=[prompt] * n_cols,
                       grid=grid, mechanism="guidance")
