"""K-fold cross-validation of the dust-lane rankers: every voted galaxy gets an out-of-fold score.

Why cross-validation: ``gz2_cutouts`` holds 31 majority dust lanes, 63 galaxies where a quarter of
all classifiers saw a lane and 51 D-ETGs (:mod:`galaxysd_core.science.detg_definition`); a fixed
test split keeps 6 of them, so one galaxy moves recall by 0.17. With K folds every voted galaxy is
scored once by a model that never saw it (its *out-of-fold* score), and the metrics are computed on
all of them.

Folds (:func:`assign_folds`) are deterministic and stratified: within each stratum (D-ETG, other
dust lane, rest) galaxies are ordered by ``sha256(salt:id)`` and dealt round-robin to the folds.
Each (fold, seed) trains one :func:`~galaxysd_core.science.dust_ranker.train_ranker` and scores
its held-out galaxies with and without the 8-view test-time augmentation; results are written per
run to ``work_dir`` (``fold<k>_seed<s>.npz``), so a killed run resumes where it stopped.

Rankers compared (:func:`ranker_table`), each for the dust-lane truth (score = ranker) and the
D-ETG truth (score = ranker x ``p_early`` of classifier v2):

``v2_dust_votes``    classifier v2's predicted dust-lane vote share (no training here);
``cnn``              the dedicated ranker, one seed, one view;
``cnn_tta``          the same models, mean over 8 views;
``cnn_ens``          mean over seeds, one view each (a seed ensemble);
``cnn_ens_tta``      mean over seeds and 8 views;
``cnn+v2``           mean of ``cnn`` and ``v2_dust_votes`` (both predict the share of classifiers
                     reporting a lane, so their mean is a vote share too);
``cnn_ens+v2``       mean of ``cnn_ens`` and ``v2_dust_votes``.

Only rankers one network pass per image can give (:data:`SHIPPABLE`: ``v2_dust_votes``, ``cnn``,
``cnn+v2``; the scan must stay above 1,000 galaxies/s on 2 cores) can be shipped; the others are
measured to show what views and seeds would add.

Classifier v2 was trained on every galaxy outside its fixed held-out split
(``assets/classifier/split_test_ids.csv``), so its dust votes and ``p_early`` are out-of-sample
only there: every metric is reported on *all* voted galaxies and on that held-out subset, and the
choice (:func:`choose_ranker`: best cross-validated AP on the D-ETG truth) is made on the subset
where every ranker is out-of-sample. Intervals are bootstrap 90 % intervals over galaxies
(:func:`galaxysd_core.science.detection_metrics.bootstrap_metrics`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.science.binary_training import BinaryTrainSettings
from galaxysd_core.science.detection_metrics import bootstrap_metrics
from galaxysd_core.science.detg_definition import detg_score
from galaxysd_core.science.dust_ranker import DEFAULT_SETTINGS, predict_scores, dihedral_scores, train_ranker

__all__ = ["RANKERS", "SHIPPABLE", "TRUTH_COLUMNS", "assign_folds", "run_cross_validation", "oof_rankers", "ranker_table",
           "choose_ranker"]

logger = logging.getLogger(__name__)

#: Rankers of the comparison (module docstring), in table order.
RANKERS = ("v2_dust_votes", "cnn", "cnn_tta", "cnn_ens", "cnn_ens_tta", "cnn+v2", "cnn_ens+v2")
#: Rankers the scan can apply at its speed (one detector pass per image; module docstring).
SHIPPABLE = ("v2_dust_votes", "cnn", "cnn+v2")
#: Truth column -> what the score is: the ranker alone ("dust") or times p_early ("detg").
TRUTH_COLUMNS = {"dust_lane_partial": "dust", "dust_lane": "dust", "detg": "detg"}


def assign_folds(ids: Sequence[str], strata: Sequence, k: int = 5, salt: str = "galaxysd-dust-cv-v1") -> np.ndarray:
    """Fold 0..k-1 of every id: stratified, by id hash, independent of order (module docstring)."""
    from galaxysd_core.training.classifier_data import id_hash

    if k < 2:
        raise GalaxySDValueError(f"cross-validation needs k >= 2 folds, got {k}")
    ids = [str(i) for i in ids]
    strata = [str(s) for s in strata]
    if len(ids) != len(strata):
        raise GalaxySDValueError("ids and strata must have the same length")
    folds = np.zeros(len(ids), dtype=int)
    groups: Dict[str, list] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    offset = 0
    for s in sorted(groups):
        ranked = sorted(groups[s], key=lambda i: id_hash(ids[i], salt))
        for j, i in enumerate(ranked):
            folds[i] = (j + offset) % k
        offset += len(ranked)  # the next stratum starts where this one ended: folds stay balanced
    return folds


def run_cross_validation(images: np.ndarray, k_votes: np.ndarray, n_votes: np.ndarray, folds: np.ndarray,
                         seeds: Sequence[int] = (0, 1), settings: Optional[BinaryTrainSettings] = None,
                         work_dir: Optional[Union[str, Path]] = None, progress: bool = True) -> pd.DataFrame:
    """Out-of-fold scores of every (fold, seed): ``row, fold, seed, score, score_tta`` (long format).

    Parameters
    ----------
    images : numpy.ndarray
        ``uint8 (N, 128, 128, 3)`` voted galaxies.
    k_votes, n_votes : numpy.ndarray
        Dust-lane votes and all votes per galaxy (:func:`~galaxysd_core.science.dust_ranker.vote_count_targets`).
    folds : numpy.ndarray
        :func:`assign_folds`.
    work_dir : path, optional
        Resumable per-run results (module docstring).
    """
    settings = settings or DEFAULT_SETTINGS
    work = Path(work_dir) if work_dir else None
    if work:
        work.mkdir(parents=True, exist_ok=True)
    parts = []
    runs = [(f, s) for s in seeds for f in sorted(set(int(x) for x in folds))]
    it = runs
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(runs, desc="cross-validation runs")
    for fold, seed in it:
        out = work / f"fold{fold}_seed{seed}.npz" if work else None
        held = np.flatnonzero(folds == fold)
        if out is not None and out.is_file():
            z = np.load(out)
            score, tta = z["score"], z["score_tta"]
        else:
            train = np.flatnonzero(folds != fold)
            model, hist = train_ranker(images[train], k_votes[train], n_votes[train], settings, seed=seed)
            score = predict_scores(model, images[held])
            tta = dihedral_scores(model, images[held])
            logger.info("fold %d seed %d: %.0f s", fold, seed, hist["wall_time_s"])
            if out is not None:
                np.savez(out, score=score, score_tta=tta, held=held)
        parts.append(pd.DataFrame({"row": held, "fold": fold, "seed": seed, "score": score, "score_tta": tta}))
    return pd.concat(parts, ignore_index=True)


def oof_rankers(oof: pd.DataFrame, n: int, dust_votes_v2: np.ndarray) -> pd.DataFrame:
    """One column per ranker of :data:`RANKERS` (rows = galaxies 0..n-1) from :func:`run_cross_validation`."""
    seeds = sorted(oof["seed"].unique())
    first = oof[oof["seed"] == seeds[0]].set_index("row").sort_index()
    if len(first) != n:
        raise GalaxySDValueError(f"out-of-fold scores cover {len(first)} of {n} galaxies; run every fold")
    g = oof.groupby("row")
    v2 = np.asarray(dust_votes_v2, dtype=float)
    out = pd.DataFrame({"v2_dust_votes": v2, "cnn": first["score"].to_numpy(), "cnn_tta": first["score_tta"].to_numpy(),
                        "cnn_ens": g["score"].mean().sort_index().to_numpy(),
                        "cnn_ens_tta": g["score_tta"].mean().sort_index().to_numpy()})
    out["cnn+v2"] = 0.5 * (out["cnn"].to_numpy() + v2)
    out["cnn_ens+v2"] = 0.5 * (out["cnn_ens"].to_numpy() + v2)
    return out[list(RANKERS)]


def ranker_table(scores: pd.DataFrame, truths: pd.DataFrame, p_spiral: np.ndarray, p_artifact: np.ndarray,
                 subsets: Dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Metrics with bootstrap 90 % intervals per ranker x truth x subset.

    Parameters
    ----------
    scores : pandas.DataFrame
        :func:`oof_rankers`.
    truths : pandas.DataFrame
        0/1 columns of :data:`TRUTH_COLUMNS` per galaxy.
    p_spiral, p_artifact : numpy.ndarray
        Classifier v2's components (the D-ETG score's early-type part).
    subsets : dict of str to bool array
        Galaxies to evaluate on (e.g. ``all``, ``classifier_heldout``).
    """
    rows = []
    for subset, mask in subsets.items():
        for truth, kind in TRUTH_COLUMNS.items():
            y = truths[truth].to_numpy(dtype=float)
            keep = mask & np.isfinite(y)
            for name in scores.columns:
                s = scores[name].to_numpy(dtype=float)
                if kind == "detg":
                    s = detg_score(s, p_spiral, p_artifact)
                m = bootstrap_metrics(y[keep], s[keep], n_boot=n_boot, seed=seed)
                rows.append({"subset": subset, "truth": truth, "ranker": name,
                             "score": name if kind == "dust" else f"{name} x p_early", **m})
    return pd.DataFrame(rows)


def choose_ranker(table: pd.DataFrame, subset: str = "classifier_heldout", truth: str = "detg",
                  candidates: Sequence[str] = SHIPPABLE) -> str:
    """The ranker with the best cross-validated AP on ``truth`` within ``subset`` (module docstring)."""
    t = table[(table["subset"] == subset) & (table["truth"] == truth) & table["ranker"].isin(list(candidates))]
    if t.empty:
        raise GalaxySDValueError(f"no rows for subset {subset!r} and truth {truth!r}")
    return str(t.sort_values(["ap", "roc_auc"], ascending=False).iloc[0]["ranker"])
