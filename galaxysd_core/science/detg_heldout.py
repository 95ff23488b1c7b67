"""The held-out test of a D-ETG search: does a detector find real D-ETGs it never saw?

Each real dust-lane example in turn is left out of training (leave-one-out), and its rank among
all galaxies the detector did not train on is compared between a detector trained *with* the
synthetic positives and one trained *without* them (the other real example only); a detector from
synthetic positives alone (every real example held out) is reported too. Ranks are repeated over
detector seeds.

Owns :func:`train_detector` (the one-head dust-lane detector of positives against negatives),
:func:`rank_among`, :func:`heldout_evaluation` and :func:`summarize_heldout`.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError
from galaxysd_core.science.binary_tasks import DUST_LANE_COLUMN
from galaxysd_core.science.binary_training import BinaryTrainSettings, predict_scores, train_binary
from galaxysd_core.science.detg_config import SearchConfig

__all__ = ["train_detector", "rank_among", "heldout_evaluation", "summarize_heldout"]

logger = logging.getLogger(__name__)


def train_detector(images_pos: np.ndarray, images_neg: np.ndarray, settings: BinaryTrainSettings):
    """A one-head dust-lane detector (:func:`~galaxysd_core.science.binary_training.train_binary`)
    of ``images_pos`` (label 1) against ``images_neg`` (label 0), both ``uint8 (N, H, W, 3)``.

    Returns the model (eval mode) and its training history.
    """
    x = np.concatenate([images_pos, images_neg])
    y = np.concatenate([np.ones(len(images_pos)), np.zeros(len(images_neg))])
    return train_binary(x, y, settings, column=DUST_LANE_COLUMN)


def rank_among(scores: np.ndarray, target: int, exclude: Optional[np.ndarray] = None) -> int:
    """1-based rank of ``scores[target]`` (descending) among the rows not in ``exclude``.

    Ties count against the target (rank = 1 + number of other eligible rows with a score >= its score),
    so a detector that gives everything the same score ranks the target last, not first.
    """
    scores = np.asarray(scores, dtype=float)
    ok = np.ones(len(scores), dtype=bool)
    if exclude is not None:
        ok[np.asarray(exclude, dtype=int)] = False
    ok[target] = True
    others = ok.copy()
    others[target] = False
    return int(1 + np.sum(scores[others] >= scores[target]))


def heldout_evaluation(images: np.ndarray, index: pd.DataFrame, synth: np.ndarray, config: SearchConfig, *,
                       p_smooth: Optional[np.ndarray] = None,
                       log: Callable[[str], None] = logger.debug) -> pd.DataFrame:
    """Leave-one-out ranks of the real dust-lane examples, with and without synthetic positives.

    For every detector seed and every real dust-lane example ``h``:

    * ``synthetic+real``: synthetic + the other real examples (h never in training);
    * ``real only``: the other real examples only (no synthetic data);

    and once per seed ``synthetic only`` (every real example held out). Scores come from the
    prepared cache arrays, pixel-identical to scanning the files (see ``tests/test_scan.py``).
    Ranks are among all galaxies *not used to train that detector* (its negatives excluded).
    With ``p_smooth`` (the shipped classifier's early-type probability per image: smooth and not a
    star or artifact) the rank by the catalog's D-ETG score ``p_dust_lane * p_smooth`` is reported
    too (``rank_detg``).

    Parameters
    ----------
    images : numpy.ndarray
        Real images ``uint8 (N, H, W, 3)``.
    index : pandas.DataFrame
        Their index with the ``is_dust_lane`` and ``is_etg`` columns of
        :func:`galaxysd_core.science.detg_search.real_pool`.
    synth : numpy.ndarray
        Synthetic D-ETGs, same size as ``images``.
    config : SearchConfig
        Uses ``heldout_seeds``, ``n_negatives`` and ``detector``.
    p_smooth : numpy.ndarray, optional
        Early-type probability per real image.
    log : callable
        Progress messages (one per rank).

    Returns
    -------
    pandas.DataFrame
        ``seed, detector, heldout_id, rank, n_ranked, score, percentile, [rank_detg],
        train_pos_real, train_pos_synthetic, train_neg``.
    """
    dust_idx = np.flatnonzero(index["is_dust_lane"].to_numpy())
    etg_idx = np.flatnonzero(index["is_etg"].to_numpy())
    if len(dust_idx) == 0:
        raise GalaxySDDataError("no labelled dust-lane example in the caches; nothing to hold out")
    ids = index["id"].astype(str).to_numpy()
    rows: List[Dict[str, Any]] = []
    for seed in config.heldout_seeds:
        rng = np.random.default_rng([seed, 31337])
        neg = rng.choice(etg_idx, size=min(config.n_negatives, len(etg_idx)), replace=False)
        st = replace(config.detector, seed=int(seed) * 1000 + 5)
        setups: List[Tuple[str, np.ndarray, bool, np.ndarray]] = []
        for h in dust_idx:
            others = np.array([d for d in dust_idx if d != h], dtype=int)
            setups.append(("synthetic+real", others, True, np.array([h])))
            if len(others):
                setups.append(("real only", others, False, np.array([h])))
        setups.append(("synthetic only", np.array([], dtype=int), True, dust_idx))
        for name, pos_real, with_synth, heldout in setups:
            pos = images[pos_real] if len(pos_real) else np.zeros((0,) + images.shape[1:], np.uint8)
            if with_synth:
                pos = np.concatenate([pos, synth])
            model, hist = train_detector(pos, images[neg], st)
            scores = predict_scores(model, images)
            exclude = np.concatenate([neg, pos_real]).astype(int)
            for h in heldout:
                r = rank_among(scores, int(h), exclude)
                n_ranked = len(scores) - len(exclude)
                extra = {}
                if p_smooth is not None:
                    extra["rank_detg"] = rank_among(scores * p_smooth, int(h), exclude)
                rows.append({"seed": int(seed), "detector": name, "heldout_id": ids[h], "rank": r,
                             "n_ranked": int(n_ranked), "score": float(scores[h]),
                             "percentile": 100.0 * (1 - (r - 1) / max(1, n_ranked - 1)), **extra,
                             "train_pos_real": int(len(pos_real)),
                             "train_pos_synthetic": int(len(synth)) if with_synth else 0,
                             "train_neg": int(len(neg)), "train_s": hist["wall_time_s"]})
                log(f"  seed {seed} {name:<15} held out {ids[h]}: rank {r} of {n_ranked} (score {scores[h]:.3f})")
    return pd.DataFrame(rows)


def summarize_heldout(held: pd.DataFrame) -> pd.DataFrame:
    """Median / mean / std / best / worst rank per detector and held-out example, over seeds."""
    g = held.groupby(["detector", "heldout_id"], sort=False)
    aggs = dict(n_seeds=("seed", "nunique"), rank_median=("rank", "median"), rank_mean=("rank", "mean"),
                rank_std=("rank", "std"), rank_best=("rank", "min"), rank_worst=("rank", "max"),
                n_ranked=("n_ranked", "first"), score_mean=("score", "mean"))
    if "rank_detg" in held.columns:
        aggs.update(rank_detg_median=("rank_detg", "median"), rank_detg_best=("rank_detg", "min"),
                    rank_detg_worst=("rank_detg", "max"))
    return g.agg(**aggs).reset_index()
