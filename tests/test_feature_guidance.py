"""Guidance per feature (pipelines.feature_guidance): s = 0 equals plain CFG bit for bit, the
composable-diffusion formula against a hand computation, an expected slice with one feature on,
input checks, and the parameters' round trips through PNG, FITS, A1111 text and "Reuse settings"."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines import feature_guidance as fg
from galaxysd_core.prompts.grammar import parse_prompt

BASE = "sdss, features or disk-shaped, spiral galaxy"
BAR = "bar-shaped structure in the center of galaxy"
TINY = dict(seed=0, num_inference_steps=4, guidance_scale=5.0, num_images_per_prompt=2)


def test_zero_scale_equals_plain_cfg_bit_for_bit(pipe):
    plain = pipe(BASE, output_type="latent", **TINY).images
    zero = pipe(BASE, output_type="latent", feature_guidance={BAR: 0.0}, **TINY).images
    assert torch.equal(plain, zero)
    # a phrase in the prompt at scale 0 is taken out: the base prompt alone
    inside = pipe(f"{BASE}, {BAR}", output_type="latent", feature_guidance=[(BAR, 0)], **TINY).images
    assert torch.equal(plain, inside)
    # no pair at all and an empty list: today's CFG
    assert torch.equal(plain, pipe(BASE, output_type="latent", feature_guidance=[], **TINY).images)


def test_nonzero_scale_changes_the_image_and_grows_with_the_scale(pipe):
    plain = pipe(BASE, output_type="latent", **TINY).images
    d = [float((pipe(BASE, output_type="latent", feature_guidance={BAR: s}, **TINY).images - plain).abs().mean())
         for s in (2.0, 8.0)]
    assert 0 < d[0] < d[1]


def test_combine_is_the_composable_formula():
    n, g = 2, 3.0
    neg, base, f1, f2 = (torch.full((n, 1), v) for v in (1.0, 2.0, 5.0, -1.0))
    out = fg.combine(torch.cat([neg, base, f1, f2]), n, g, True, (0.5, 2.0))
    # neg + g (base - neg) + 0.5 (f1 - base) + 2 (f2 - base) = 1 + 3 + 1.5 - 6 = -0.5
    np.testing.assert_allclose(out.numpy(), -0.5)
    np.testing.assert_allclose(fg.combine(torch.cat([base, f1]), n, g, False, (0.5,)).numpy(), 3.5)
    with pytest.raises(GalaxySDValueError):
        fg.combine(torch.cat([neg, base, f1]), n, g, True, (1.0, 2.0))


def test_scale_equal_to_guidance_is_plain_cfg_with_the_feature(pipe):
    """s = g gives eps(neg) + g (eps(base + f) - eps(neg)): the plain prompt with the feature (up to float)."""
    with_bar = pipe(f"{BASE}, {BAR}", output_type="latent", **TINY).images
    guided = pipe(BASE, output_type="latent", feature_guidance={BAR: TINY["guidance_scale"]}, **TINY).images
    np.testing.assert_allclose(guided.numpy(), with_bar.numpy(), atol=2e-4)


def test_expected_slice_with_one_feature_on(pipe):
    latents = pipe(BASE, output_type="latent", feature_guidance={BAR: 4.0}, **TINY).images
    got = latents[0, 0, -3:, -3:].numpy()
    expected = EXPECTED_BAR4
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=1e-3)


#: From one run (fp32 CPU, torch 2.13), after the formula was checked by the two tests above.
EXPECTED_BAR4 = np.array([[-2.0304, -6.5460, -1.0437], [3.2137, 4.3396, -7.7000], [0.0446, 6.0717, 0.8662]])


def test_branches_remove_and_add_phrases_keeping_weights():
    p = parse_prompt(f"sdss, {{smooth:1.2}}, {BAR}, merger")
    b = fg.branches_for(p, [(BAR, 3.0), ("dust lane", -1.0), ("merger", 0.0)])
    assert b.base.text == "sdss, smooth"
    assert b.base.words == ("sdss", ",", "smooth")
    assert b.base.weights == (1.0, 1.0, 1.2)
    assert [x.text for x in b.with_feature] == [f"sdss, smooth, {BAR}", "sdss, smooth, dust lane"]
    assert b.scales == (3.0, -1.0)  # merger at 0 is left out of the branches, and out of the base
    assert b.intended.text == f"sdss, smooth, {BAR}"  # the automatic negative is made from it
    first = fg.branches_for(parse_prompt(f"{BAR}, sdss"), [(BAR, 2.0)])
    assert first.base.words == ("sdss",)


@pytest.mark.parametrize("spec, match", [
    ({"no such feature": 1.0}, "unknown feature"),
    ({BAR: float("nan")}, "finite|number in"),
    ({BAR: 241.0}, "number in"),
    ([(BAR, 1.0), (BAR, 2.0)], "twice"),
    (["dust lane"], "PHRASE=SCALE"),
    (["dust lane=abc"], "must be a number"),
    ([("a, b", 1.0)], "one caption phrase"),
    ({f"x{i}": 1.0 for i in range(9)}, "at most 8|unknown"),
])
def test_bad_feature_guidance_is_refused_with_a_clear_message(pipe, spec, match):
    with pytest.raises(GalaxySDValueError, match=match):
        pipe(BASE, feature_guidance=spec, **TINY)


def test_cli_form_and_parameters_round_trip_through_png_fits_and_a1111(pipe):
    from galaxysd_core.io.a1111 import format_a1111_parameters, parse_a1111_parameters
    from galaxysd_core.io.fits import fits_bytes, read_fits
    from galaxysd_core.io.png import png_bytes, read_png_parameters
    from galaxysd_core.io.provenance import provenance

    out = pipe(BASE, output_type="np", feature_guidance=[f"{BAR}=4", "dust lane=-1.5"], **TINY)
    assert out.parameters["feature_guidance"] == [[BAR, 4.0], ["dust lane", -1.5]]
    png = png_bytes(out.images[0], out.prompts[0], out.seeds[0], out.parameters)
    assert read_png_parameters(png)["feature_guidance"] == [[BAR, 4.0], ["dust lane", -1.5]]
    text = format_a1111_parameters(provenance(out.prompts[0], out.seeds[0], out.parameters))
    assert 'Feature guidance: "' not in text or "dust lane=-1.5" in text
    assert parse_a1111_parameters(text)["feature_guidance"] == [[BAR, 4.0], ["dust lane", -1.5]]
    _, info = read_fits(fits_bytes(out.images[0], out.prompts[0], out.seeds[0], out.parameters))
    assert info["feature_guidance"] == [[BAR, 4.0], ["dust lane", -1.5]]
    # the same image again from what was stored
    again = pipe(BASE, output_type="np", feature_guidance=read_png_parameters(png)["feature_guidance"], **TINY)
    np.testing.assert_array_equal(again.images, out.images)


def test_reuse_settings_restores_the_slider_strengths(pipe):
    from galaxysd_core.studio import controls, generation

    strengths = {BAR: 2.75, "spiral galaxy": 1.0}
    req = generation.GenerationRequest(prompt=f"{BASE}, {BAR}", n_images=1, steps=2, guidance=1.5, seed=3,
                                       feature_guidance=controls.feature_scales(strengths, 1.5))
    assert req.feature_guidance == {BAR: 4.125}  # strength 1 = the plain prompt: no branch
    items = generation.generate(pipe, req)
    settings, notes = generation.reuse_settings(items[0])
    assert settings["feature_strengths"] == {BAR: 2.75} and settings["guidance"] == 1.5 and not notes
    again = generation.generate(pipe, generation.GenerationRequest(
        prompt=settings["prompt"], n_images=1, steps=settings["steps"], guidance=settings["guidance"],
        seed=settings["seed"], feature_guidance=controls.feature_scales(settings["feature_strengths"],
                                                                        settings["guidance"])))
    np.testing.assert_array_equal(again[0].image, items[0].image)
    changes = generation.settings_changes(generation.request_settings(req), generation.request_settings(
        generation.GenerationRequest(prompt=req.prompt, n_images=1, steps=2, guidance=1.5, seed=3)))
    assert any("feature guidance" in c for c in changes)
