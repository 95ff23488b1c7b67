"""Does each feature move the image the way it says? Paired-seed on/off tests and the dust-lane
extrapolation sweep, judged by the morphology classifier.

For every feature a pair of prompts differing only in that feature (``on`` / ``off``) is sampled
with the *same* seeds (so the initial noise is paired), and the classifier's probability of the
feature's head is compared: ``delta = mean p(feature | on) - mean p(feature | off)``. The goal of
the GalaxySD-mini v2 issue is ``delta >= 0.3`` for the features of :data:`FEATURE_PAIRS` with
``goal=True`` (at least 64 images per side).

The dust-lane sweep is the extrapolation GalaxySD is about (Ma, Sun et al. 2025, Sec. 2.3 and
4.3): ``sdss, smooth, in-between round galaxy, {dust lane:w}`` for ``w`` in :data:`DUST_WEIGHTS`
(``w = 0`` is the prompt without the tag). The classifier has no dust-lane head (fewer than 30
majority examples in its training data), so p(dust lane) is read from its vote outputs: the
majority-gated probability of the t08 dust-lane answer
(:func:`galaxysd_core.models.vote_heads.head_probabilities`, the same rule as its heads), and
the predicted fraction of volunteers marking a dust lane. Goal: p(dust lane) rises with ``w``
while p(smooth) stays >= 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.runner import generate

#: Required effect size (issue goal).
GOAL_DELTA = 0.3
#: Goal on p(smooth) along the dust-lane sweep.
GOAL_SMOOTH = 0.5
#: Base prompt of the dust-lane sweep (a smooth in-between galaxy, GalaxySD prompt K).
DUST_BASE = "sdss, smooth, in-between round galaxy"
#: Dust-lane weights of the sweep (0 = no dust-lane tag).
DUST_WEIGHTS = (0.0, 1.0, 1.3, 1.6, 2.0)
DUST_COLUMN = "t08_odd_feature_a38_dust_lane"


@dataclass(frozen=True)
class FeaturePair:
    """One on/off test: ``head`` is the classifier head (caption phrase) judging it."""

    feature: str
    on: str
    off: str
    head: str
    goal: bool = True


_DISK = "sdss, features or disk-shaped"
_SPIRAL = f"{_DISK}, spiral galaxy"
#: The on/off pairs; ``goal=False`` rows are reported without the 0.3 requirement.
FEATURE_PAIRS: Sequence[FeaturePair] = (
    FeaturePair("smooth vs features", "sdss, smooth", _DISK, "smooth"),
    FeaturePair("edge-on", f"{_DISK}, edge-on galaxy", _DISK, "edge-on galaxy"),
    FeaturePair("bar", f"{_DISK}, bar-shaped structure in the center of galaxy, spiral galaxy", _SPIRAL,
                "bar-shaped structure in the center of galaxy"),
    FeaturePair("spiral", _SPIRAL, _DISK, "spiral galaxy"),
    FeaturePair("cigar vs round", "sdss, smooth, cigar shaped galaxy", "sdss, smooth, completely round galaxy",
                "cigar shaped galaxy"),
    FeaturePair("bulge prominence (obvious vs just noticeable)", f"{_SPIRAL}, obvious bulge prominence",
                f"{_SPIRAL}, just noticeable bulge prominence", "obvious bulge prominence"),
    FeaturePair("ring", f"{_SPIRAL}, ring galaxy", _SPIRAL, "ring galaxy"),
    FeaturePair("merger", f"{DUST_BASE}, merger", DUST_BASE, "merger"),
    # further features with >= 30 training captions and a classifier head (no goal set by the issue)
    FeaturePair("round vs in-between", "sdss, smooth, completely round galaxy", DUST_BASE,
                "completely round galaxy", goal=False),
    FeaturePair("star or artifact", "sdss, star or artifact", "sdss, smooth", "star or artifact", goal=False),
    FeaturePair("edge-on bulge (rounded vs none)", f"{_DISK}, edge-on galaxy, with rounded edge-on bulge",
                f"{_DISK}, edge-on galaxy, with no edge-on bulge", "with rounded edge-on bulge", goal=False),
    FeaturePair("irregular", f"{_DISK}, irregular galaxy", _DISK, "irregular galaxy", goal=False),
    FeaturePair("no bulge (vs just noticeable)", f"{_SPIRAL}, no bulge prominence",
                f"{_SPIRAL}, just noticeable bulge prominence", "no bulge prominence", goal=False),
)


def _generation_kwargs(config) -> Dict:
    return dict(steps=config.steps, guidance=config.guidance, scheduler=config.scheduler,
                tree_negatives=config.tree_negatives)


def feature_effects(pipe, classifier, config, pairs: Sequence[FeaturePair] = FEATURE_PAIRS,
                    progress=None) -> pd.DataFrame:
    """The on/off table (module docstring), one row per pair the classifier can judge.

    Parameters
    ----------
    pipe : GalaxySDPipeline
    classifier : MorphologyClassifier
    config : galaxysd_core.evaluation.config.EvaluationConfig
        ``n`` images per side with seeds ``seed .. seed+n-1`` on both sides; steps, guidance,
        scheduler and negative-prompt policy of the run.
    progress : callable, optional
        ``progress(done, total)`` after each pair.

    Returns
    -------
    pandas.DataFrame
        ``feature, on, off, head, p_on, p_off, delta, goal, passes, n``; pairs whose head the
        classifier lacks are left out.
    """
    if config.n < 2:
        raise GalaxySDValueError(f"feature effects need n >= 2 images per side, got {config.n}")
    rows: List[Dict] = []
    usable = [p for p in pairs if classifier.head_index(p.head) is not None]
    for i, pair in enumerate(usable):
        k = classifier.head_index(pair.head)
        p = {}
        for side in ("on", "off"):
            images = generate(pipe, getattr(pair, side), config.n, config.seed, **_generation_kwargs(config))
            p[side] = float(classifier.predict_proba(images).numpy()[:, k].mean())
        delta = p["on"] - p["off"]
        rows.append(dict(feature=pair.feature, on=pair.on, off=pair.off, head=pair.head, p_on=p["on"],
                         p_off=p["off"], delta=delta, goal=pair.goal, passes=bool(delta >= GOAL_DELTA), n=config.n))
        if progress is not None:
            progress(i + 1, len(usable))
    return pd.DataFrame(rows)


def dust_lane_probabilities(classifier, images) -> Dict[str, np.ndarray]:
    """Per image: ``p_dust`` (majority-gated probability of the dust-lane answer), ``dust_fraction``
    (predicted fraction of volunteers marking a dust lane, ``f(dust | odd) f(odd)``) and
    ``p_smooth``.

    Raises
    ------
    GalaxySDValueError
        For a classifier that does not predict GZ2 votes including the t08 dust-lane answer.
    """
    import torch

    from galaxysd_core.models.classifier import images_to_tensor
    from galaxysd_core.models.vote_heads import VoteLayout, concentrations, expected_fractions, head_probabilities

    if not classifier.is_vote_model or DUST_COLUMN not in classifier.config.vote_columns:
        raise GalaxySDValueError("the dust-lane sweep needs a classifier trained on GZ2 votes that include t08 "
                                 "(e.g. the shipped assets/classifier)")
    layout = VoteLayout.for_heads(list(classifier.feature_columns) + [DUST_COLUMN])
    if tuple(layout.columns) != tuple(classifier.layout.columns):
        raise GalaxySDValueError("the classifier's vote outputs do not cover the dust-lane question's gates")
    was = classifier.training
    classifier.eval()
    try:
        with torch.no_grad():
            alpha = torch.cat([concentrations(classifier.vote_outputs(images_to_tensor(images[i:i + 256])),
                                              classifier.layout, classifier.config.output)
                               for i in range(0, len(images), 256)])
            heads = head_probabilities(alpha, layout).numpy()
            frac = expected_fractions(alpha, classifier.layout).numpy()
    finally:
        classifier.train(was)
    cols = list(layout.columns)
    smooth = classifier.head_index("smooth")
    return {"p_dust": heads[:, -1],
            "dust_fraction": frac[:, cols.index(DUST_COLUMN)] * frac[:, cols.index("t06_odd_a14_yes")],
            "p_smooth": heads[:, smooth] if smooth is not None else np.full(len(images), np.nan)}


def dust_sweep_prompt(weight: float, base: str = DUST_BASE) -> str:
    """The sweep prompt at one weight (the base alone at 0, the plain tag at 1)."""
    if weight == 0:
        return base
    return f"{base}, dust lane" if weight == 1 else f"{base}, {{dust lane:{weight:g}}}"


def dust_lane_sweep(pipe, classifier, config, weights: Sequence[float] = DUST_WEIGHTS,
                    base: str = DUST_BASE) -> pd.DataFrame:
    """The dust-lane extrapolation sweep (module docstring): one row per weight with
    ``weight, prompt, p_dust, dust_fraction, p_smooth, n`` (means over ``config.n`` paired seeds),
    and ``rises`` (p_dust above the previous weight's) and ``smooth_ok`` (p_smooth >= 0.5)."""
    rows: List[Dict] = []
    for w in weights:
        prompt = dust_sweep_prompt(float(w), base)
        images = generate(pipe, prompt, config.n, config.seed, **_generation_kwargs(config))
        p = dust_lane_probabilities(classifier, images)
        rows.append(dict(weight=float(w), prompt=prompt, p_dust=float(p["p_dust"].mean()),
                         dust_fraction=float(p["dust_fraction"].mean()), p_smooth=float(np.nanmean(p["p_smooth"])),
                         n=config.n))
    df = pd.DataFrame(rows)
    df["rises"] = df["p_dust"].diff().fillna(0.0) > 0
    df.loc[0, "rises"] = True
    df["smooth_ok"] = df["p_smooth"] >= GOAL_SMOOTH
    return df


def summarize_dust_sweep(df: pd.DataFrame) -> Optional[str]:
    """One sentence on whether the sweep meets its goal (None for an empty table)."""
    if df.empty:
        return None
    rises = bool(df["rises"].all())
    ok = bool(df["smooth_ok"].all())
    verdict = "meets" if rises and ok else "misses"
    return (f"The dust-lane sweep {verdict} its goal: p(dust lane) "
            f"{' -> '.join(f'{v:.3f}' for v in df['p_dust'])} for weights "
            f"{', '.join(f'{w:g}' for w in df['weight'])} ({'rising' if rises else 'not rising at every step'}); "
            f"p(smooth) {df['p_smooth'].min():.2f}-{df['p_smooth'].max():.2f} "
            f"({'>= 0.5 throughout' if ok else 'below 0.5 somewhere'}).")
