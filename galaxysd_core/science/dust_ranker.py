"""The dedicated dust-lane ranker: a 128 px CNN trained on GZ2 dust-lane vote counts, scored with flips.

The ranker answers "what share of all Galaxy Zoo 2 classifiers would report a dust lane in this
galaxy?". Its training target is the vote count itself (:func:`vote_count_targets`): ``k`` =
volunteers who answered "dust lane" at t08, ``n`` = every volunteer who classified the galaxy
(the t01 total), with the binomial likelihood of ``k`` out of ``n``
(:func:`galaxysd_core.science.binary_training.train_binary`, ``loss="binomial"``), as zoobot
trains on vote counts (Walmsley et al. 2022, MNRAS 509, 3966). Raw counts, not debiased fractions:
the likelihood is that of what volunteers did. The network is the one-head
:class:`~galaxysd_core.models.classifier.MorphologyClassifier` at 128 px (a lane is a few pixels
wide: the 64 px classifier v2 sees half of it).

At test time a score can be the mean over the 8 flips and quarter-turn rotations of the image
(:func:`dihedral_scores`): a galaxy has no preferred orientation on the sky, so the 8 views are
equally valid and averaging them removes orientation noise of the score.

Owns :data:`COUNT_COLUMN`, :data:`DEFAULT_SETTINGS`, :func:`vote_count_targets`,
:func:`train_ranker`, :func:`dihedral_scores` and :func:`ranker_scores`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science.binary_training import BinaryTrainSettings, predict_scores, train_binary
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN

__all__ = ["COUNT_COLUMN", "DEFAULT_SETTINGS", "vote_count_targets", "train_ranker", "dihedral_scores",
           "ranker_scores"]

#: Votes for "dust lane" at t08.
COUNT_COLUMN = DUST_LANE_COLUMN + "_count"
_T01 = ("t01_smooth_or_features_a01_smooth", "t01_smooth_or_features_a02_features_or_disk",
        "t01_smooth_or_features_a03_star_or_artifact")

#: The recipe measured by the cross-validation (``assets/detg_detector/README.md``): 128 px,
#: stride-4 stem (the cost of a 64 px input: the scan stays above 1,000 galaxies/s), half-width channels, balanced batches (half of every batch galaxies where >= 10 %
#: of the classifiers saw a lane), flips/rotations, binomial vote-count loss.
DEFAULT_SETTINGS = BinaryTrainSettings(steps=1200, batch_size=32, learning_rate=3e-3, image_size=128, stem_stride=4,
                                       channels=(16, 32, 64, 128, 128), balanced=True, balance_threshold=0.1,
                                       augment=True, loss="binomial")


def vote_count_targets(index: pd.DataFrame) -> Tuple[np.ndarray, np.ndarray]:
    """``(k, n)``: dust-lane votes and all t01 votes per row (float; NaN where unknown).

    Raises
    ------
    GalaxySDDataError
        The index has no vote-count columns (prepare a vote source: its index carries ``_count``).
    """
    need = [COUNT_COLUMN] + [c + "_count" for c in _T01]
    missing = [c for c in need if c not in index.columns]
    if missing:
        raise GalaxySDDataError(f"the index has no vote-count column {missing[0]!r}; prepare a vote source "
                                f"(e.g. gz2_cutouts) with `galaxysd data prepare` so its index carries _count columns")
    k = index[COUNT_COLUMN].to_numpy(dtype=float)
    n = sum(index[c + "_count"].to_numpy(dtype=float) for c in _T01)
    bad = ~np.isfinite(k) | ~np.isfinite(n) | (n <= 0)
    k, n = k.copy(), n.copy()
    k[bad], n[bad] = np.nan, np.nan
    return np.minimum(k, n), n


def train_ranker(images: np.ndarray, k: np.ndarray, n: np.ndarray, settings: Optional[BinaryTrainSettings] = None,
                 seed: int = 0, progress: bool = False):
    """Train one ranker on ``k`` of ``n`` votes per image; returns ``(model, history)``.

    Rows with unknown counts must be dropped first.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if not (np.isfinite(k).all() and np.isfinite(n).all() and (n > 0).all() and (k >= 0).all() and (k <= n).all()):
        raise GalaxySDValueError("vote counts must be finite with 0 <= k <= n and n > 0 (drop unvoted rows)")
    s = replace(settings or DEFAULT_SETTINGS, seed=int(seed))
    return train_binary(images, (k / n).astype(np.float32), s, column=DUST_LANE_COLUMN, progress=progress,
                        trials=n.astype(np.float32))


def dihedral_scores(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Mean score over the 8 flips / quarter-turn rotations of every image (test-time augmentation)."""
    images = np.asarray(images)
    total = np.zeros(len(images))
    for rot in range(4):
        r = np.rot90(images, rot, axes=(1, 2))
        for flip in (False, True):
            view = np.ascontiguousarray(r[:, :, ::-1] if flip else r)
            total += predict_scores(model, view, batch_size)
    return total / 8.0


def ranker_scores(model, images: np.ndarray, tta: bool, batch_size: int = 256) -> np.ndarray:
    """Scores of ``images`` with or without the 8-view test-time augmentation."""
    return dihedral_scores(model, images, batch_size) if tta else predict_scores(model, images, batch_size)
