"""Captions and targets from GZ2 votes (real Stripe 82 table) and single labels."""
from __future__ import annotations

import math
import random

import pandas as pd
import numpy as np
import pytest

from galaxysd_core.schema import captioning as c
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, ANSWERS, QUESTION_BY_STEM, SURVEY_PREFIX

STRIPE82 = "gz2_stripe82_votes/willett13_table5_stripe82.csv.gz"
N_ROWS = 300  # enough rows to meet every branch, fast to caption


@pytest.fixture(scope="module")
def stripe82_rows(shared_data):
    df = pd.read_csv(shared_data(STRIPE82), nrows=N_ROWS, dtype={"objid": str})
    return df.to_dict("records")


def _tags(caption):
    parts = [p.strip() for p in caption.split(",")]
    assert parts[0] == SURVEY_PREFIX
    return parts[1:]


def _phrases(stem):
    return {a.phrase for a in QUESTION_BY_STEM[stem].answers if a.captioned}


# --------------------------------------------------------------------------- real votes

def test_known_row_debiased_and_raw(stripe82_rows):
    row = stripe82_rows[0]
    assert row["objid"] == "8647474690312307154"
    # debiased: features 0.775 wins t01; t02 has only 1 + 4 votes (< min_votes 10): not reached,
    # and t08 (9 votes) is not reached either.
    assert c.Captioner().caption(row) == "sdss, features or disk-shaped"
    # raw fractions: smooth 0.625 wins, t07 in-between 0.818 (11 votes)
    assert c.Captioner(debiased=False).caption(row) == "sdss, smooth, in-between round galaxy"
    # a full spiral branch (t04 -> t10 -> t11 -> t05)
    spiral = next(r for r in stripe82_rows if r["objid"] == "8647474690312438284")
    assert c.Captioner().caption(spiral) == (
        "sdss, features or disk-shaped, spiral galaxy, medium wound spiral arms, 2 spiral arms, "
        "just noticeable bulge prominence")


def test_features_only_on_reached_branches(stripe82_rows):
    cap = c.Captioner()
    seen = set()
    for row in stripe82_rows:
        tags = set(_tags(cap.caption(row)))
        seen |= tags
        if tags & _phrases("t07_rounded"):
            assert "smooth" in tags
        if tags & (_phrases("t02_edgeon") | _phrases("t03_bar") | _phrases("t04_spiral")):
            assert "features or disk-shaped" in tags and "smooth" not in tags
        if tags & _phrases("t09_bulge_shape"):
            assert "edge-on galaxy" in tags
        if tags & (_phrases("t03_bar") | _phrases("t04_spiral") | _phrases("t05_bulge_prominence")):
            assert "edge-on galaxy" not in tags
            assert row["t02_edgeon_a05_no_debiased"] >= c.WILLETT13_REACHED_THRESHOLDS["t03_bar"]
        if tags & (_phrases("t10_arms_winding") | _phrases("t11_arms_number")):
            assert "spiral galaxy" in tags
        if tags & _phrases("t08_odd_feature"):
            assert row["t06_odd_a14_yes_debiased"] >= c.WILLETT13_REACHED_THRESHOLDS["t08_odd_feature"]
        if "star or artifact" in tags:
            assert tags == {"star or artifact"}
        assert len(tags & _phrases("t01_smooth_or_features")) <= 1
    # the sample exercises several branches
    assert {"smooth", "features or disk-shaped", "spiral galaxy"} <= seen


def test_targets_match_caption(stripe82_rows):
    cap = c.Captioner()
    for row in stripe82_rows[:50]:
        t = cap.targets(row)
        assert set(t) == {a.column for a in ANSWERS}
        chosen = {col for col, v in t.items() if v == 1.0}
        captioned = {ANSWER_BY_COLUMN[col].phrase for col in chosen if ANSWER_BY_COLUMN[col].captioned}
        assert captioned == set(_tags(cap.caption(row)))
        for stem, q in QUESTION_BY_STEM.items():
            vals = [t[a.column] for a in q.answers]
            # a question is either unknown (all NaN) or answered once (one 1.0, the rest 0.0)
            assert all(math.isnan(v) for v in vals) or (sorted(vals)[-1] == 1.0 and sum(vals) == 1.0)


