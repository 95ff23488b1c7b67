"""Choosing the default guidance / negative-prompt policy from the measured front (evaluation/defaults.py),
on the front the shipped 128 px model measured (means over 7 prompts, 24 images each)."""
import pandas as pd
import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.defaults import choose_defaults, pareto_front

# tree_negatives, guidance, precision, recall, consistency
MEASURED = [(True, 1.5, 0.768, 0.568, 0.564), (True, 2.5, 0.792, 0.488, 0.673), (True, 4.0, 0.792, 0.415, 0.740),
            (True, 6.5, 0.679, 0.315, 0.770), (False, 1.5, 0.750, 0.596, 0.518), (False, 2.5, 0.738, 0.533, 0.609),
            (False, 4.0, 0.756, 0.458, 0.675), (False, 6.5, 0.625, 0.356, 0.730)]


def _summary(rows=MEASURED):
    return pd.DataFrame([dict(tree_negatives=t, guidance=g, n_prompts=7, precision=p, recall=r, consistency=c)
                         for t, g, p, r, c in rows])


def test_front_drops_only_the_dominated_setting():
    front = pareto_front(_summary())
    assert list(front) == [True] * 7 + [False]  # plain guidance 6.5 is beaten by the tree negatives at 6.5


def test_without_a_consistency_goal_realism_and_diversity_pick_the_lowest_guidance():
    d, s = choose_defaults(_summary())
    assert (d.guidance_scale, d.tree_negatives) == (1.5, False) and not d.source["meets_goals"]
    assert s["chosen"].sum() == 1 and d.source["attainment"] == pytest.approx(0.596 / 0.6)


def test_the_consistency_goal_moves_the_choice_to_where_features_show():
    d, s = choose_defaults(_summary(), steps=20, consistency_goal=0.68)
    # worst-case fractions of the goals: plain 2.5 = min(0.738/0.6, 0.533/0.6, 0.609/0.68) = 0.888, the best
    assert (d.guidance_scale, d.tree_negatives) == (2.5, False)
    assert d.source["attainment"] == pytest.approx(0.533 / 0.6) and d.source["consistency_goal"] == 0.68
    assert "consistency >= 0.680" in d.source["rule"] and not s["meets_goals"].any()


def test_a_setting_meeting_every_goal_wins_and_the_most_consistent_of_them():
    rows = MEASURED + [(True, 3.0, 0.70, 0.62, 0.70), (False, 3.0, 0.65, 0.61, 0.72)]
    d, s = choose_defaults(_summary(rows), consistency_goal=0.68)
    assert (d.guidance_scale, d.tree_negatives) == (3.0, False) and d.source["meets_goals"]
    assert s["meets_goals"].sum() == 2
    with pytest.raises(GalaxySDValueError, match="no evaluated settings"):
        choose_defaults(_summary([]))
