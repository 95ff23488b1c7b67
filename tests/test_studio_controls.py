"""The Generate page's GZ2-tree controls without Streamlit (galaxysd_core.studio.controls)."""
from __future__ import annotations

import random

import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.gz2 import tree_exclusions
from galaxysd_core.studio import controls

CONTROLS = controls.question_controls()


def empty():
    return {c.stem: (None, 1.0) for c in CONTROLS}


def chosen(state):
    return {s: p for s, (p, _) in state.items() if p}


def test_smooth_disables_the_disc_questions_and_keeps_roundness_and_odd_features():
    state, _ = controls.choose(empty(), "t01_smooth_or_features", "smooth")
    views = controls.control_views(state)
    for stem in ("t02_edgeon", "t09_bulge_shape", "t03_bar", "t04_spiral", "t10_arms_winding", "t11_arms_number",
                 "t05_bulge_prominence"):
        assert views[stem].disabled and views[stem].options == () and "not asked with 'smooth'" in views[stem].reason
    assert views["t07_rounded"].options == ("completely round galaxy", "in-between round galaxy", "cigar shaped galaxy")
    assert not views["t08_odd_feature"].disabled and "merger" in views["t08_odd_feature"].options


def test_a_spiral_hides_roundness_and_edge_on_bulges_but_not_its_own_branch():
    state, _ = controls.choose(empty(), "t04_spiral", "spiral galaxy")
    views = controls.control_views(state)
    assert views["t07_rounded"].disabled and views["t09_bulge_shape"].disabled
    # t01 and t02 lead to t04: their other answers stay offered, and choosing one turns the spiral off
    assert "smooth" in views["t01_smooth_or_features"].options
    assert views["t02_edgeon"].options == ("edge-on galaxy",)
    state, notes = controls.choose(state, "t02_edgeon", "edge-on galaxy")
    assert chosen(state) == {"t02_edgeon": "edge-on galaxy"}
    assert notes == ["turned off 'spiral galaxy': the GZ2 tree does not lead there with 'edge-on galaxy'"]


def test_changing_the_first_answer_clears_what_it_no_longer_leads_to():
    state, _ = controls.choose(empty(), "t01_smooth_or_features", "smooth")
    state, _ = controls.choose(state, "t07_rounded", "cigar shaped galaxy", weight=1.4)
    state, _ = controls.choose(state, "t08_odd_feature", "merger")
    state, notes = controls.choose(state, "t01_smooth_or_features", "features or disk-shaped")
    assert chosen(state) == {"t01_smooth_or_features": "features or disk-shaped", "t08_odd_feature": "merger"}
    assert len(notes) == 1 and "'cigar shaped galaxy'" in notes[0]
    assert state["t07_rounded"] == (None, 1.4)  # the weight is kept for when the answer comes back


def test_random_walks_over_the_offered_answers_only_build_tree_consistent_prompts():
    rng = random.Random(0)
    for _walk in range(40):
        state = empty()
        for _step in range(25):
            views = controls.control_views(state)
            open_questions = [c for c in CONTROLS if not views[c.stem].disabled]
            c = rng.choice(open_questions)
            phrase = rng.choice([None, *views[c.stem].options])
            state, _ = controls.choose(state, c.stem, phrase)
            feats = list(chosen(state).values())
            assert controls.tree_consistent(feats), feats
            assert controls.tree_conflicts(feats) == []


def test_every_single_answer_is_offered_from_an_empty_state():
    views = controls.control_views(empty())
    assert all(views[c.stem].options == c.phrases and not views[c.stem].disabled for c in CONTROLS)


def test_tree_conflicts_names_the_clash_and_kills_no_consistent_prompt():
    assert controls.tree_conflicts(["completely round galaxy", "features or disk-shaped"]) == [
        "'features or disk-shaped' and 'completely round galaxy' cannot both hold: no path through the GZ2 tree "
        "gives both answers"]
    assert controls.tree_conflicts(["smooth", "completely round galaxy", "dust lane"]) == []
    assert not controls.tree_consistent(["spiral galaxy", "edge-on galaxy"])
    # the contradiction is exactly what silently removed the automatic negative prompt before
    assert tree_exclusions(["features or disk-shaped", "completely round galaxy"]) == []


def test_choose_refuses_an_answer_of_another_question():
    with pytest.raises(GalaxySDValueError, match="not an answer"):
        controls.choose(empty(), "t01_smooth_or_features", "spiral galaxy")
    with pytest.raises(GalaxySDValueError, match="unknown GZ2 question"):
        controls.choose(empty(), "t99_nothing", None)
