"""Re-rank the unvetted candidates from a person's verdicts, and the simulation that measures it.

After some verdicts, a small head learns what this person calls a D-ETG: a logistic regression
(scikit-learn, class-balanced, L2) on classifier v2's unit embedding of each galaxy
(:mod:`galaxysd_core.science.similarity`) plus the logit of the catalog score, fitted on the vetted
galaxies (``yes`` = 1, ``no`` = 0; ``unsure`` left out) and applied to the unvetted ones
(:func:`rerank_scores`). Astronomaly (Lochner & Bassett 2021) does the same with active learning and
about doubles the interesting objects among the first ones looked at.

:func:`simulate_rerank` measures it on galaxies with a known truth: verdicts are given in score
order for the first ``n_first`` galaxies (as a person working down the list), the head re-ranks the
rest, and the number of true positives among the next ``n_next`` and the average precision of the
rest are compared with the original order; bootstrap resamples of the galaxies give the interval.

Owns :data:`MIN_EACH`, :func:`features`, :func:`rerank_scores`, :func:`simulate_rerank`.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError

__all__ = ["MIN_EACH", "features", "rerank_scores", "rerank_catalog", "simulate_rerank", "simulate_on_voted"]

#: Verdicts of each kind (yes, no) the head needs before it can re-rank.
MIN_EACH = 1


def features(embeddings: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``[unit embedding, logit(score)]`` per galaxy (scores clipped to [1e-6, 1 - 1e-6])."""
    from galaxysd_core.science.similarity import normalize

    s = np.clip(np.asarray(scores, dtype=float), 1e-6, 1 - 1e-6)
    return np.hstack([normalize(embeddings), np.log(s / (1 - s))[:, None]])


def _fit(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=seed).fit(x, y)


def rerank_scores(embeddings: np.ndarray, scores: np.ndarray, labels: Mapping[int, int]) -> np.ndarray:
    """Re-rank probability of every galaxy from the verdicts ``labels`` (row -> 1 yes / 0 no).

    Raises
    ------
    GalaxySDValueError
        With fewer than :data:`MIN_EACH` yes and no verdicts (the head needs both).
    """
    rows = np.asarray(sorted(labels), dtype=int)
    y = np.asarray([int(labels[r]) for r in rows])
    if (y == 1).sum() < MIN_EACH or (y == 0).sum() < MIN_EACH:
        raise GalaxySDValueError(f"re-ranking needs at least {MIN_EACH} 'yes' and {MIN_EACH} 'no' verdict(s); "
                                 f"you have {(y == 1).sum()} yes and {(y == 0).sum()} no")
    x = features(embeddings, scores)
    return _fit(x[rows], y).predict_proba(x)[:, 1]


def _one(x: np.ndarray, score: np.ndarray, truth: np.ndarray, n_first: int, n_next: int) -> Optional[Dict[str, float]]:
    from sklearn.metrics import average_precision_score

    order = np.argsort(-score, kind="stable")
    first, rest = order[:n_first], order[n_first:]
    y_first = truth[first]
    if y_first.min() == y_first.max() or truth[rest].sum() == 0:
        return None  # no yes (or no no) among the first: the head cannot learn; or nothing left to find
    p = _fit(x[first], y_first).predict_proba(x[rest])[:, 1]
    new = rest[np.argsort(-p, kind="stable")]
    return {"found_original": float(truth[rest[:n_next]].sum()), "found_reranked": float(truth[new[:n_next]].sum()),
            "ap_original": float(average_precision_score(truth[rest], score[rest])),
            "ap_reranked": float(average_precision_score(truth[rest], p)),
            "positives_left": float(truth[rest].sum()), "yes_in_first": float(y_first.sum())}


