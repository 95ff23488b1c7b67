"""The cross-validated dust-lane ranker (science.dust_ranker, dust_ranker_cv, detection_metrics.bootstrap_metrics):
vote-count targets, the binomial loss, folds, resumable out-of-fold scores, the rankers and the choice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science import dust_ranker as dr
from galaxysd_core.science import dust_ranker_cv as cv
from galaxysd_core.science.binary_training import BinaryTrainSettings, focal_loss_with_logits
from galaxysd_core.science.detection_metrics import bootstrap_metrics, detection_metrics

torch.set_num_threads(1)
TINY = BinaryTrainSettings(steps=4, batch_size=8, channels=(4, 8), image_size=16, balanced=True,
                           balance_threshold=0.1, augment=True, loss="binomial")


def test_vote_count_targets_are_dust_votes_out_of_all_classifications():
    idx = pd.DataFrame({dr.COUNT_COLUMN: [3, 0, np.nan, 9],
                        "t01_smooth_or_features_a01_smooth_count": [20, 30, 10, 2],
                        "t01_smooth_or_features_a02_features_or_disk_count": [19, 10, 10, 2],
                        "t01_smooth_or_features_a03_star_or_artifact_count": [1, 0, 0, 1]})
    k, n = dr.vote_count_targets(idx)
    np.testing.assert_array_equal(k[[0, 1, 3]], [3, 0, 5])  # k never above n
    np.testing.assert_array_equal(n[[0, 1, 3]], [40, 40, 5])
    assert np.isnan(k[2]) and np.isnan(n[2])
    with pytest.raises(GalaxySDDataError, match="vote-count column"):
        dr.vote_count_targets(idx.drop(columns=[dr.COUNT_COLUMN]))


def test_binomial_loss_weighs_galaxies_by_their_votes():
    """The loss of train_binary(loss='binomial') is sum n BCE(logit, k/n) / sum n: check one step's loss."""
    logits = torch.tensor([0.0, 2.0])
    y, n = torch.tensor([0.25, 0.5]), torch.tensor([40.0, 10.0])
    bce = focal_loss_with_logits(logits, y, 0.0, None, reduction="none")
    expect = float((bce * n).sum() / n.sum())
    # binomial NLL of k = y n votes, up to the log binomial coefficient, divided by sum n
    p = torch.sigmoid(logits)
    nll = -(y * n * torch.log(p) + (1 - y) * n * torch.log(1 - p)).sum() / n.sum()
    assert expect == pytest.approx(float(nll), rel=1e-6)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (16, 16, 16, 3), dtype=np.uint8)
    k = np.array([0, 4] * 8, dtype=float)
    with pytest.raises(GalaxySDValueError, match="trials"):
        from galaxysd_core.science.binary_training import train_binary

        train_binary(imgs, k / 20, TINY)
    model, hist = dr.train_ranker(imgs, k, np.full(16, 20.0), TINY, seed=1)
    assert len(hist["loss"]) >= 1 and np.isfinite(hist["loss"]).all()
    with pytest.raises(GalaxySDValueError, match="0 <= k <= n"):
        dr.train_ranker(imgs, k + 30, np.full(16, 20.0), TINY)
    s = dr.dihedral_scores(model, imgs)
    assert s.shape == (16,) and np.all((s > 0) & (s < 1))
    # a rotation-symmetric image scores the same under the 8 views as under one
    sym = np.zeros((1, 16, 16, 3), np.uint8)
    sym[0, 4:12, 4:12] = 200
    assert dr.dihedral_scores(model, sym)[0] == pytest.approx(dr.ranker_scores(model, sym, tta=False)[0], abs=1e-6)


def test_folds_are_stratified_deterministic_and_order_free():
    ids = [f"g{i}" for i in range(103)]
    strata = ["detg"] * 10 + ["dust"] * 13 + ["rest"] * 80
    f = cv.assign_folds(ids, strata, 5)
    assert sorted(np.bincount(f)) == [20, 20, 21, 21, 21]
    for s in ("detg", "dust"):
        per = np.bincount(f[np.array(strata) == s], minlength=5)
        assert per.max() - per.min() <= 1  # every fold holds its share of the rare classes
    order = np.random.default_rng(1).permutation(103)
    f2 = cv.assign_folds([ids[i] for i in order], [strata[i] for i in order], 5)
    np.testing.assert_array_equal(f2, f[order])
    with pytest.raises(GalaxySDValueError):
        cv.assign_folds(ids, strata, 1)


