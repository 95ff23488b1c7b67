"""Display helpers, sky links, model facts, vetting formats and colours of the app, without Streamlit."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.science import sky_positions as sky_links
from galaxysd_core.studio import display, model_facts, palette, vetting


# ----------------------------------------------------------------------------- display
@pytest.mark.parametrize("side,factor", [(32, 8), (64, 4), (128, 2), (256, 1), (424, 1), (100, 3), (200, 2)])
def test_results_are_shown_at_256_px_or_more_by_an_integer_factor(side, factor):
    img = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    out = display.upscale(img)
    assert display.display_factor(side) == factor and out.shape == (side * factor, side * factor, 3)
    assert min(out.shape[:2]) >= min(256, side * factor)
    # nearest neighbour: every model pixel becomes a uniform k x k block (no blur)
    blocks = out.reshape(side, factor, side, factor, 3)
    assert (blocks == img[:, None, :, None, :]).all()


def test_lanczos_upscale_is_smooth_and_an_unknown_method_is_refused():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:] = 255
    out = display.upscale(img, 32, "lanczos")
    assert out.shape == (32, 32, 3) and len(np.unique(out[0, :, 0])) > 2  # intermediate values at the edge
    with pytest.raises(GalaxySDValueError):
        display.upscale(img, 32, "bilinear-blur")


def test_difference_image_is_black_where_equal_and_bright_where_different():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a.copy()
    b[4:8, 4:8] = 200
    heat, mean = display.difference_image(a, b)
    assert heat.shape == a.shape and heat.dtype == np.uint8
    assert (heat[0, 0] == 0).all() and (heat[5, 5] == 255).all()
    assert mean == pytest.approx(100 * 16 / 256)
    same, zero = display.difference_image(a, a)
    assert zero == 0 and not same.any()
    with pytest.raises(GalaxySDValueError, match="shape"):
        display.difference_image(a, a[:8])


# ----------------------------------------------------------------------------- sky links
def test_positions_from_gz2_cutout_names_match_their_catalog_coordinates():
    labels = {"J165028.64+384910.0": (252.619, 38.8195), "J130612.44-030441.3": (196.552, -3.07813)}
    for name, (ra, dec) in labels.items():  # the ra/dec columns of gz2_cutouts/labels.csv
        p = sky_links.candidate_position(None, None, name)
        assert p.origin == "name" and abs(p.ra - ra) < 1e-3 and abs(p.dec - dec) < 1e-3
    assert sky_links.position_from_name("SDSS J130612.44-030441.3")[1] < 0
    for bad in ("587731890041389215", "sloan-6_x-4_2", "J996028.64+384910.0", "", None):
        assert sky_links.position_from_name(bad) is None


def test_catalog_coordinates_win_and_links_are_skyserver_dr18_and_legacy_dr10():
    p = sky_links.candidate_position(10.5, -5.25, "J165028.64+384910.0")
    assert (p.ra, p.dec, p.origin) == (10.5, -5.25, "catalog")
    assert p.skyserver == "https://skyserver.sdss.org/dr18/VisualTools/explore/summary?ra=10.500000&dec=-5.250000"
    assert p.legacy == ("https://www.legacysurvey.org/viewer?ra=10.500000&dec=-5.250000&layer=ls-dr10&zoom=16"
                        "&mark=10.500000%2C-5.250000")
    assert sky_links.candidate_position(float("nan"), 1.0, "x") is None
    assert sky_links.candidate_position(400, 1.0, "J165028.64+384910.0").origin == "name"
    assert sky_links.dr7_explore_url("587731890041389215").endswith("obj.asp?id=587731890041389215")
    assert sky_links.dr7_explore_url("J165028.64+384910.0") is None and sky_links.dr7_explore_url("12345") is None


# ----------------------------------------------------------------------------- vetting formats
def test_probabilities_are_shown_with_three_significant_digits_and_ids_in_full():
    assert vetting.format_value(0.4773231234567891) == "0.477"
    assert vetting.format_value(np.float64(0.0183451)) == "0.0183"
    assert vetting.format_value(np.int64(587731890041389215)) == "587731890041389215"
    assert vetting.format_value(float("nan")) == "–" and vetting.format_value("J1650+38") == "J1650+38"
    assert vetting.probability_columns(["id", "p_dust_lane", "score", "smooth_prob", "rank"]) == ["p_dust_lane",
                                                                                                  "smooth_prob"]
    s = vetting.confirmation_summary({"total": 10, "vetted": 4, "yes": 1, "no": 3})
    assert s["confirmed"] == 1 and s["share_vetted"] == 0.4 and s["share_confirmed"] == 0.25
    assert vetting.confirmation_summary({"total": 3, "vetted": 0, "yes": 0})["share_confirmed"] is None


# ----------------------------------------------------------------------------- model facts
@pytest.fixture
def model_folder(tmp_path):
    f = tmp_path / "galaxysd-x"
    (f / "unet").mkdir(parents=True)
    (f / "vae").mkdir()
    (f / "metrics").mkdir()
    (f / "unet" / "config.json").write_text(json.dumps({"sample_size": 32}))
    (f / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [32, 64, 64]}))
    (f / "training_captions.json").write_text(json.dumps(
        {"feature_counts": {"smooth": 500, "merger": 29, "dust lane": 30, "ring galaxy": 1}, "n_images": 700,
         "step": 1234}))
    (f / "README.md").write_text("# GalaxySD-x\n\nA test model that draws galaxies.\n\n## Details\n\nmore\n")
    pd.DataFrame({"prompt": ["sdss, smooth", "sdss, smooth", "sdss, merger"], "sweep_variable": "guidance",
                  "guidance": [3.0, 6.5, 6.5], "n": 64, "consistency": [0.5, 0.9, 0.7]}).to_csv(
        f / "metrics" / "evaluation.csv", index=False)
    return f


def test_model_facts_come_from_the_folder_not_from_constants(model_folder):
    facts = model_facts.model_facts(model_folder, guidance=6.0)
    assert facts.image_size == 128 and facts.n_images == 700 and facts.step == 1234  # 32 x 2**2
    assert facts.card["title"] == "GalaxySD-x" and facts.card["summary"] == "A test model that draws galaxies."
    assert facts.well_seen() == ["smooth", "dust lane"]  # 30 is not below the threshold
    assert facts.rare() == ["merger", "ring galaxy"]
    assert "spiral galaxy" in facts.never() and "smooth" not in facts.never()
    assert facts.measured.to_dict("list")["consistency"] == [0.9, 0.7]  # guidance 6.5, the closest to 6
    assert model_facts.seen_label("merger", facts.counts) == "29 captions · rarely seen: expect extrapolation"
    assert model_facts.seen_label("smooth", facts.counts) == "500 captions"
    assert model_facts.seen_label("spiral galaxy", facts.counts) == "never seen: pure extrapolation"
    assert model_facts.seen_label("smooth", None) == "" and not model_facts.is_rare("smooth", None)


def test_model_facts_of_an_empty_folder_are_unknown(tmp_path):
    facts = model_facts.model_facts(tmp_path)
    assert facts.counts is None and facts.image_size is None and facts.measured is None and facts.never() == []


def test_training_crops_read_the_caches_the_model_was_trained_on(model_folder, tmp_path):
    cache = tmp_path / "cache" / "gz2_cutouts_128"
    cache.mkdir(parents=True)
    (cache / "prepare_config.json").write_text(json.dumps({"crop_fraction": 1.0, "resolution": 128}))
    pd.DataFrame({"id": ["a"], "source": ["gz2_cutouts"]}).to_csv(cache / "index.csv", index=False)
    (model_folder / "train_config.yaml").write_text("caches:\n- cache/gz2_cutouts_128\n- cache/missing\n")
    assert model_facts.training_crops(model_folder, root=tmp_path) == {"gz2_cutouts": 1.0}
    assert model_facts.training_crops(tmp_path) == {}


# ----------------------------------------------------------------------------- colours
def test_prompt_families_have_one_colour_each():
    assert palette.prompt_family("sdss, smooth, completely round galaxy") == "round"
    assert palette.prompt_family("sdss, features or disk-shaped, {spiral galaxy:1.3}") == "spiral"
    assert palette.prompt_family("sdss, edge-on galaxy") == "edge-on"
    assert palette.prompt_family("sdss, ring galaxy") == "odd feature"
    assert palette.prompt_family("not a prompt {") == "other"
    assert len(set(palette.FAMILY_COLOURS.values())) == len(palette.FAMILY_COLOURS)
    assert not set(palette.GREYS) & set(palette.FAMILY_COLOURS.values())  # greys never mean a family
    sym = palette.prompt_symbols(["sdss, smooth, completely round galaxy", "sdss, smooth, completely round galaxy, "
                                  "dust lane", "sdss, merger"])
    assert len(set(sym.values())) == 2 and sym["sdss, merger"] == "circle"


def test_real_galaxies_are_framed_like_the_training_data():
    from galaxysd_core.studio.real_data import default_source, with_training_crops

    index = pd.DataFrame({"id": ["a", "b", "c"], "source": ["gz2_cutouts", "gz1_sdss", "mine"],
                          "crop": [0.5, 0.35, 0.5]})
    out, how = with_training_crops(index, {"gz1_sdss": 0.3})
    assert out["crop"].tolist() == [1.0, 0.3, 0.5]  # scale-matched, the model's own crop, the default
    assert how == {"gz1_sdss": "training", "gz2_cutouts": "scale-matched"}
    assert index["crop"].tolist() == [0.5, 0.35, 0.5]  # the cached index is not changed in place
    assert default_source(index) == "gz2_cutouts" and default_source(index[index.source != "gz2_cutouts"]) is None


def test_vetting_view_zoom_stretch_and_invert():
    from galaxysd_core.errors import GalaxySDValueError
    from galaxysd_core.studio.display import vetting_view

    img = np.zeros((64, 64, 3), np.uint8)
    img[28:36, 28:36] = 200  # a bright core
    img[:, :8] = 10  # faint light at the edge
    same = vetting_view(img)
    np.testing.assert_array_equal(same, img)
    z = vetting_view(img, zoom=4.0)
    assert z.shape == img.shape and (z > 150).mean() > 4 * (img > 150).mean()  # the core fills more of the frame
    s = vetting_view(img, stretch="asinh")
    assert s[0, 0, 0] > 3 * img[0, 0, 0] and s[32, 32, 0] >= img[32, 32, 0]  # faint light lifted, core kept
    inv = vetting_view(img, invert=True)
    np.testing.assert_array_equal(inv.astype(int), 255 - img.astype(int))
    with pytest.raises(GalaxySDValueError):
        vetting_view(img, stretch="log")
    with pytest.raises(GalaxySDValueError):
        vetting_view(img, zoom=0.5)
