"""The one D-ETG definition (science.detg_definition): truth from votes, the catalog score, the
classifier's no-spiral-arms component (science.detg_components), with expected values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science import detg_definition as dd
from galaxysd_core.science import vote_truth as vt

F = "_fraction"


def _galaxy(smooth, features, edgeon_no, spiral, dust, odd):
    return {vt.SMOOTH_COLUMN + F: smooth, dd.FEATURES_COLUMN + F: features, dd.NOT_EDGEON_COLUMN + F: edgeon_no,
            dd.SPIRAL_COLUMN + F: spiral, vt.DUST_LANE_COLUMN + F: dust, vt.ODD_YES_COLUMN + F: odd}


def _index(rows):
    out = pd.DataFrame([_galaxy(*r) if r is not None else {c: np.nan for c in _galaxy(0, 0, 0, 0, 0, 0)}
                        for r in rows])
    out.insert(0, "id", [f"g{i}" for i in range(len(rows))])
    return out


# smooth, features, not-edge-on, spiral, dust (t08 share), odd
EDGE_ON_S0_WITH_LANE = (0.2, 0.8, 0.1, 0.0, 0.7, 0.6)       # features/disc, edge-on (t04 not asked), lane
FACE_ON_SPIRAL_WITH_LANE = (0.1, 0.9, 0.95, 0.9, 0.7, 0.6)  # t04 reached, spiral majority, lane
SMOOTH_NO_LANE = (0.9, 0.1, 0.9, 0.0, 0.0, 0.1)
SMOOTH_WITH_LANE = (0.8, 0.2, 0.9, 0.1, 0.5, 0.6)           # dust x odd = 0.30 >= 0.25
S0_FACE_ON_NO_ARMS = (0.3, 0.7, 0.9, 0.2, 0.6, 0.5)         # t04 reached, no spiral majority: a lenticular
WEAK_LANE = (0.8, 0.2, 0.9, 0.0, 0.4, 0.6)                  # 0.24 of all classifiers: below a quarter


def test_detg_truth_follows_the_literature_definition():
    idx = _index([EDGE_ON_S0_WITH_LANE, FACE_ON_SPIRAL_WITH_LANE, SMOOTH_NO_LANE, SMOOTH_WITH_LANE,
                  S0_FACE_ON_NO_ARMS, WEAK_LANE, None])
    truth = dd.detg_truth(idx)
    # a voted edge-on lenticular with a lane is a D-ETG; a spiral with a lane is not; a smooth galaxy
    # without a lane is not; a smooth galaxy or a face-on S0 with a lane is; a lane seen by < 25 % is not
    np.testing.assert_array_equal(truth[:6], [1, 0, 0, 1, 1, 0])
    assert np.isnan(truth[6])
    np.testing.assert_array_equal(dd.spiral_majority(idx)[:6], [0, 1, 0, 0, 0, 0])
    table = dd.truth_table(idx)
    assert list(table["detg"][:6]) == [1, 0, 0, 1, 1, 0]
    # the smooth-majority rule of the old definition would have missed the edge-on lenticular
    assert table["early_type"][0] == 0 and table["detg"][0] == 1
    assert dd.T04_FEATURES_REACHED == 0.43 and dd.T04_NOT_EDGEON_REACHED == 0.715
    assert "Kaviraj" in dd.DETG_DEFINITION and "Kaviraj" in dd.SCORE_DEFINITION


def test_t04_counts_as_reached_at_the_willett_thresholds():
    just = (0.5, 0.43, 0.715, 0.6, 0.0, 0.0)
    below = (0.5, 0.43, 0.714, 0.6, 0.0, 0.0)
    np.testing.assert_array_equal(dd.spiral_majority(_index([just, below])), [1, 0])
    with pytest.raises(GalaxySDDataError, match="vote column"):
        dd.spiral_majority(_index([just]).drop(columns=[dd.SPIRAL_COLUMN + F]))


def test_detg_score_is_dust_times_no_arms_times_not_artifact():
    s = dd.detg_score([0.5, 0.5, 0.8], [0.0, 0.8, 0.5], [0.0, 0.0, 0.5])
    np.testing.assert_allclose(s, [0.5, 0.1, 0.2])
    with pytest.raises(GalaxySDValueError, match="must match"):
        dd.detg_score([0.5], [0.1, 0.2], [0.0])


def test_components_spiral_is_features_times_not_edgeon_times_spiral_majority():
    """p_spiral and p_early from the shipped classifier v2's vote outputs, checked against its own
    expected fractions and Beta marginals (not P(smooth))."""
    from galaxysd_core import config
    from galaxysd_core.models.classifier import MorphologyClassifier, images_to_tensor
    from galaxysd_core.models.vote_heads import beta_survival, concentrations, expected_fractions, totals
    from galaxysd_core.science.detg_components import COMPONENT_COLUMNS, component_probabilities

    judge = MorphologyClassifier.from_pretrained(config.DEFAULT_CLASSIFIER_DIR)
    yy, xx = np.mgrid[:64, :64] - 31.5
    imgs = np.stack([np.repeat((230 * np.exp(-((xx / a) ** 2 + (yy / b) ** 2))).astype(np.uint8)[..., None], 3, -1)
                     for a, b in ((8, 8), (14, 4), (10, 6))])  # round, cigar and in-between blobs
    comps = component_probabilities(judge, imgs)
    assert comps.shape == (3, 5) and COMPONENT_COLUMNS == ("p_smooth", "p_artifact", "p_spiral", "p_early",
                                                           "dust_vote_pred")
    with torch.no_grad():
        judge.eval()
        alpha = concentrations(judge.vote_outputs(images_to_tensor(imgs)), judge.layout, judge.config.output)
        frac = expected_fractions(alpha, judge.layout)
        tot = totals(alpha, judge.layout)
    cols = list(judge.layout.columns)
    i = cols.index(dd.SPIRAL_COLUMN)
    p_sp = beta_survival(alpha[:, i], tot[:, i] - alpha[:, i], torch.full_like(alpha[:, i], 0.5))
    expect = (frac[:, cols.index(dd.FEATURES_COLUMN)] * frac[:, cols.index(dd.NOT_EDGEON_COLUMN)] * p_sp).numpy()
    np.testing.assert_allclose(comps[:, 2], expect, rtol=1e-5)
    np.testing.assert_allclose(comps[:, 3], (1 - comps[:, 2]) * (1 - comps[:, 1]), rtol=1e-6)
    assert not np.allclose(comps[:, 3], comps[:, 0] * (1 - comps[:, 1]))  # never P(smooth) alone
