"""Contrast of guidance per feature: a slider that pulls its answer in and pushes the other answers of
its GZ2 question away (pipelines.feature_guidance.contrast_scales), stored per feature in
feature_defaults.json, chosen by the curves only where the feature alone misses the goal, and folded
back into one slider when an image's settings are reused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.evaluation.feature_curves import choose_strengths, contrast_of, contrast_weights
from galaxysd_core.pipelines.feature_defaults import FeatureDefaults
from galaxysd_core.pipelines.feature_guidance import contrast_scales
from galaxysd_core.schema.gz2 import alternative_answers
from galaxysd_core.studio import controls

MID = "in-between round galaxy"
ROUND, CIGAR = "completely round galaxy", "cigar shaped galaxy"
BAR = "bar-shaped structure in the center of galaxy"


def test_alternatives_are_the_other_captioned_answers_of_the_question():
    assert alternative_answers(MID) == [ROUND, CIGAR]
    assert alternative_answers("smooth") == ["features or disk-shaped", "star or artifact"]
    assert alternative_answers(BAR) == []  # "no bar" is not a caption phrase
    assert alternative_answers("not a phrase") == []
    assert len(alternative_answers("dust lane")) == 6  # the other odd features of t08


def test_contrast_scales_push_the_alternatives_above_strength_one_only():
    assert contrast_scales(MID, 4.0, 1.5, 1.0) == [(MID, 6.0), (ROUND, -4.5), (CIGAR, -4.5)]
    assert contrast_scales(MID, 4.0, 1.5, 0.5) == [(MID, 6.0), (ROUND, -2.25), (CIGAR, -2.25)]
    assert contrast_scales(MID, 1.0, 1.5, 1.0) == []  # the plain prompt: no branch at all
    assert contrast_scales(MID, 0.5, 2.0, 1.0) == [(MID, 1.0)]  # fading: no contrast
    assert contrast_scales(MID, -1.0, 2.0, 1.0) == [(MID, -2.0)]
    assert contrast_scales(MID, 4.0, 1.5, 0.0) == [(MID, 6.0)]
    assert contrast_scales(BAR, 4.0, 1.5, 1.0) == [(BAR, 6.0)]  # no alternatives
    with pytest.raises(Exception, match="finite"):
        contrast_scales(MID, float("nan"), 1.5, 1.0)


def test_contrast_changes_the_image_and_the_pipeline_sees_every_branch(pipe):
    kw = dict(seed=0, num_inference_steps=3, guidance_scale=1.5, num_images_per_prompt=1, output_type="latent")
    prompt = f"sdss, smooth, {MID}"
    alone = pipe(prompt, feature_guidance=contrast_scales(MID, 4.0, 1.5, 0.0), **kw)
    both = pipe(prompt, feature_guidance=contrast_scales(MID, 4.0, 1.5, 1.0), **kw)
    assert both.parameters["feature_guidance"] == [[MID, 6.0], [ROUND, -4.5], [CIGAR, -4.5]]
    assert float((both.images - alone.images).abs().max()) > 1e-4


def test_feature_scales_and_fold_contrast_round_trip():
    contrast = {MID: 0.5}
    scales = controls.feature_scales({MID: 4.0, BAR: 2.0, "spiral galaxy": 1.0}, 1.5, contrast)
    assert scales == {MID: 6.0, ROUND: -2.25, CIGAR: -2.25, BAR: 3.0}
    folded, found = controls.fold_contrast(scales, 1.5)
    assert folded == {MID: 6.0, BAR: 3.0} and found == {MID: 0.5}
    # a hand-made push on one alternative only is not a slider's contrast: kept
    folded, found = controls.fold_contrast({MID: 6.0, ROUND: -3.0}, 1.5)
    assert folded == {MID: 6.0, ROUND: -3.0} and found == {}


def test_settings_from_png_folds_the_contrast_into_the_slider_and_notes_a_different_model():
    scales = controls.feature_scales({MID: 4.0}, 1.5, {MID: 1.0})
    info = {"prompt": f"sdss, smooth, {MID}", "guidance_scale": 1.5, "feature_guidance": [list(p) for p in scales.items()]}
    settings, notes = controls.settings_from_png(info, {MID: 1.0})
    assert settings["feature_strengths"] == {MID: 4.0} and not notes
    settings, notes = controls.settings_from_png(info, {})
    assert settings["feature_strengths"] == {MID: 4.0}
    assert any("contrast 1" in n and "remake can differ" in n for n in notes)


def test_reuse_settings_of_a_contrast_image_remakes_it_exactly(pipe):
    from galaxysd_core.studio import generation

    contrast = {MID: 1.0}
    req = generation.GenerationRequest(prompt=f"sdss, smooth, {MID}", n_images=1, steps=2, guidance=1.5, seed=5,
                                       feature_guidance=controls.feature_scales({MID: 3.0}, 1.5, contrast))
    items = generation.generate(pipe, req)
    settings, notes = generation.reuse_settings(items[0], contrast)
    assert settings["feature_strengths"] == {MID: 3.0} and not notes
    again = generation.generate(pipe, generation.GenerationRequest(
        prompt=settings["prompt"], n_images=1, steps=settings["steps"], guidance=settings["guidance"],
        seed=settings["seed"], feature_guidance=controls.feature_scales(settings["feature_strengths"],
                                                                        settings["guidance"], contrast)))
    np.testing.assert_array_equal(again[0].image, items[0].image)


def test_feature_defaults_store_the_contrast(tmp_path):
    fd = FeatureDefaults(guidance_scale=1.5, strengths={MID: 6.0, BAR: 1.0}, contrast={MID: 1.0})
    fd.save(tmp_path)
    back = FeatureDefaults.load(tmp_path)
    assert back.contrast == {MID: 1.0} and back.contrast_weight(BAR) == 0.0
    assert back.slider_scales(MID, 6.0) == [(MID, 9.0), (ROUND, -7.5), (CIGAR, -7.5)]
    data = json.loads((tmp_path / "feature_defaults.json").read_text())
    data["contrast"] = {MID: float("inf")}
    (tmp_path / "feature_defaults.json").write_text(json.dumps(data))
    with pytest.raises(GalaxySDFileError, match="non-finite"):
        FeatureDefaults.load(tmp_path)


def _curve(phrase, rows, precision=None):
    precision = precision or {}
    return pd.DataFrame([dict(phrase=phrase, base="b", strength=m, contrast=w, scale=m * 1.5, p=e, effect=e,
                              spread=sp, precision=precision.get((m, w), 0.5), recall=0.5, n=32)
                         for m, w, e, sp in rows])


def test_choose_prefers_the_feature_alone_and_uses_contrast_only_where_it_falls_short():
    alone_ok = _curve("a", [(0, 0, 0, 1), (2, 0, 0.35, 1), (2, 0.5, 0.5, 1)])
    needs = _curve("b", [(0, 0, 0, 1), (2, 0, 0.1, 1), (4, 0, 0.2, 1), (2, 1.0, 0.25, 1), (4, 0.5, 0.31, 1),
                         (4, 1.0, 0.4, 1), (6, 0.5, 0.6, 0.3)])
    never = _curve("c", [(0, 0, 0, 1), (2, 0, 0.1, 1), (2, 0.5, 0.2, 1), (4, 0.5, 0.9, 0.2)])
    chosen, table = choose_strengths(pd.concat([alone_ok, needs, never]))
    assert chosen == {"a": 2.0, "b": 4.0, "c": 2.0}
    assert contrast_of(table) == {"b": 0.5, "c": 0.5}  # c: the largest effect that keeps the spread
    assert table.set_index("phrase")["meets_goal"].to_dict() == {"a": True, "b": True, "c": False}


def test_contrast_weights_tried_are_shared_and_each():
    assert contrast_weights(MID) == [0.5, 1.0]
    assert contrast_weights("dust lane") == [round(1 / 6, 6), 1.0]
    assert contrast_weights(BAR) == []


def test_contrast_note_names_what_the_slider_pushes_away():
    assert controls.contrast_note(MID, {MID: 1.0}) == (
        f"above 1 it also pushes away: {ROUND}, {CIGAR} (contrast w 1, model default)")
    assert controls.contrast_note(MID, {}) is None and controls.contrast_note(None, {MID: 1.0}) is None
    assert controls.contrast_note(BAR, {BAR: 1.0}) is None


def test_dust_lane_goal_reports_the_real_detgs_beside_the_discs(pipe):
    from galaxysd_core import config as gconfig
    from galaxysd_core.evaluation.feature_curves import dust_lane_goal
    from galaxysd_core.evaluation.feature_effects import dust_lane_probabilities
    from galaxysd_core.models.classifier import MorphologyClassifier

    judge = MorphologyClassifier.from_pretrained(gconfig.DEFAULT_CLASSIFIER_DIR)
    detector = MorphologyClassifier.from_pretrained(gconfig.ASSETS_DIR / "detg_detector")
    rng = np.random.default_rng(0)
    real = rng.integers(0, 255, size=(12, 32, 32, 3), dtype=np.uint8)
    dusty = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    smooth = np.array([1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], bool)
    images = {}
    g = dust_lane_goal(pipe, judge, detector, real, dusty, strength=3.0, n=2, real_is_smooth=smooth, images_out=images)
    assert g["n_real_dusty"] == 5 and g["n_real_detg"] == 2
    assert len(images["real_detg"]) == 2 and len(images["gen"]) == 2
    want = float(np.median(dust_lane_probabilities(judge, real[dusty & smooth])["dust_fraction"]))
    assert g["real_detg_dust_votes"] == pytest.approx(want)
    assert g["real_detg_p_dust"] == pytest.approx(float(np.median(detector.predict_proba(real[:2]).numpy()[:, 0])))
    assert {"gen_p_smooth", "real_dusty_p_smooth", "real_detg_p_smooth"} <= set(g)
    with_contrast = {}
    dust_lane_goal(pipe, judge, detector, real, dusty, strength=3.0, n=2, contrast=1.0, images_out=with_contrast)
    assert "real_detg" not in with_contrast and np.abs(with_contrast["gen"].astype(int) - images["gen"]).max() > 0


def test_choose_keeps_realism_a_high_effect_at_a_fraction_of_the_plain_precision_is_not_a_default():
    rows = [(0, 0, 0, 1), (1, 0, 0.05, 1), (2, 0, 0.1, 1), (4, 1.0, 0.25, 1), (8, 1.0, 0.4, 1)]
    curve = _curve("d", rows, precision={(1, 0): 0.5, (4, 1.0): 0.35, (8, 1.0): 0.16})
    chosen, table = choose_strengths(curve)
    assert chosen == {"d": 4.0} and contrast_of(table) == {"d": 1.0} and not table["meets_goal"].iloc[0]
    chosen, _ = choose_strengths(curve, min_precision_share=0.0)  # without the floor: the unrealistic point
    assert chosen == {"d": 8.0}
