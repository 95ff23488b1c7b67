"""Ranking metrics of a detector on a held-out set, and their summary over seeds.

A search ranks a survey and volunteers look at the top of the list, so besides the threshold-free
ROC AUC and average precision (AP, the area under the purity-completeness curve; both from
:mod:`sklearn.metrics`) the figure that matters is the *recall in the top k %*: the share of the
true positives found among the ``ceil(k/100 * N)`` highest-scored galaxies. Ties at the cut count
against the detector (negatives first), so a constant score finds nothing.

Owns :func:`recall_at_fraction`, :func:`detection_metrics` and :func:`summarize_runs`.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError

__all__ = ["TOP_FRACTIONS", "METRICS", "recall_at_fraction", "detection_metrics", "summarize_runs",
           "bootstrap_metrics"]

#: Fractions of the ranked list whose recall is reported (1 % and 5 %).
TOP_FRACTIONS = (0.01, 0.05)
#: Metric names of :func:`detection_metrics` that are summarised over seeds.
METRICS = ("roc_auc", "ap", "recall_at_1pct", "recall_at_5pct")


def _check(labels, scores):
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise GalaxySDValueError(f"labels {y.shape} and scores {s.shape} must be 1-d of equal length")
    if not np.isin(y, (0.0, 1.0)).all():
        raise GalaxySDValueError("labels must be 0/1 (drop rows without a truth first)")
    if not np.isfinite(s).all():
        raise GalaxySDValueError("scores must be finite (drop skipped images first)")
    return y.astype(int), s


def recall_at_fraction(labels, scores, fraction: float) -> float:
    """Share of the positives among the ``ceil(fraction * N)`` highest scores (ties: negatives first).

    NaN when there is no positive.
    """
    y, s = _check(labels, scores)
    if not 0.0 < fraction <= 1.0:
        raise GalaxySDValueError(f"fraction must be in (0, 1], got {fraction}")
    if y.sum() == 0:
        return float("nan")
    k = max(1, math.ceil(fraction * len(y) - 1e-9))
    order = np.lexsort((y, -s))  # by score descending; among equal scores negatives first (pessimistic)
    return float(y[order[:k]].sum() / y.sum())


def detection_metrics(labels, scores) -> Dict[str, float]:
    """``roc_auc``, ``ap``, ``recall_at_1pct``, ``recall_at_5pct``, ``n``, ``n_pos`` of scores against 0/1 truth.

    AUC and AP are NaN when the set has only one class.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = _check(labels, scores)
    both = 0 < y.sum() < len(y)
    out = {"roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
           "ap": float(average_precision_score(y, s)) if both else float("nan")}
    for f in TOP_FRACTIONS:
        out[f"recall_at_{round(f * 100)}pct"] = recall_at_fraction(y, s, f) if len(y) else float("nan")
    out.update(n=int(len(y)), n_pos=int(y.sum()))
    return out


def summarize_runs(runs: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str] = METRICS,
                   seed_column: str = "seed") -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; NaN for one seed), min and max of ``metrics`` over seeds per ``keys``."""
    if runs.empty:
        return pd.DataFrame()
    g = runs.groupby(list(keys), sort=False, dropna=False)
    out = g.agg(n_seeds=(seed_column, "nunique"), n=("n", "first"), n_pos=("n_pos", "first")).reset_index()
    for m in metrics:
        out[f"{m}_mean"] = g[m].mean().to_numpy()
        out[f"{m}_std"] = g[m].std(ddof=1).to_numpy()
        out[f"{m}_min"] = g[m].min().to_numpy()
        out[f"{m}_max"] = g[m].max().to_numpy()
    return out


def bootstrap_metrics(labels, scores, n_boot: int = 1000, seed: int = 0, level: float = 0.9) -> Dict[str, float]:
    """:func:`detection_metrics` with bootstrap intervals: ``<metric>_lo`` / ``<metric>_hi`` per metric.

    Galaxies are resampled with replacement ``n_boot`` times (percentile interval at ``level``,
    default 90 %); resamples with one class only are skipped for AUC and AP.
    """
    y, s = _check(labels, scores)
    out = detection_metrics(y, s)
    if not 0.0 < level < 1.0:
        raise GalaxySDValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    draws = {m: [] for m in METRICS}
    for _ in range(int(n_boot)):
        i = rng.integers(0, len(y), len(y))
        if y[i].sum() == 0:
            continue
        m = detection_metrics(y[i], s[i])
        for k in METRICS:
            if np.isfinite(m[k]):
                draws[k].append(m[k])
    a = (1.0 - level) / 2.0
    for k in METRICS:
        v = np.asarray(draws[k])
        out[f"{k}_lo"] = float(np.quantile(v, a)) if len(v) else float("nan")
        out[f"{k}_hi"] = float(np.quantile(v, 1 - a)) if len(v) else float("nan")
    return out