def test_nan_and_missing_columns_raise_naming_the_column(stripe82_rows):
    row = dict(stripe82_rows[0])
    row["t01_smooth_or_features_a02_features_or_disk_debiased"] = float("nan")
    row["t01_smooth_or_features_a02_features_or_disk_weighted_fraction"] = float("nan")
    with pytest.raises(GalaxySDDataError, match="t01_smooth_or_features_a02_features_or_disk_debiased"):
        c.Captioner().caption(row)
    row = dict(stripe82_rows[0])
    del row["t01_smooth_or_features_a01_smooth_fraction"]
    with pytest.raises(GalaxySDDataError, match="t01_smooth_or_features_a01_smooth_fraction"):
        c.Captioner(debiased=False).caption(row)
    # the debiased captioner does not need the raw column
    assert c.Captioner().caption(row).startswith("sdss")


def test_raw_vs_debiased_selects_columns(stripe82_rows):
    row = dict(stripe82_rows[3])
    for a in QUESTION_BY_STEM["t01_smooth_or_features"].answers:
        row[a.column + "_debiased"] = 0.9 if a.code == "a03_star_or_artifact" else 0.05
    assert c.Captioner(debiased=True).caption(row) == "sdss, star or artifact"
    assert c.Captioner(debiased=False).caption(row) != "sdss, star or artifact"
    assert c.Captioner(debiased=False).suffix == "_fraction"


def test_shuffle_keeps_prefix_and_tags(stripe82_rows):
    plain = c.Captioner()
    shuffled = c.Captioner(shuffle=True)
    rng = random.Random(3)
    orders = set()
    for row in stripe82_rows[:100]:
        a, b = plain.caption(row), shuffled.caption(row, rng=rng)
        assert b.split(", ")[0] == "sdss"
        assert sorted(_tags(a)) == sorted(_tags(b))
        if len(_tags(a)) > 2:
            orders.add(tuple(_tags(b)) == tuple(_tags(a)))
    assert False in orders  # at least one caption really was reordered
    cap = "sdss, features or disk-shaped, spiral galaxy, 2 spiral arms"
    out = c.shuffle_caption(cap, random.Random(0))
    assert out.startswith("sdss, ") and sorted(out.split(", ")) == sorted(cap.split(", "))


def test_clean_thresholds_are_stricter(stripe82_rows):
    loose = sum(len(_tags(c.Captioner().caption(r))) for r in stripe82_rows)
    clean = sum(len(_tags(c.Captioner(c.CaptionThresholds.clean()).caption(r))) for r in stripe82_rows)
    assert clean < loose


@pytest.mark.parametrize("kwargs", [{"answer_threshold": 1.5}, {"min_votes": -1},
                                    {"reached": {"t99_nope": 0.5}}, {"reached": {"t03_bar": 2.0}}])
def test_invalid_thresholds(kwargs):
    with pytest.raises(GalaxySDValueError):
        c.CaptionThresholds(**kwargs)


def test_out_of_range_fraction():
    row = {a.column + "_debiased": 0.0 for a in ANSWERS}
    row["t01_smooth_or_features_a01_smooth_debiased"] = 1.7
    with pytest.raises(GalaxySDDataError, match="not a fraction"):
        c.Captioner().caption(row)


# --------------------------------------------------------------------------- single labels

@pytest.mark.parametrize("name, expected", [
    ("elliptical", "sdss, smooth"),
    ("clockwise spiral", "sdss, features or disk-shaped, spiral galaxy"),
    ("spiral_anticlockwise", "sdss, features or disk-shaped, spiral galaxy"),
    ("edge_on", "sdss, features or disk-shaped, edge-on galaxy"),
    ("Edge-on", "sdss, features or disk-shaped, edge-on galaxy"),
    ("dont_know_or_star", "sdss, star or artifact"),
    ("merger", "sdss, merger"),
    ("3", "sdss, features or disk-shaped, edge-on galaxy"),
])
def test_gz1_class_captions(name, expected):
    assert c.caption_for_gz1_class(name) == expected


def test_gz1_unknown_class():
    with pytest.raises(GalaxySDValueError, match="unknown Galaxy Zoo 1 class"):
        c.caption_for_gz1_class("lenticular")


def test_gz1_labels_file_classes_all_known(shared_data):
    labels = pd.read_csv(shared_data("gz1_sdss/labels.csv"), usecols=["gz1_class_name"])
    for name in labels["gz1_class_name"].unique():
        assert c.caption_for_gz1_class(name).startswith("sdss, ")


