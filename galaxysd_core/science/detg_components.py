"""The classifier's part of a D-ETG score: early-type gate and predicted dust-lane votes.

A dusty early-type galaxy is a dust lane (the detector) *in an early type*. The early type comes
from the shipped morphology classifier v2 (``assets/classifier``), which is trained on the GZ2
vote fractions (:mod:`galaxysd_core.models.vote_heads`). From one forward pass per image this
module reads

``p_smooth``
    probability of a smooth majority (t01; the root question, so no gate): ``P(f_smooth >= 0.5)``
    with ``f_smooth`` the Beta marginal of the predicted vote distribution (equal to the
    classifier's ``smooth`` head);
``p_artifact``
    the same for "star or artifact";
``p_spiral``
    probability of a spiral majority where t04 is asked, ``E[f_features] x E[f_not_edgeon] x
    P(f_spiral >= 0.5)`` (t01, t02 and t04 of the predicted vote distribution);
``p_early``
    the early-type component of the D-ETG definition, ``(1 - p_spiral) x (1 - p_artifact)``: no
    spiral arms and not a star or artifact, so smooth galaxies, lenticulars and edge-on discs pass
    (:mod:`galaxysd_core.science.detg_definition`; never ``p_smooth`` alone);
``dust_vote_pred``
    the predicted share of all classifiers reporting a dust lane, ``E[f_dust | t08] x E[f_odd]``:
    the classifier has no dust-lane head (too few majority examples) but predicts the t08 vote
    fractions, dust lane included; this is the partial-vote truth of
    :func:`galaxysd_core.science.vote_truth.dust_lane_soft` as the classifier sees it, and a
    baseline detector that needs no synthetic data.

The D-ETG score of a catalog is ``p_dust (dust-lane ranker) x p_early``
(:func:`galaxysd_core.science.detg_definition.detg_score`). Images of any size are resized
to the classifier's input (64 px) inside it (bilinear with antialiasing), identically in the
held-out evaluation and in every scan engine. Classifiers without vote outputs (sigmoid heads)
give ``p_smooth`` / ``p_artifact`` / ``p_spiral`` from their heads (``p_spiral`` = the spiral head times
the features head, 0 without them) and NaN ``dust_vote_pred``.
"""
from __future__ import annotations

from typing import List

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.science.detg_definition import FEATURES_COLUMN, NOT_EDGEON_COLUMN, SPIRAL_COLUMN
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN, MAJORITY, ODD_YES_COLUMN, SMOOTH_COLUMN

__all__ = ["ARTIFACT_COLUMN", "COMPONENT_COLUMNS", "component_probabilities", "check_judge"]

#: Star-or-artifact answer.
ARTIFACT_COLUMN = "t01_smooth_or_features_a03_star_or_artifact"
#: Columns of :func:`component_probabilities`, in order.
COMPONENT_COLUMNS = ("p_smooth", "p_artifact", "p_spiral", "p_early", "dust_vote_pred")


def check_judge(judge) -> None:
    """Refuse a classifier that cannot give the early-type gate (no smooth output)."""
    if judge.is_vote_model:
        if SMOOTH_COLUMN not in judge.layout.columns:
            raise GalaxySDValueError("the classifier predicts no t01 smooth votes; use the shipped assets/classifier")
    elif judge.head_index(SMOOTH_COLUMN) is None:
        raise GalaxySDValueError("the classifier has no smooth head, so it cannot gate early types; use the "
                                 "shipped assets/classifier")


def _vote_components(judge, x) -> "torch.Tensor":  # noqa: F821
    import torch

    from galaxysd_core.models.vote_heads import beta_survival, concentrations, expected_fractions, totals

    lay = judge.layout
    alpha = concentrations(judge.vote_outputs(x), lay, judge.config.output)
    tot = totals(alpha, lay)
    cols = list(lay.columns)

    def majority(col: str) -> torch.Tensor:
        if col not in cols:
            return torch.zeros(len(x), dtype=alpha.dtype)
        i = cols.index(col)
        return beta_survival(alpha[:, i], tot[:, i] - alpha[:, i], torch.full_like(alpha[:, i], MAJORITY))

    p_smooth, p_art = majority(SMOOTH_COLUMN), majority(ARTIFACT_COLUMN)
    frac = expected_fractions(alpha, lay)

    def expected(col: str) -> torch.Tensor:
        return frac[:, cols.index(col)] if col in cols else torch.zeros(len(x), dtype=alpha.dtype)

    p_spiral = expected(FEATURES_COLUMN) * expected(NOT_EDGEON_COLUMN) * majority(SPIRAL_COLUMN)
    if DUST_LANE_COLUMN in cols and ODD_YES_COLUMN in cols:
        dust = expected(DUST_LANE_COLUMN) * expected(ODD_YES_COLUMN)
    else:
        dust = torch.full_like(p_smooth, float("nan"))
    return torch.stack([p_smooth, p_art, p_spiral, (1 - p_spiral) * (1 - p_art), dust], dim=1)


def _head_components(judge, x) -> "torch.Tensor":  # noqa: F821
    import torch

    p = torch.sigmoid(judge(x))
    k_art = judge.head_index(ARTIFACT_COLUMN)
    p_smooth = p[:, judge.head_index(SMOOTH_COLUMN)]
    p_art = p[:, k_art] if k_art is not None else torch.zeros_like(p_smooth)
    k_sp, k_feat = judge.head_index(SPIRAL_COLUMN), judge.head_index(FEATURES_COLUMN)
    p_spiral = p[:, k_sp] * p[:, k_feat] if k_sp is not None and k_feat is not None else torch.zeros_like(p_smooth)
    return torch.stack([p_smooth, p_art, p_spiral, (1 - p_spiral) * (1 - p_art),
                        torch.full_like(p_smooth, float("nan"))], dim=1)


def component_probabilities(judge, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(N, 5)`` float64 array of :data:`COMPONENT_COLUMNS` for uint8 ``(N, H, W, 3)`` images.

    Parameters
    ----------
    judge : MorphologyClassifier
        Classifier v2 (vote outputs) or any classifier with a smooth head.
    images : numpy.ndarray
        ``uint8 (N, H, W, 3)``, any size (resized inside the classifier).
    batch_size : int
        Images per forward pass.
    """
    import torch

    from galaxysd_core.models.classifier import images_to_tensor

    check_judge(judge)
    fn = _vote_components if judge.is_vote_model else _head_components
    was = judge.training
    judge.eval()
    parts: List[np.ndarray] = []
    try:
        with torch.inference_mode():
            for i in range(0, len(images), max(1, int(batch_size))):
                x = images_to_tensor(np.asarray(images[i:i + batch_size]))
                parts.append(fn(judge, x.to(next(judge.parameters()).device)).double().cpu().numpy())
    finally:
        judge.train(was)
    return np.concatenate(parts) if parts else np.zeros((0, len(COMPONENT_COLUMNS)))