def test_cross_validation_scores_every_galaxy_once_per_seed_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (24, 16, 16, 3), dtype=np.uint8)
    k = np.array([5.0] * 6 + [0.0] * 18)
    n = np.full(24, 20.0)
    folds = cv.assign_folds([f"g{i}" for i in range(24)], ["d"] * 6 + ["r"] * 18, 3)
    oof = cv.run_cross_validation(imgs, k, n, folds, seeds=(0, 1), settings=TINY, work_dir=tmp_path, progress=False)
    assert len(oof) == 48 and sorted(oof.groupby("seed")["row"].apply(sorted).iloc[0]) == list(range(24))
    assert len(list(tmp_path.glob("fold*_seed*.npz"))) == 6
    again = cv.run_cross_validation(imgs, k, n, folds, seeds=(0, 1), settings=TINY, work_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(oof, again)  # read back, not retrained
    scores = cv.oof_rankers(oof, 24, np.linspace(0, 0.5, 24))
    assert list(scores.columns) == list(cv.RANKERS)
    np.testing.assert_allclose(scores["cnn+v2"], 0.5 * (scores["cnn"] + scores["v2_dust_votes"]))
    truths = pd.DataFrame({"dust_lane_partial": (k > 0).astype(float), "dust_lane": (k > 0).astype(float),
                           "detg": (k > 0).astype(float)})
    table = cv.ranker_table(scores, truths, np.zeros(24), np.zeros(24), {"all": np.ones(24, bool)}, n_boot=20)
    assert len(table) == len(cv.RANKERS) * 3 and {"roc_auc_lo", "ap_hi"} <= set(table.columns)
    assert cv.choose_ranker(table, "all", "detg") in cv.SHIPPABLE


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.1).astype(float)
    s = y * 0.6 + rng.random(400)
    m = bootstrap_metrics(y, s, n_boot=200, seed=1)
    assert m["roc_auc"] == pytest.approx(detection_metrics(y, s)["roc_auc"])
    for k in ("roc_auc", "ap", "recall_at_5pct"):
        assert m[f"{k}_lo"] <= m[k] <= m[f"{k}_hi"] and m[f"{k}_lo"] < m[f"{k}_hi"]
    with pytest.raises(GalaxySDValueError):
        bootstrap_metrics(y, s, level=1.5)


def test_rerank_learns_from_verdicts_and_the_simulation_reports_a_gain():
    """Galaxies of one kind (embedding direction) are the positives, the score is only weakly related:
    a head fitted on the first 30 verdicts finds more of them in the next 50 than the score order does."""
    from galaxysd_core.science.rerank import rerank_scores, simulate_rerank

    rng = np.random.default_rng(0)
    n = 600
    truth = (rng.random(n) < 0.08).astype(int)
    emb = rng.normal(size=(n, 8))
    emb[truth == 1, 0] += 3.0
    score = np.clip(0.3 + 0.2 * truth + rng.normal(0, 0.15, n), 0.01, 0.99)
    t = simulate_rerank(emb, score, truth, n_first=30, n_next=50, n_boot=30).set_index("metric")
    found = t.loc["true positives in the next 50"]
    assert found["reranked"] >= found["original"] + 5 and found["gain_lo"] < found["gain"] < found["gain_hi"] + 1e-9
    p = rerank_scores(emb, score, {0: int(truth[0]), 1: 1 - int(truth[0])} | {i: int(truth[i]) for i in range(2, 40)})
    assert p.shape == (n,) and np.all((p >= 0) & (p <= 1))
    with pytest.raises(GalaxySDValueError, match="at least 1 'yes'"):
        rerank_scores(emb, score, {0: 0, 1: 0})
