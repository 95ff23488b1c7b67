"""Prompt-image consistency: does the classifier see the features a prompt asked for?

For every image and every *prompted feature* the morphology classifier has a head for, the
feature counts as present when the head's probability is at least ``threshold`` (0.5). The
per-image score is the share of its prompted features that are present; prompt and overall
scores average the per-image scores (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 3.2, report
0.895 for real SDSS images with their captions, a reference level for generated images, see
:data:`PAPER_REAL_CONSISTENCY`).

Prompted features are the comma-separated tags of the prompt
(:meth:`galaxysd_core.prompts.grammar.ParsedPrompt.phrase_weights`) with a weight above
``min_weight`` (default 0: a tag weighted 0 is switched off). Every head checks the prompts that
name its feature (a "bar" prompt by the bar head, a "dust lane" prompt by the dust-lane head, ...);
prompted features without a head are not checked and are listed in
:attr:`ConsistencyResult.unchecked` (the survey prefix is not a feature). An image whose prompt has
no checkable feature gets NaN and is left out of the averages. :func:`per_feature_table` gives one
row per feature: checked ones with their share seen, unchecked ones marked as such.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.schema.gz2 import SURVEY_PREFIX

#: Consistency of real images with their own captions in the GalaxySD paper (Ma, Sun et al. 2025).
PAPER_REAL_CONSISTENCY = 0.895
#: Probability at which a feature counts as seen.
DEFAULT_THRESHOLD = 0.5


def prompted_features(prompt: str, head_phrases: Sequence[str], min_weight: float = 0.0,
                      strict: bool = False) -> Dict[str, float]:
    """``{phrase: weight}`` of the tags of ``prompt`` that have a classifier head.

    Parameters
    ----------
    prompt : str
        Prompt, possibly weighted (``"sdss, spiral galaxy, {dust lane:1.3}"``).
    head_phrases : sequence of str
        Caption phrases the classifier has heads for.
    min_weight : float
        Tags with weight <= ``min_weight`` are not counted as prompted.
    strict : bool
        Passed to :func:`~galaxysd_core.prompts.grammar.parse_prompt` (vocabulary check).
    """
    heads = set(head_phrases)
    weights = parse_prompt(prompt, strict=strict).phrase_weights()
    return {tag: w for tag, w in weights.items() if tag in heads and w > min_weight}


@dataclass
class ConsistencyResult:
    """Consistency scores at image, prompt, feature and overall level.

    Attributes
    ----------
    overall : float
        Mean per-image score over images with at least one checkable feature (NaN if none).
    per_image : numpy.ndarray
        Share of prompted features seen, per image (NaN where nothing was checkable).
    per_prompt : dict
        ``{prompt: mean per-image score}``.
    per_feature : dict
        ``{phrase: share of images prompting it in which it was seen}``.
    n_checked : int
        Images with at least one checkable feature.
    feature_counts : dict
        ``{phrase: images prompting it}`` for checked features.
    unchecked : dict
        ``{phrase: images prompting it}`` for prompted features without a classifier head.
    """

    overall: float
    per_image: np.ndarray
    per_prompt: Dict[str, float]
    per_feature: Dict[str, float]
    n_checked: int
    threshold: float = DEFAULT_THRESHOLD
    feature_counts: Dict[str, int] = field(default_factory=dict)
    unchecked: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v
        return {"consistency": clean(self.overall), "n_checked": self.n_checked, "threshold": self.threshold,
                "per_prompt": {k: clean(v) for k, v in self.per_prompt.items()},
                "per_feature": {k: clean(v) for k, v in self.per_feature.items()},
                "feature_counts": dict(self.feature_counts), "unchecked": dict(self.unchecked)}


def consistency_from_probs(probs, head_phrases: Sequence[str], prompts: Sequence[str],
                           threshold: float = DEFAULT_THRESHOLD, min_weight: float = 0.0,
                           strict: bool = False) -> ConsistencyResult:
    """Consistency from precomputed head probabilities ``(N, K)`` and one prompt per image."""
    p = np.asarray(probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs, dtype=float)
    prompts = list(prompts)
    if p.ndim != 2 or p.shape[1] != len(head_phrases):
        raise GalaxySDValueError(f"probabilities {p.shape} do not match {len(head_phrases)} heads")
    if len(prompts) != len(p):
        raise GalaxySDValueError(f"{len(prompts)} prompts for {len(p)} images; give one prompt per image")
    col = {ph: k for k, ph in enumerate(head_phrases)}
    cache: Dict[str, Dict[str, float]] = {}
    missing: Dict[str, List[str]] = {}
    per_image = np.full(len(p), np.nan)
    hits: Dict[str, List[bool]] = {}
    unchecked: Dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        if prompt not in cache:
            cache[prompt] = prompted_features(prompt, head_phrases, min_weight, strict)
            missing[prompt] = [t for t, w in parse_prompt(prompt, strict=strict).phrase_weights().items()
                               if w > min_weight and t not in col and t != SURVEY_PREFIX]
        for t in missing[prompt]:
            unchecked[t] = unchecked.get(t, 0) + 1
        feats = cache[prompt]
        if not feats:
            continue
        seen = [bool(p[i, col[f]] >= threshold) for f in feats]
        per_image[i] = float(np.mean(seen))
        for f, s in zip(feats, seen):
            hits.setdefault(f, []).append(s)
    per_prompt: Dict[str, float] = {}
    for prompt in dict.fromkeys(prompts):
        vals = per_image[[i for i, q in enumerate(prompts) if q == prompt]]
        vals = vals[np.isfinite(vals)]
        per_prompt[prompt] = float(vals.mean()) if len(vals) else math.nan
    finite = per_image[np.isfinite(per_image)]
    return ConsistencyResult(
        overall=float(finite.mean()) if len(finite) else math.nan, per_image=per_image, per_prompt=per_prompt,
        per_feature={f: float(np.mean(v)) for f, v in hits.items()}, n_checked=int(len(finite)),
        threshold=float(threshold), feature_counts={f: len(v) for f, v in hits.items()}, unchecked=unchecked)


def per_feature_table(result: ConsistencyResult, head_phrases: Sequence[str] = ()):
    """One row per feature: ``feature, has_head, n_images, seen`` (share of its images in which the
    head saw it; NaN for unchecked features and for heads nobody prompted).

    Rows: every head (in head order, ``n_images`` 0 when no prompt named it), then the prompted
    features without a head (``has_head`` False: unchecked).
    """
    import pandas as pd

    rows = [{"feature": h, "has_head": True, "n_images": int(result.feature_counts.get(h, 0)),
             "seen": result.per_feature.get(h, math.nan)} for h in head_phrases]
    known = set(head_phrases)
    rows += [{"feature": f, "has_head": f in result.per_feature, "n_images": n,
              "seen": result.per_feature.get(f, math.nan)}
             for f, n in result.feature_counts.items() if f not in known]
    rows += [{"feature": f, "has_head": False, "n_images": n, "seen": math.nan} for f, n in result.unchecked.items()]
    return pd.DataFrame(rows, columns=["feature", "has_head", "n_images", "seen"])


def prompt_consistency(classifier, images, prompts: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                       min_weight: float = 0.0, batch_size: int = 256, strict: bool = False) -> ConsistencyResult:
    """Consistency of images with the prompts that generated them.

    Parameters
    ----------
    classifier : MorphologyClassifier
    images : array_like
        ``uint8 (N, H, W, 3)`` or float ``(N, 3, H, W)`` in [0, 1].
    prompts : str or sequence of str
        One prompt per image, or one prompt for all.
    threshold : float
        Probability at which a feature counts as seen.
    """
    if isinstance(prompts, str):
        prompts = [prompts] * len(images)
    probs = classifier.predict_proba(images, batch_size=batch_size)
    return consistency_from_probs(probs, classifier.feature_phrases, prompts, threshold, min_weight, strict)


def consistency_on_real(classifier, images, captions: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                        batch_size: int = 256) -> ConsistencyResult:
    """Benchmark line: consistency of real images with their own captions.

    Compare with :data:`PAPER_REAL_CONSISTENCY` (0.895, GalaxySD paper) and with the score of
    generated images; use held-out images (``split_test_ids.csv`` of the classifier) so the
    classifier has not seen them.
    """
    return prompt_consistency(classifier, images, list(captions), threshold=threshold, batch_size=batch_size)
