"""Rare odd-feature phrases from partial votes (schema/partial_votes.py) and the oversampled draws."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.partial_votes import (PARTIAL_VOTE_THRESHOLD, add_partial_vote_phrases,
                                                oversampling_weights, partial_vote_phrases)
from galaxysd_core.training.data import StepBatchSampler

ODD = "t06_odd_a14_yes_fraction"
DUST = "t08_odd_feature_a38_dust_lane_fraction"
MERGER = "t08_odd_feature_a24_merger_fraction"
RING = "t08_odd_feature_a19_ring_fraction"


def _index():
    return pd.DataFrame({
        ODD: [0.5, 0.5, 0.9, math.nan, 0.3],
        DUST: [0.5, 0.49, 0.3, 0.9, 0.9],      # 0.25 (in), 0.245 (out), 0.27 (in), no votes, 0.27 (in)
        MERGER: [0.0, 0.0, 0.3, 0.9, 0.0],     # 0.27 on row 2
        RING: [0.0, 0.0, 0.0, 0.0, 0.0],
    })


def test_threshold_is_a_quarter_of_all_classifiers_and_rows_without_votes_are_left():
    caps = ["sdss, smooth, completely round galaxy", "sdss, smooth", "sdss, features or disk-shaped, edge-on galaxy",
            "sdss, smooth", "sdss, features or disk-shaped, dust lane"]
    out, rep = add_partial_vote_phrases(caps, _index())
    assert PARTIAL_VOTE_THRESHOLD == 0.25
    assert out[0] == "sdss, smooth, completely round galaxy, dust lane"   # exactly 0.25 is in
    assert out[1] == "sdss, smooth"                                      # 0.245 is out
    assert out[2] == "sdss, features or disk-shaped, edge-on galaxy, merger, dust lane"
    assert out[3] == "sdss, smooth"                                      # NaN p_odd: nothing claimed
    assert out[4] == caps[4]                                             # never repeated
    assert rep.before["dust lane"] == 1 and rep.after["dust lane"] == 3
    assert rep.before["merger"] == 0 and rep.after["merger"] == 1
    assert rep.rows_changed == 2 and rep.rows_with_votes == 4
    assert rep.to_dict()["rule"] == "f_answer x p_odd >= 0.25"


def test_one_row_and_a_source_without_votes():
    assert partial_vote_phrases({ODD: 0.6, DUST: 0.5, MERGER: 0.42}) == ["merger", "dust lane"]
    assert partial_vote_phrases({DUST: 0.9}) == []
    out, rep = add_partial_vote_phrases(["sdss, smooth"], pd.DataFrame({"id": ["a"]}))
    assert out == ["sdss, smooth"] and rep.rows_changed == 0
    with pytest.raises(GalaxySDValueError, match="captions for"):
        add_partial_vote_phrases(["a", "b"], _index())
    with pytest.raises(GalaxySDValueError, match=r"\(0, 1\]"):
        add_partial_vote_phrases(["a"] * 5, _index(), threshold=0)


def test_oversampling_weights_and_the_weighted_sampler():
    caps = ["sdss, smooth"] * 9 + ["sdss, smooth, dust lane"]
    assert oversampling_weights(caps, 1.0) is None
    w = oversampling_weights(caps, 9.0)
    assert w[-1] == pytest.approx(0.5) and w[:9].sum() == pytest.approx(0.5)
    # square-root balancing: 10 rings, 1 dust lane -> the lane 2 x sqrt(10), rings 2; capped at 2 x 4 below
    caps2 = ["sdss, smooth"] * 10 + ["sdss, ring galaxy"] * 9 + ["sdss, ring galaxy, dust lane"]
    w2 = oversampling_weights(caps2, 2.0)
    assert w2[-1] / w2[0] == pytest.approx(2.0 * 10 ** 0.5) and w2[10] / w2[0] == pytest.approx(2.0)
    w3 = oversampling_weights(caps2[:10] + ["sdss, ring galaxy"] * 100 + ["sdss, dust lane"], 2.0)
    assert w3[-1] / w3[0] == pytest.approx(8.0)
    with pytest.raises(GalaxySDValueError, match=">= 1"):
        oversampling_weights(caps, 0.5)
    s = StepBatchSampler(0, 10, 2000, 0, 1, weights=w)
    _, rows, _ = s.draw(0)
    share = float((rows == 9).float().mean())
    assert 0.45 < share < 0.55          # uniform draws would give ~0.1
    # no weights: the earlier uniform draws, bit for bit
    _, plain, _ = StepBatchSampler(0, 10, 50, 0, 1).draw(0)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(plain, torch.randint(0, 10, (50,), generator=g))
    with pytest.raises(GalaxySDValueError, match="sampling weights"):
        StepBatchSampler(0, 10, 4, 0, 1, weights=np.ones(3))
