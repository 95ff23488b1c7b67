"""Metrics per feature: every head checks the prompts naming its feature, features without a head are
reported as unchecked, the real-vs-generated table per feature, and the evaluation prompt table A-P."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from galaxysd_core.evaluation.config import EVALUATION_PROMPTS, GALAXYSD_PROMPT_TABLE, read_prompts
from galaxysd_core.evaluation.feature_comparison import feature_comparison
from galaxysd_core.evaluation.metrics.consistency import consistency_from_probs, per_feature_table
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.schema.gz2 import ANSWER_BY_PHRASE

HEADS = ["smooth", "bar-shaped structure in the center of galaxy", "ring galaxy", "dust lane"]
BAR = "sdss, features or disk-shaped, bar-shaped structure in the center of galaxy"


def test_each_head_checks_its_own_feature_and_headless_features_are_unchecked():
    probs = np.array([[0.1, 0.9, 0.1, 0.1],   # bar prompt: the bar head sees it
                      [0.1, 0.2, 0.1, 0.1],   # bar prompt: not seen
                      [0.1, 0.1, 0.1, 0.8],   # dust lane prompt: dust-lane head sees it
                      [0.9, 0.1, 0.1, 0.1]])  # arms: no head
    prompts = [BAR, BAR, "sdss, smooth, {dust lane:1.3}", "sdss, spiral galaxy, 2 spiral arms"]
    res = consistency_from_probs(probs, HEADS, prompts)
    assert res.per_feature["bar-shaped structure in the center of galaxy"] == 0.5
    assert res.per_feature["dust lane"] == 1.0 and res.per_feature["smooth"] == 0.0
    assert res.unchecked == {"features or disk-shaped": 2, "spiral galaxy": 1, "2 spiral arms": 1}
    assert math.isnan(res.per_image[3])  # nothing checkable
    table = per_feature_table(res, HEADS)
    assert table["feature"].tolist()[:4] == HEADS
    ring = table[table.feature == "ring galaxy"].iloc[0]
    assert ring.has_head and ring.n_images == 0 and math.isnan(ring.seen)  # a head nobody prompted
    arms = table[table.feature == "2 spiral arms"].iloc[0]
    assert not arms.has_head and arms.n_images == 1
    assert res.to_dict()["unchecked"]["spiral galaxy"] == 1


def test_feature_comparison_joins_generated_and_real():
    table = pd.DataFrame({"prompt": [BAR, "sdss, smooth", "sdss, spiral galaxy, 2 spiral arms"], "n": [10, 30, 5],
                          "seen:smooth": [math.nan, 0.9, math.nan],
                          "seen:bar-shaped structure in the center of galaxy": [0.6, math.nan, math.nan],
                          "unchecked": ["features or disk-shaped", "", "spiral galaxy; 2 spiral arms"]})
    bench = {"real_per_feature": [{"feature": "smooth", "has_head": True, "n_images": 100, "seen": 0.8},
                                  {"feature": "bar-shaped structure in the center of galaxy", "has_head": True,
                                   "n_images": 20, "seen": 0.7}]}
    out = feature_comparison(table, bench).set_index("feature")
    assert out.loc["smooth", "generated_seen"] == pytest.approx(0.9) and out.loc["smooth", "gap"] == pytest.approx(0.1)
    bar = out.loc["bar-shaped structure in the center of galaxy"]
    assert bar.n_generated == 10 and bar.n_real == 20 and bar.gap == pytest.approx(-0.1)
    assert not out.loc["2 spiral arms", "has_head"] and math.isnan(out.loc["2 spiral arms", "generated_seen"])
    assert math.isnan(feature_comparison(table).loc[0, "real_seen"])


def test_prompt_table_covers_galaxysd_a_to_p_in_the_vocabulary():
    assert list(GALAXYSD_PROMPT_TABLE) == [chr(c) for c in range(ord("A"), ord("P") + 1)]
    for letter, prompt in GALAXYSD_PROMPT_TABLE.items():
        tags = parse_prompt(prompt, strict=True).phrase_weights()  # every phrase is in the vocabulary
        assert all(t == "sdss" or t in ANSWER_BY_PHRASE for t in tags), letter
    assert parse_prompt(GALAXYSD_PROMPT_TABLE["K"]).phrase_weights()["dust lane"] == 1.3
    assert "merger" in GALAXYSD_PROMPT_TABLE["P"] and "bar-shaped" in GALAXYSD_PROMPT_TABLE["M"]
    assert read_prompts(["table"]) == EVALUATION_PROMPTS and len(EVALUATION_PROMPTS) == 16