def test_gz2_examples_single_answer_captions(shared_data):
    labels = pd.read_csv(shared_data("gz2_examples/labels.csv"))
    assert len(labels) == 86
    for col in labels["gz2_column"]:
        ans = ANSWER_BY_COLUMN[col]
        cap = c.caption_from_answers([col])
        tags = _tags(cap)
        if ans.captioned:
            assert ans.phrase in tags
        t = c.answer_targets([col])
        assert t[col] == 1.0
        assert all(t[o.column] == 0.0 for o in QUESTION_BY_STEM[ans.question].answers if o is not ans)
    # an implied path is filled in
    assert c.caption_from_answers(["t09_bulge_shape_a26_boxy"]) == (
        "sdss, features or disk-shaped, edge-on galaxy, with boxy edge-on bulge")
    t = c.answer_targets(["t09_bulge_shape_a26_boxy"])
    assert t["t02_edgeon_a04_yes"] == 1.0 and t["t02_edgeon_a05_no"] == 0.0
    assert math.isnan(t["t03_bar_a06_bar"])


def test_unknown_answer_column():
    with pytest.raises(GalaxySDValueError, match="unknown GZ2 answer column"):
        c.caption_from_answers(["t03_bar_a99_nope"])


def test_nan_debiased_falls_back_to_the_weighted_fraction(stripe82_rows):
    row = dict(stripe82_rows[0])
    cap = c.Captioner()
    expected = cap.caption(row)
    col = "t01_smooth_or_features_a01_smooth"
    assert row[col + "_weighted_fraction"] == pytest.approx(row[col + "_weighted_fraction"])  # present and finite
    row[col + "_debiased"] = float("nan")
    fallback = c.Captioner()
    got = fallback.caption(row)
    # the caption is made from the weighted fraction of the same answer, and the fallback is counted
    row2 = dict(row, **{col + "_debiased": row[col + "_weighted_fraction"]})
    assert got == c.Captioner().caption(row2)
    assert fallback.report.fallbacks[col] == 1 and fallback.report.rows_with_fallback == 1
    assert "weighted fraction: 1 values in 1 rows" in fallback.report.summary()
    assert expected.startswith("sdss")


def test_absent_tasks_are_not_asked_never_no(stripe82_rows):
    """A table without t10/t11 columns (like gz2_cutouts): spirals stop at 'spiral galaxy', arm answers get NaN
    targets (not 0), and the report names the absent tasks."""
    from galaxysd_core.schema.gz2 import QUESTION_BY_STEM as Q

    arm_cols = {a.column for s in ("t10_arms_winding", "t11_arms_number") for a in Q[s].answers}
    full = c.Captioner()
    spiral_rows = [r for r in stripe82_rows if "2 spiral arms" in full.caption(r) or "tightly wound" in full.caption(r)]
    assert spiral_rows, "fixture has spirals with arm answers"
    row = {k: v for k, v in spiral_rows[0].items() if not any(k.startswith(col) for col in arm_cols)}
    part = c.Captioner()
    part.bind(list(row))
    assert part.absent_tasks == ("t10_arms_winding", "t11_arms_number")
    assert "t10_arms_winding, t11_arms_number" in part.report.summary()
    caption = part.caption(row)
    assert "spiral galaxy" in caption and "arm" not in caption.replace("spiral galaxy", "")
    targets = part.targets(row)
    assert all(np.isnan(targets[col]) for col in arm_cols)
    # the questions after the arms (bulge prominence) are still reached through their own gate
    assert full.caption(spiral_rows[0]).split(", ")[-1] in caption or "bulge" not in full.caption(spiral_rows[0])
    # a table without the root question cannot be captioned at all
    root_cols = [k for k in row if k.startswith("t01_")]
    with pytest.raises(GalaxySDDataError, match="first GZ2 question"):
        c.Captioner().bind([k for k in row if k not in root_cols])
    # a question with only some of its columns is a damaged table, not an absent one
    with pytest.raises(GalaxySDDataError, match="some but not all"):
        c.Captioner().bind([k for k in row if not k.startswith("t03_bar_a06_bar")])


def test_rare_odd_features_reached_at_the_willett_threshold(stripe82_rows):
    """t08 (ring, merger, dust lane) is reached at p_odd >= 0.42 (Willett et al. 2013 Table 3), without an 'odd'
    majority."""
    row = {k: v for k, v in stripe82_rows[0].items() if not k.endswith("_count")}  # vote counts not in play
    for a in Q8():
        row[a.column + "_debiased"] = 0.0
    row["t08_odd_feature_a38_dust_lane_debiased"] = 0.9
    row["t06_odd_a14_yes_debiased"], row["t06_odd_a15_no_debiased"] = 0.45, 0.55
    assert "dust lane" in c.Captioner().caption(row)
    row["t06_odd_a14_yes_debiased"], row["t06_odd_a15_no_debiased"] = 0.40, 0.60
    assert "dust lane" not in c.Captioner().caption(row)


def Q8():
    from galaxysd_core.schema.gz2 import QUESTION_BY_STEM

    return QUESTION_BY_STEM["t08_odd_feature"].answers
