"""GZ2 decision tree schema (Willett et al. 2013, Fig. 1 and Table 2)."""
from __future__ import annotations

import gzip

import pytest

from galaxysd_core.schema import gz2 as s

STRIPE82 = "gz2_stripe82_votes/willett13_table5_stripe82.csv.gz"


def test_counts():
    assert len(s.QUESTIONS) == 11
    assert len(s.ANSWERS) == 37
    assert [q.number for q in s.QUESTIONS] == list(range(1, 12))
    assert len({a.column for a in s.ANSWERS}) == 37


def test_columns_are_question_plus_code():
    for q in s.QUESTIONS:
        for a in q.answers:
            assert a.question == q.stem
            assert a.column == f"{q.stem}_{a.code}"
            assert s.ANSWER_BY_COLUMN[a.column] is a


def test_links_point_to_existing_questions():
    for a in s.ANSWERS:
        assert a.leads_to is None or a.leads_to in s.QUESTION_BY_STEM
    # end points of the tree (Willett 2013 Fig. 1)
    assert s.ANSWER_BY_COLUMN["t01_smooth_or_features_a03_star_or_artifact"].leads_to is None
    assert s.ANSWER_BY_COLUMN["t06_odd_a15_no"].leads_to is None
    assert all(a.leads_to is None for a in s.QUESTION_BY_STEM["t08_odd_feature"].answers)
    assert s.ANSWER_BY_COLUMN["t02_edgeon_a04_yes"].leads_to == "t09_bulge_shape"
    assert s.ANSWER_BY_COLUMN["t04_spiral_a08_spiral"].leads_to == "t10_arms_winding"


def test_every_question_reachable_from_root():
    seen, frontier = set(), [s.ROOT_QUESTION]
    while frontier:
        stem = frontier.pop()
        if stem in seen:
            continue
        seen.add(stem)
        frontier += [a.leads_to for a in s.QUESTION_BY_STEM[stem].answers if a.leads_to]
    assert seen == set(s.QUESTION_BY_STEM)


def test_tree_order_parents_first():
    order = s.tree_order()
    assert order[0] == s.ROOT_QUESTION and sorted(order) == sorted(s.QUESTION_BY_STEM)
    rank = {stem: i for i, stem in enumerate(order)}
    for a in s.ANSWERS:
        if a.leads_to:
            assert rank[a.question] < rank[a.leads_to], (a.column, a.leads_to)
    assert s.parents_of(s.ROOT_QUESTION) == []


def test_caption_vocabulary():
    phrases = s.caption_phrases()
    assert len(phrases) == len(set(phrases)) == sum(a.captioned for a in s.ANSWERS)
    assert "dust lane" in phrases and "no bar" not in phrases


def test_unique_ancestors_and_column_helper():
    chain = s.unique_ancestor_answers(s.ANSWER_BY_COLUMN["t09_bulge_shape_a26_boxy"])
    assert [a.column for a in chain] == ["t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a04_yes"]
    # t05 is reached from t04 and t11: the path is not unique
    assert s.unique_ancestor_answers(s.ANSWER_BY_COLUMN["t05_bulge_prominence_a12_obvious"]) == []
    assert s.column("t03_bar_a06_bar", s.SUFFIX_FRACTION) == "t03_bar_a06_bar_fraction"
    with pytest.raises(KeyError):
        s.column("t03_bar_a99_nope")


def test_columns_match_stripe82_header(shared_data):
    with gzip.open(shared_data(STRIPE82), "rt") as fh:
        header = fh.readline().strip().split(",")
    for a in s.ANSWERS:
        for suffix in ("_count", "_weight", "_fraction", "_weighted_fraction", "_debiased", "_flag"):
            assert a.column + suffix in header, a.column + suffix
    answer_stems = {c.rsplit("_", 1)[0] for c in header if c.endswith("_count")}
    assert answer_stems == {a.column for a in s.ANSWERS}


def test_tree_exclusions_are_other_morphologies_at_branch_points():
    from galaxysd_core.schema.gz2 import tree_exclusions

    # spiral implies features + not edge-on: the alternatives at those branch points
    assert tree_exclusions(["features or disk-shaped", "spiral galaxy"]) == ["smooth", "star or artifact", "edge-on galaxy"]
    assert tree_exclusions(["2 spiral arms"]) == ["smooth", "star or artifact", "edge-on galaxy"]
    assert tree_exclusions(["edge-on galaxy"]) == ["smooth", "star or artifact"]
    # roundness alternatives lead to the same next question: degrees of the property, not excluded
    assert tree_exclusions(["smooth", "cigar shaped galaxy"]) == ["features or disk-shaped", "star or artifact"]
    assert tree_exclusions(["merger"]) == [] and tree_exclusions(["sdss"]) == [] and tree_exclusions([]) == []
    # contradictory descriptions (no path through the tree holds both) rule nothing out
    assert tree_exclusions(["smooth", "spiral galaxy"]) == []
