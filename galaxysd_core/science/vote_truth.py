"""Truth from Galaxy Zoo 2 votes: dust lanes and smooth majorities (the D-ETG truth: ``detg_definition``).

Every definition reads the ``<answer>_fraction`` columns a prepared cache of a vote source writes
(``cache/gz2_cutouts_128``: the debiased fractions of Hart et al. 2016, falling back to the weighted
fraction where the release leaves them empty; :mod:`galaxysd_core.data.cache`). Rows without votes
(Galaxy Zoo 1 classes, the GZ2 example images) get NaN: they are neither positives nor negatives.

Definitions
-----------
odd-feature majority (:func:`majority_labels` for a t08 answer, e.g. the dust lane)
    ``f_answer >= 0.5`` **and** ``p_odd >= 0.42``: a majority of the volunteers who were asked the
    odd-feature question (t08, asked after t06 "odd: yes") chose the answer, and t08 counts as
    reached at the Willett et al. (2013, MNRAS 435, 2835, Table 3) threshold ``p_odd >= 0.42``. The
    debiased t08 fractions are debiased answer by answer and need not sum to 1, so a galaxy can be
    a majority dust lane *and* a majority ring; this rule counts it (31 dust lanes, 103 mergers and
    551 rings in ``gz2_cutouts``, as its README), where the caption's argmax rule (the 0/1 columns
    of the cache) keeps only one answer per galaxy (24 dust lanes).
other answers (bar, edge-on, smooth, ...)
    the caption's majority-gated label (the cache's 0/1 column; :mod:`galaxysd_core.schema.captioning`),
    a branch that was not reached counting as 0 (an elliptical has no majority bar), as in the
    classifier card's truth.
dust lane, partial votes (:func:`dust_lane_soft`)
    ``f_dust x p_odd``: the share of *all* the galaxy's classifiers who reported a dust lane, in
    [0, 1]; a soft label for training (0.45-0.99 for the majority dust lanes, 0 for galaxies
    nobody flagged) and a looser truth (``>= 0.25``, :data:`PARTIAL_DUST_THRESHOLD`).
smooth majority (:func:`early_type_votes`)
    ``p_smooth >= 0.5`` (GZ2 t01 "smooth"; 7 of the 31 dust lanes). Not the early-type definition
    of the D-ETG search: lenticulars and edge-on discs are early types without a smooth majority
    (:mod:`galaxysd_core.science.detg_definition`, the one definition of a D-ETG).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.schema.captioning import WILLETT13_REACHED_THRESHOLDS

__all__ = ["DUST_LANE_COLUMN", "ODD_YES_COLUMN", "SMOOTH_COLUMN", "ODD_REACHED", "MAJORITY",
           "PARTIAL_DUST_THRESHOLD", "TRUTH_DEFINITIONS", "has_votes", "majority_labels", "dust_lane_labels",
           "dust_lane_soft", "early_type_votes"]

#: GZ2 answer columns the truths read.
DUST_LANE_COLUMN = "t08_odd_feature_a38_dust_lane"
ODD_YES_COLUMN = "t06_odd_a14_yes"
SMOOTH_COLUMN = "t01_smooth_or_features_a01_smooth"
#: p_odd at which t08 counts as reached (Willett et al. 2013 Table 3).
ODD_REACHED = float(WILLETT13_REACHED_THRESHOLDS["t08_odd_feature"])
#: Fraction of a majority.
MAJORITY = 0.5
#: Partial-vote dust-lane truth: at least a quarter of all classifiers reported a dust lane.
PARTIAL_DUST_THRESHOLD = 0.25
_SUFFIX = "_fraction"

#: One line per truth (cards, provenance).
TRUTH_DEFINITIONS: Dict[str, str] = {
    "dust_lane": f"GZ2 votes: dust-lane fraction >= {MAJORITY} among t08 answers and p_odd >= {ODD_REACHED} "
                 f"(t08 reached, Willett et al. 2013)",
    "dust_lane_partial": f"GZ2 partial votes: f_dust x p_odd >= {PARTIAL_DUST_THRESHOLD} (a quarter of all "
                         "classifiers reported a dust lane)",
}


def _fraction(index: pd.DataFrame, column: str) -> np.ndarray:
    name = column + _SUFFIX
    if name not in index.columns:
        raise GalaxySDDataError(f"the index has no vote column {name!r}; prepare a vote source (e.g. gz2_cutouts) "
                                f"with `galaxysd data prepare` so its index carries <answer>_fraction columns")
    return index[name].to_numpy(dtype=float)


def has_votes(index: pd.DataFrame, columns: Sequence[str] = (SMOOTH_COLUMN, ODD_YES_COLUMN)) -> np.ndarray:
    """True for rows whose vote fractions of ``columns`` are all known (rows of a vote source)."""
    ok = np.ones(len(index), dtype=bool)
    for c in columns:
        if c + _SUFFIX not in index.columns:
            return np.zeros(len(index), dtype=bool)
        ok &= np.isfinite(index[c + _SUFFIX].to_numpy(dtype=float))
    return ok


def majority_labels(index: pd.DataFrame, column: str) -> np.ndarray:
    """1 / 0 / NaN majority label of a GZ2 answer per row (module docstring; NaN without votes).

    Raises
    ------
    GalaxySDDataError
        The index lacks the answer's columns.
    """
    votes = has_votes(index)
    out = np.full(len(index), np.nan)
    if column.startswith("t08_"):
        f, odd = _fraction(index, column), _fraction(index, ODD_YES_COLUMN)
        ok = votes & np.isfinite(f)
        out[ok] = ((f[ok] >= MAJORITY) & (odd[ok] >= ODD_REACHED)).astype(float)
        return out
    if column not in index.columns:
        raise GalaxySDDataError(f"the index has no label column {column!r}")
    lab = index[column].to_numpy(dtype=float)
    out[votes] = (lab[votes] == 1).astype(float)  # a branch not reached is "no majority": 0
    return out


def dust_lane_labels(index: pd.DataFrame) -> np.ndarray:
    """Majority dust lane: 1 / 0 / NaN per row (:func:`majority_labels` of the dust-lane answer)."""
    return majority_labels(index, DUST_LANE_COLUMN)


def dust_lane_soft(index: pd.DataFrame) -> np.ndarray:
    """Partial-vote dust lane ``f_dust x p_odd`` in [0, 1] per row (NaN without votes)."""
    f, odd = _fraction(index, DUST_LANE_COLUMN), _fraction(index, ODD_YES_COLUMN)
    out = np.clip(f * odd, 0.0, 1.0)
    out[~has_votes(index) | ~np.isfinite(f)] = np.nan
    return out


def early_type_votes(index: pd.DataFrame, threshold: float = MAJORITY) -> np.ndarray:
    """Smooth majority ``p_smooth >= threshold``: 1 / 0 / NaN per row."""
    if not 0.0 < threshold <= 1.0:
        raise GalaxySDValueError(f"early-type threshold must be in (0, 1], got {threshold}")
    p = _fraction(index, SMOOTH_COLUMN)
    out = np.full(len(index), np.nan)
    ok = has_votes(index)
    out[ok] = (p[ok] >= threshold).astype(float)
    return out
