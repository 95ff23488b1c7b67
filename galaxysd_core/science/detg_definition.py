"""What a dusty early-type galaxy (D-ETG) is: the one definition of the truth and of the catalog score.

Definition (literature)
-----------------------
Kaviraj et al. (2012, MNRAS 423, 49, "Dust lanes in early-type galaxies") select D-ETGs by eye in
SDSS *gri* images: galaxies of early-type morphology (ellipticals and lenticulars, i.e. **no spiral
arms**) crossed by a dust lane; many are lenticulars (S0) seen close to edge-on. In Galaxy Zoo 2
(Willett et al. 2013, MNRAS 435, 2835) volunteers answer most of those "features or disk" (the
lane itself is a feature) and often "edge-on", almost never "spiral". A definition that asks for a
*smooth* majority therefore removes exactly the galaxies sought. Here:

truth from GZ2 votes (:func:`detg_truth`)
    dust lane: ``f_dust x p_odd >= 0.25`` (a quarter of *all* classifiers reported a dust lane;
    :data:`~galaxysd_core.science.vote_truth.PARTIAL_DUST_THRESHOLD`) **and** no spiral majority:
    not (t04 reached and ``f_spiral >= 0.5``), t04 "is there any sign of a spiral arm pattern?"
    counting as reached at the Willett et al. (2013) Table 3 thresholds ``p_features >= 0.430`` and
    ``p_not_edgeon >= 0.715``. Smooth galaxies, edge-on discs and discs without arms (S0) qualify;
    a face-on spiral with a lane does not.
catalog score (:func:`detg_score`)
    ``score = dust x p_early`` with ``dust`` the dust-lane ranker's output (the detector, or
    classifier v2's predicted dust-lane vote share) and
    ``p_early = (1 - p_spiral) x (1 - p_artifact)`` the "no spiral arms and not a star/artifact"
    component of classifier v2 (:mod:`galaxysd_core.science.detg_components`), where
    ``p_spiral = E[f_features] x E[f_not_edgeon] x P(f_spiral >= 0.5)`` is the probability of a
    spiral majority as the classifier's predicted vote distribution gives it (t01, t02, t04 heads).
    ``p_smooth`` stays a catalog column but is never the early-type gate.

Owns :data:`DETG_DEFINITION`, :data:`SCORE_DEFINITION`, :func:`spiral_majority`,
:func:`detg_truth`, :func:`detg_score` and :func:`truth_table`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.captioning import WILLETT13_REACHED_THRESHOLDS
from galaxysd_core.science.vote_truth import (MAJORITY, PARTIAL_DUST_THRESHOLD, _fraction, dust_lane_labels,
                                              dust_lane_soft, early_type_votes, has_votes)

__all__ = ["FEATURES_COLUMN", "NOT_EDGEON_COLUMN", "SPIRAL_COLUMN", "T04_FEATURES_REACHED", "T04_NOT_EDGEON_REACHED",
           "DETG_DEFINITION", "SCORE_DEFINITION", "REFERENCES", "spiral_majority", "detg_truth", "detg_score",
           "truth_table"]

FEATURES_COLUMN = "t01_smooth_or_features_a02_features_or_disk"
NOT_EDGEON_COLUMN = "t02_edgeon_a05_no"
SPIRAL_COLUMN = "t04_spiral_a08_spiral"
#: t04 is reached when p_features >= 0.430 (t02's gate) and p_not_edgeon >= 0.715 (Willett et al. 2013 Table 3).
T04_FEATURES_REACHED = float(WILLETT13_REACHED_THRESHOLDS["t02_edgeon"])
T04_NOT_EDGEON_REACHED = float(WILLETT13_REACHED_THRESHOLDS["t04_spiral"])

REFERENCES = ("Kaviraj S. et al. 2012, MNRAS 423, 49 (dust lanes in early-type galaxies: ellipticals and "
              "lenticulars, no spiral arms)",
              "Willett K. W. et al. 2013, MNRAS 435, 2835 (GZ2; Table 3 thresholds at which a question is reached)",
              "Hart R. E. et al. 2016, MNRAS 461, 3663 (debiased GZ2 vote fractions)")
#: One line of the truth (cards, provenance, README tables).
DETG_DEFINITION = (f"D-ETG: a dust lane (f_dust x p_odd >= {PARTIAL_DUST_THRESHOLD}) and no spiral majority "
                   f"(not: t04 reached [p_features >= {T04_FEATURES_REACHED}, p_not_edgeon >= "
                   f"{T04_NOT_EDGEON_REACHED}] and f_spiral >= {MAJORITY}); smooth, S0 and edge-on hosts qualify "
                   "(Kaviraj et al. 2012; Willett et al. 2013)")
#: How the catalog ``score`` is computed.
SCORE_DEFINITION = ("score = p_dust (dust-lane ranker) x p_early, p_early = (1 - p_spiral) x (1 - p_artifact) from "
                    "classifier v2: no spiral arms and not a star or artifact, p_spiral = E[f_features] "
                    "E[f_not_edgeon] P(f_spiral >= 0.5) (Kaviraj et al. 2012: ellipticals and lenticulars, edge-on "
                    "included); p_smooth is a column, not the gate")


def spiral_majority(index: pd.DataFrame) -> np.ndarray:
    """1 / 0 / NaN per row: t04 reached (Willett et al. 2013 thresholds) and ``f_spiral >= 0.5``.

    A galaxy never asked t04 (smooth, edge-on) has no spiral majority: 0.
    """
    feat, noedge, spiral = (_fraction(index, c) for c in (FEATURES_COLUMN, NOT_EDGEON_COLUMN, SPIRAL_COLUMN))
    ok = has_votes(index)
    reached = (np.nan_to_num(feat) >= T04_FEATURES_REACHED) & (np.nan_to_num(noedge) >= T04_NOT_EDGEON_REACHED)
    out = np.full(len(index), np.nan)
    out[ok] = (reached[ok] & (np.nan_to_num(spiral[ok]) >= MAJORITY)).astype(float)
    return out


def detg_truth(index: pd.DataFrame) -> np.ndarray:
    """D-ETG truth from the votes (module docstring): 1 / 0 / NaN per row (NaN without votes)."""
    soft = dust_lane_soft(index)
    spiral = spiral_majority(index)
    out = ((soft >= PARTIAL_DUST_THRESHOLD) & (spiral == 0)).astype(float)
    out[np.isnan(soft) | np.isnan(spiral)] = np.nan
    return out


def detg_score(dust, p_spiral, p_artifact) -> np.ndarray:
    """``dust x (1 - p_spiral) x (1 - p_artifact)``: the catalog score (module docstring).

    Parameters
    ----------
    dust : array_like
        Dust-lane ranker output in [0, 1] (probability or predicted vote share).
    p_spiral, p_artifact : array_like
        Classifier v2's spiral-majority and star/artifact probabilities, in [0, 1].
    """
    d, s, a = (np.asarray(v, dtype=float) for v in (dust, p_spiral, p_artifact))
    if not d.shape == s.shape == a.shape:
        raise GalaxySDValueError(f"dust {d.shape}, p_spiral {s.shape} and p_artifact {a.shape} must match")
    return d * (1.0 - s) * (1.0 - a)


def truth_table(index: pd.DataFrame) -> pd.DataFrame:
    """``id, has_votes, dust_lane, dust_lane_soft, dust_lane_partial, early_type, spiral_majority, detg`` per row.

    ``early_type`` is the smooth majority (a column for reference); ``detg`` is :func:`detg_truth`.
    """
    soft = dust_lane_soft(index)
    partial = np.where(np.isnan(soft), np.nan, (soft >= PARTIAL_DUST_THRESHOLD).astype(float))
    return pd.DataFrame({"id": index["id"].astype(str).to_numpy(), "has_votes": has_votes(index),
                         "dust_lane": dust_lane_labels(index), "dust_lane_soft": soft,
                         "dust_lane_partial": partial, "early_type": early_type_votes(index),
                         "spiral_majority": spiral_majority(index), "detg": detg_truth(index)})
