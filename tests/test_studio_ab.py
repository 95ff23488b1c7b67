"""A/B comparisons on the same seeds (galaxysd_core.studio.ab_compare) with the tiny test pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.studio import ab_compare
from galaxysd_core.studio.limits import GenerationGate

torch.set_num_threads(1)
BASE = "sdss, smooth, completely round galaxy"


def test_plans_differ_in_exactly_one_setting():
    p = ab_compare.plan_ab("feature", BASE, [3, 4], phrase="merger", guidance=5.0)
    assert (p.a.prompt, p.b.prompt) == (f"{BASE}, merger", BASE) and p.a.guidance == p.b.guidance == 5.0
    p = ab_compare.plan_ab("feature", f"{BASE}, {{merger:1.4}}", [0], phrase="merger")
    assert p.b.prompt == BASE and p.a.prompt == f"{BASE}, merger"
    p = ab_compare.plan_ab("weight", BASE, [0], phrase="completely round galaxy", weights=(0.5, 2.0))
    assert p.a.prompt == "sdss, smooth, {completely round galaxy:0.5}" and p.b.prompt.endswith("{completely round galaxy:2}")
    p = ab_compare.plan_ab("weight", BASE, [0], phrase="cigar shaped galaxy", weights=(1.0, 1.5))
    assert "completely round" not in p.a.prompt  # the other answer of the question is replaced, not contradicted
    p = ab_compare.plan_ab("guidance", BASE, [0], guidances=(2, 7))
    assert p.a.prompt == p.b.prompt and (p.a.guidance, p.b.guidance) == (2.0, 7.0)
    p = ab_compare.plan_ab("model", BASE, [0], models=("/m/a", "/m/b"), model_labels=("a", "b"))
    assert (p.a.model, p.b.model, p.a.label) == ("/m/a", "/m/b", "a")
    p = ab_compare.plan_ab("feature", BASE, [0], phrase="spiral galaxy")
    assert p.notes and "cannot both hold" in p.notes[0]  # side A contradicts the tree: said, not hidden


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="nothing"), "kind"), (dict(kind="feature", phrase="purple"), "caption feature"),
    (dict(kind="weight", phrase="merger", weights=(1.2, 1.2)), "different weights"),
    (dict(kind="guidance", guidances=(5, 5)), "different"), (dict(kind="model", models=("x", "x")), "same model"),
    (dict(kind="guidance", seeds=[]), "at least one seed")])
def test_plans_without_a_difference_are_refused(kwargs, match):
    kind = kwargs.pop("kind")
    seeds = kwargs.pop("seeds", [0])
    with pytest.raises(GalaxySDValueError, match=match):
        ab_compare.plan_ab(kind, BASE, seeds, **kwargs)


def test_same_seeds_give_identical_pairs_without_a_difference_and_a_difference_with_one(pipe):
    gate = GenerationGate(1)
    plan = ab_compare.plan_ab("guidance", BASE, [7, 8], guidances=(6.5, 1.0), steps=2)
    same = ab_compare.ABPlan("guidance", plan.a, plan.a, seeds=[7, 8], steps=2)  # both sides equal
    res = ab_compare.run_ab(pipe, pipe, same, gate=gate)
    assert [p.seed for p in res.pairs] == [7, 8] and res.mean_diff == 0.0
    assert all(np.array_equal(p.a.image, p.b.image) and not p.diff.any() for p in res.pairs)
    steps = []
    res = ab_compare.run_ab(pipe, pipe, plan, gate=gate, callback=lambda s, t: steps.append((s, t)),
                            probability=lambda ims: np.full(len(ims), 0.25))
    assert res.mean_diff > 0 and res.pairs[0].a.parameters["guidance_scale"] == 6.5
    assert res.pairs[0].b.parameters["guidance_scale"] == 1.0 and res.pairs[1].prob_b == 0.25
    assert steps[-1] == (4, 4) and steps[0] == (1, 4)  # one progress bar over both sides


def test_model_choices_lists_complete_sibling_folders(saved, tmp_path):
    assert ab_compare.model_choices(saved, assets=tmp_path) == [saved]
    (saved.parent / "not-a-model").mkdir()
    assert ab_compare.model_choices(saved.parent / "missing", assets=tmp_path) == [saved]
