"""Truth from GZ2 votes (science.vote_truth, binary_tasks vote tasks), ranking metrics with expected values
(science.detection_metrics), focal-loss expected values and the classifier components (science.detg_components)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science import vote_truth as vt
from galaxysd_core.science.binary_tasks import TASKS, task_labels
from galaxysd_core.science.binary_training import focal_loss_with_logits
from galaxysd_core.science.detection_metrics import detection_metrics, recall_at_fraction, summarize_runs

torch.set_num_threads(1)

F = "_fraction"


def _votes(rows):
    """Index rows from (dust, odd, smooth, ring, bar_label) tuples; None = a row without votes (GZ1)."""
    out = []
    for i, r in enumerate(rows):
        d = {"id": f"g{i}", "source": "gz2_cutouts" if r else "gz1_sdss"}
        if r is None:
            d.update({vt.DUST_LANE_COLUMN + F: np.nan, vt.ODD_YES_COLUMN + F: np.nan, vt.SMOOTH_COLUMN + F: np.nan,
                      "t08_odd_feature_a19_ring" + F: np.nan, "t03_bar_a06_bar": 1.0})
        else:
            dust, odd, smooth, ring, bar = r
            d.update({vt.DUST_LANE_COLUMN + F: dust, vt.ODD_YES_COLUMN + F: odd, vt.SMOOTH_COLUMN + F: smooth,
                      "t08_odd_feature_a19_ring" + F: ring, "t03_bar_a06_bar": bar})
        out.append(d)
    return pd.DataFrame(out)


def test_dust_lane_majority_needs_t08_reached_and_counts_debiased_double_majorities():
    idx = _votes([(0.9, 0.6, 0.8, 0.0, 0.0),     # majority dust lane in a smooth galaxy: a D-ETG
                  (0.9, 0.41, 0.8, 0.0, 0.0),    # t08 not reached (p_odd < 0.42): not a dust lane
                  (0.5, 0.42, 0.1, 0.7, 1.0),    # exactly at both thresholds, and a majority ring too
                  (0.49, 0.9, 0.1, 0.0, np.nan),  # just short of a majority; bar branch not reached
                  None])                          # no votes (GZ1)
    dust = vt.dust_lane_labels(idx)
    np.testing.assert_array_equal(dust[:4], [1, 0, 1, 0])
    assert np.isnan(dust[4])
    np.testing.assert_array_equal(vt.majority_labels(idx, "t08_odd_feature_a19_ring")[:4], [0, 0, 1, 0])
    bar = vt.majority_labels(idx, "t03_bar_a06_bar")  # caption label; NaN (branch not reached) -> 0
    np.testing.assert_array_equal(bar[:4], [0, 0, 1, 0])
    assert np.isnan(bar[4])
    np.testing.assert_allclose(vt.dust_lane_soft(idx)[:4], [0.54, 0.369, 0.21, 0.441])
    assert np.isnan(vt.dust_lane_soft(idx)[4])
    np.testing.assert_array_equal(vt.early_type_votes(idx)[:4], [1, 1, 0, 0])
    with pytest.raises(GalaxySDValueError):
        vt.early_type_votes(idx, threshold=0.0)
    with pytest.raises(GalaxySDDataError, match="vote column"):
        vt.dust_lane_labels(idx.drop(columns=[vt.DUST_LANE_COLUMN + F]))
    assert vt.ODD_REACHED == 0.42


def test_vote_tasks_use_the_vote_majority():
    idx = _votes([(0.9, 0.6, 0.8, 0.0, 0.0), (0.1, 0.9, 0.1, 0.8, 1.0), None])
    np.testing.assert_array_equal(task_labels(idx, TASKS["dust-lane"])[:2], [1, 0])
    np.testing.assert_array_equal(task_labels(idx, TASKS["ring"])[:2], [0, 1])
    np.testing.assert_array_equal(task_labels(idx, TASKS["bar"])[:2], [0, 1])
    assert np.isnan(task_labels(idx, TASKS["dust-lane"])[2])  # rows without votes are not used
    assert TASKS["dust-lane"].votes and not TASKS["gz1-merger"].votes


# ------------------------------------------------------------------------------------ ranking metrics
def test_detection_metrics_expected_values():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.7, 0.6, 0.5, 0.4, 0.2, 0.1, 0.05])
    m = detection_metrics(y, s)
    # positive 1 beats all 8 negatives, positive 2 (0.3) beats 3 of 8 -> AUC = 11/16
    assert m["roc_auc"] == pytest.approx(11 / 16)
    # AP = mean precision at each positive's rank (1 and 7): (1/1 + 2/7) / 2
    assert m["ap"] == pytest.approx((1 + 2 / 7) / 2)
    assert m["recall_at_1pct"] == 0.5 and m["recall_at_5pct"] == 0.5  # top 1 of 10
    assert (m["n"], m["n_pos"]) == (10, 2)
    assert recall_at_fraction(y, s, 0.8) == 1.0 and recall_at_fraction(y, s, 0.3) == 0.5
    # ties at the cut count against the detector: a constant score finds nothing in the top 10 %
    assert recall_at_fraction(y, np.zeros(10), 0.1) == 0.0
    assert math.isnan(detection_metrics(np.zeros(5), np.arange(5.0))["roc_auc"])
    with pytest.raises(GalaxySDValueError, match="finite"):
        detection_metrics(y, np.full(10, np.nan))
    with pytest.raises(GalaxySDValueError, match="0/1"):
        detection_metrics(np.full(10, 0.5), s)


def test_summary_over_seeds():
    runs = pd.DataFrame({"arm": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0], "n": 10, "n_pos": 2,
                         "roc_auc": [0.7, 0.8, 0.9, 0.5], "ap": 0.5, "recall_at_1pct": 0.0, "recall_at_5pct": 1.0})
    s = summarize_runs(runs, ["arm"]).set_index("arm")
    assert s.loc["a", "roc_auc_mean"] == pytest.approx(0.8) and s.loc["a", "roc_auc_std"] == pytest.approx(0.1)
    assert s.loc["a", "n_seeds"] == 3 and s.loc["a", "roc_auc_min"] == 0.7 and np.isnan(s.loc["b", "roc_auc_std"])


# ------------------------------------------------------------------------------------ focal loss
def test_focal_loss_expected_values():
    """Lin et al. 2017: FL = -alpha_t (1 - p_t)^gamma log p_t."""
    logits = torch.tensor([0.0, 2.0, -1.0])
    t = torch.tensor([1.0, 1.0, 0.0])
    fl = focal_loss_with_logits(logits, t, gamma=2.0, reduction="none")
    p = torch.sigmoid(logits)
    expected = [0.25 * math.log(2.0),                                       # p_t = 0.5
                (1 - float(p[1])) ** 2 * -math.log(float(p[1])),            # an easy positive
                float(p[2]) ** 2 * -math.log(1 - float(p[2]))]              # a negative, p_t = 1 - p
    np.testing.assert_allclose(fl.numpy(), expected, rtol=1e-6)
    assert expected[1] == pytest.approx(0.0018036, rel=1e-4)  # (1 - 0.8808)^2 x 0.12693
    fa = focal_loss_with_logits(logits, t, gamma=2.0, alpha=0.25, reduction="none")
    np.testing.assert_allclose(fa.numpy(), np.array(expected) * [0.25, 0.25, 0.75], rtol=1e-6)
    assert float(focal_loss_with_logits(logits, t, gamma=2.0, reduction="sum")) == pytest.approx(sum(expected), rel=1e-6)


# ------------------------------------------------------------------------------------ classifier components
def test_components_match_the_classifier_heads():
    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
    from galaxysd_core.science.detg_components import ARTIFACT_COLUMN, COMPONENT_COLUMNS, component_probabilities

    torch.manual_seed(0)
    judge = MorphologyClassifier(ClassifierConfig(feature_columns=[vt.SMOOTH_COLUMN, ARTIFACT_COLUMN,
                                                                   "t08_odd_feature_a24_merger"],
                                                  output="softmax", channels=[4, 8], image_size=16)).eval()
    imgs = np.random.default_rng(0).integers(0, 255, (5, 24, 24, 3), dtype=np.uint8)
    c = component_probabilities(judge, imgs, batch_size=2)
    assert c.shape == (5, len(COMPONENT_COLUMNS))
    heads = judge.predict_proba(imgs).numpy()
    np.testing.assert_allclose(c[:, 0], heads[:, 0], atol=1e-5)  # p_smooth = the smooth head
    np.testing.assert_allclose(c[:, 1], heads[:, 1], atol=1e-5)
    # no t04 head in this judge: p_spiral 0, so p_early = 1 - p_artifact (never the smooth head)
    np.testing.assert_allclose(c[:, 2], 0.0)
    np.testing.assert_allclose(c[:, 3], (1 - c[:, 2]) * (1 - c[:, 1]), atol=1e-7)
    fr = judge.predict_fractions(imgs).numpy()
    cols = judge.config.vote_columns
    np.testing.assert_allclose(c[:, 4], fr[:, cols.index(vt.DUST_LANE_COLUMN)] * fr[:, cols.index(vt.ODD_YES_COLUMN)],
                               atol=1e-6)
    no_smooth = MorphologyClassifier(ClassifierConfig(feature_columns=["t02_edgeon_a04_yes"], channels=[4, 8],
                                                      image_size=16))
    with pytest.raises(GalaxySDValueError, match="smooth"):
        component_probabilities(no_smooth, imgs)