def simulate_rerank(embeddings: np.ndarray, scores: np.ndarray, truth: np.ndarray, *, n_first: int = 50,
                    n_next: int = 100, n_boot: int = 200, seed: int = 0, level: float = 0.9) -> pd.DataFrame:
    """The simulation of the module docstring: one row per metric with the estimate and the interval.

    Returns
    -------
    pandas.DataFrame
        ``metric, original, reranked, gain, gain_lo, gain_hi, n_boot_used``.
    """
    truth = np.asarray(truth, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if not (len(truth) == len(scores) == len(embeddings)):
        raise GalaxySDValueError("embeddings, scores and truth need one row per galaxy")
    x = features(embeddings, scores)
    point = _one(x, scores, truth, n_first, n_next)
    if point is None:
        raise GalaxySDValueError(f"the first {n_first} galaxies by score hold no yes or no no verdict; "
                                 "the simulation needs both")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_boot)):
        i = rng.integers(0, len(truth), len(truth))
        r = _one(x[i], scores[i], truth[i], n_first, n_next)
        if r is not None:
            boots.append(r)
    a = (1 - level) / 2
    rows = []
    for m in ("found", "ap"):
        g = np.asarray([b[f"{m}_reranked"] - b[f"{m}_original"] for b in boots])
        rows.append({"metric": f"true positives in the next {n_next}" if m == "found" else "AP of the rest",
                     "original": point[f"{m}_original"], "reranked": point[f"{m}_reranked"],
                     "gain": point[f"{m}_reranked"] - point[f"{m}_original"],
                     "gain_lo": float(np.quantile(g, a)) if len(g) else float("nan"),
                     "gain_hi": float(np.quantile(g, 1 - a)) if len(g) else float("nan"), "n_boot_used": len(g),
                     "yes_in_first": point["yes_in_first"], "positives_left": point["positives_left"]})
    return pd.DataFrame(rows)


def rerank_catalog(index, table: pd.DataFrame, verdicts: Mapping[str, str]) -> pd.Series:
    """Re-rank probability per catalog id from ``verdicts`` (id -> ``yes`` / ``no`` / ``unsure``).

    Parameters
    ----------
    index : SimilarityIndex
        The catalog's embeddings (:func:`galaxysd_core.science.similarity.catalog_index`); galaxies
        without an image (not in the index) keep no re-rank score (NaN).
    table : pandas.DataFrame
        ``id`` and ``score`` of the catalog.
    """
    pos = {i: k for k, i in enumerate(index.ids)}
    sc = dict(zip(table["id"].astype(str), table["score"].astype(float)))
    ids = [i for i in index.ids if i in sc]
    rows = [pos[i] for i in ids]
    scores = np.asarray([sc[i] for i in ids])
    lo, hi = np.nanmin(scores), np.nanmax(scores)
    scaled = (scores - lo) / (hi - lo) if hi > lo else np.full(len(scores), 0.5)  # any score into (0, 1)
    labels = {k: (1 if verdicts[i] == "yes" else 0) for k, i in enumerate(ids) if verdicts.get(i) in ("yes", "no")}
    p = rerank_scores(index.embeddings[rows], scaled, labels)
    return pd.Series(p, index=ids).reindex(table["id"].astype(str).tolist())


def simulate_on_voted(cache_dirs: Sequence[str], classifier_dir, detector_dir, *, n_first: int = 50,
                      n_next: int = 100, n_boot: int = 200) -> pd.DataFrame:
    """:func:`simulate_rerank` on the voted galaxies of ``cache_dirs`` with the cross-validated D-ETG truth
    (:func:`galaxysd_core.science.detg_definition.detg_truth`), the shipped catalog score (the CNN's
    out-of-fold score from the detector folder's ``oof_scores.csv``) and classifier v2's embedding;
    once on every voted galaxy and once on the classifier's held-out split (where its embedding and
    components are out-of-sample)."""
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.science.detg_catalog import out_of_fold_scores
    from galaxysd_core.science.detg_definition import detg_score
    from galaxysd_core.science.dust_ranker_release import load_cv_data

    d = load_cv_data(cache_dirs, classifier_dir)
    oof = out_of_fold_scores(detector_dir)
    ids = d.index["id"].astype(str)
    if not ids.isin(set(oof)).all():
        raise GalaxySDValueError("the detector folder has no out-of-fold score for every voted galaxy")
    cnn = ids.map(oof).to_numpy(dtype=float)
    c = d.components
    score = detg_score(0.5 * (cnn + c[:, 4]), c[:, 2], c[:, 1])
    emb = MorphologyClassifier.from_pretrained(classifier_dir).embed_images(d.images).numpy()
    y = d.index["detg"].to_numpy().astype(int)
    parts = []
    for name, m in (("all voted galaxies", np.ones(len(y), bool)), ("classifier v2 held-out", d.classifier_heldout)):
        if m.sum() <= n_first:
            continue
        t = simulate_rerank(emb[m], score[m], y[m], n_first=n_first, n_next=n_next, n_boot=n_boot)
        t.insert(0, "subset", f"{name} ({int(m.sum())} galaxies, {int(y[m].sum())} D-ETGs)")
        parts.append(t)
    return pd.concat(parts, ignore_index=True)
