"""Expected outputs, diffusers style (issue 11, point 6): a few values of the tiny random model's
txt2img, img2img and weighted outputs at a fixed seed, and summary statistics of the shipped
GalaxySD-mini's images.

The values come from one run of the code (fp32 CPU, torch 2.13) and were checked by eye: the shipped
model draws a dark sky with a bright, round or elongated galaxy in the middle, never black or NaN.
Tolerances survive fp32 differences between CPUs (1 vs 2 torch threads change the tiny model's
latents by 1.4e-5): 1e-3 on latents and embeddings, 2 levels of 255 on 8-bit pixels, 1e-2 on the
shipped model's per-channel statistics in [0, 1]."""
from pathlib import Path

import numpy as np
import pytest
import torch

from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.prompts.weighting import encode_weighted_prompts
from tiny_models import build_tiny_pipeline

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "galaxysd-mini"
ROUND = "sdss, smooth, completely round galaxy"
TINY = dict(seed=0, num_inference_steps=4, guidance_scale=5.0)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "model_index.json").is_file():
        pytest.skip("the shipped model assets/galaxysd-mini is not in this checkout")
    return load_pipeline(SHIPPED)


def _start(size=32):
    y, x = np.mgrid[0:size, 0:size] - size / 2
    return (255 * np.exp(-(x ** 2 + y ** 2) / 50.0))[..., None].repeat(3, -1).astype(np.uint8)


def _sane(images):
    assert np.isfinite(np.asarray(images, dtype=np.float64)).all() and np.asarray(images).std() > 0


def test_txt2img_expected_slice(pipe):
    latents = pipe(ROUND, output_type="latent", **TINY).images
    expected = np.array([[-1.6845, -5.9774, -1.3652], [2.8650, 4.2280, -7.8284], [-0.1743, 5.9663, 0.1644]])
    np.testing.assert_allclose(latents[0, 0, -3:, -3:].numpy(), expected, atol=1e-3, rtol=1e-3)
    image = pipe(ROUND, output_type="np", **TINY).images
    _sane(image)
    expected_px = np.array([[87, 166, 92], [142, 147, 105], [133, 135, 154]])
    np.testing.assert_allclose(image[0, -3:, -3:, -1].astype(int), expected_px, atol=2)


def test_img2img_expected_slice(pipe):
    latents = pipe(ROUND, image=_start(), strength=0.5, output_type="latent", **TINY).images
    expected = np.array([[-0.1871, -1.1431, -0.0925], [0.5625, 0.6883, -1.1096], [-0.1267, 0.9611, 0.0785]])
    np.testing.assert_allclose(latents[0, 0, -3:, -3:].numpy(), expected, atol=1e-3, rtol=1e-3)
    image = pipe(ROUND, image=_start(), strength=0.5, output_type="np", **TINY).images
    _sane(image)
    expected_px = np.array([[79, 137, 104], [115, 101, 113], [157, 122, 152]])
    np.testing.assert_allclose(image[0, -3:, -3:, -1].astype(int), expected_px, atol=2)


def test_weighting_expected_slice(pipe):
    text = "sdss, smooth, {dust lane:1.5}"  # tokens: <s> sdss , smooth , dust lane </s> <pad>...
    emb = encode_weighted_prompts(pipe.text_encoder, pipe.tokenizer, [parse_prompt(text)], 48)
    expected_tag = np.array([[1.4392, -0.4613, -0.6177, -1.8185], [-0.1522, 0.2727, 2.1587, -0.4944]])
    np.testing.assert_allclose(emb[0, 5:7, :4].numpy(), expected_tag, atol=1e-3, rtol=1e-3)
    expected_smooth = np.array([-0.3331, 0.3184, -0.6796, 1.3283])
    np.testing.assert_allclose(emb[0, 3, :4].numpy(), expected_smooth, atol=1e-3, rtol=1e-3)
    latents = pipe(text, output_type="latent", **TINY).images
    expected = np.array([[-1.7086, -5.9208, -1.4400], [2.8095, 4.1550, -7.8134], [-0.1634, 6.0230, 0.0761]])
    np.testing.assert_allclose(latents[0, 0, -3:, -3:].numpy(), expected, atol=1e-3, rtol=1e-3)


def test_shipped_model_smoke(shipped):
    """GalaxySD-mini v2 at its recommended settings (generation_defaults.json, sky noise on, start around
    the mean training latent), fixed seed, 10 DDIM steps: per-channel mean and std of two round galaxies
    and two edge-on ones (values in [0, 1]); the galaxy is the bright middle of a dark SDSS-like sky
    (real cutouts: frame level ~0.03; a zero-mean start gave ~0.13)."""
    assert type(shipped.scheduler).__name__ == "DDIMScheduler"
    cases = [(ROUND, [0.16776, 0.14197, 0.09180], [0.16386, 0.13353, 0.08403]),
             ("sdss, features or disk-shaped, edge-on galaxy", [0.14362, 0.12087, 0.08440],
              [0.16601, 0.13952, 0.09905])]
    for prompt, mean, std in cases:
        out = shipped(prompt, seed=0, num_inference_steps=10, num_images_per_prompt=2, output_type="np")
        assert out.images.shape == (2, 128, 128, 3) and out.seeds == [0, 1]
        im = out.images.astype(np.float64) / 255.0
        np.testing.assert_allclose(im.mean(axis=(0, 1, 2)), mean, atol=1e-2)
        np.testing.assert_allclose(im.std(axis=(0, 1, 2)), std, atol=1e-2)
        assert im[:, 48:80, 48:80].mean() > 5 * im[:, :16, :16].mean(), "a galaxy in the middle of the sky"
        assert im[:, :16, :16].mean() < 0.05, "a dark sky, as in real SDSS cutouts"
        assert out.parameters["latent_mean"] is True


def test_shipped_model_img2img_from_a_float_start_image(shipped):
    """A float start image in [0, 1] keeps its light (it used to become an all-black start)."""
    y, x = np.mgrid[0:128, 0:128] - 64
    light = np.exp(-(x ** 2 + (y / 0.7) ** 2) / (2 * 12.0 ** 2))
    start = np.stack([light, 0.85 * light, 0.6 * light], -1).astype(np.float32) * 0.9
    args = dict(prompt="sdss, smooth, in-between round galaxy", strength=0.3, seed=0, num_inference_steps=10,
                output_type="np")
    out = shipped(image=start, **args).images
    im = out.astype(np.float64) / 255.0
    assert im[:, 56:72, 56:72].mean() > 0.3, "the bright start galaxy is still there"
    np.testing.assert_allclose(im.mean(axis=(0, 1, 2)), [0.0543, 0.0457, 0.0296], atol=1e-2)
    black = shipped(image=np.zeros_like(start), **args).images.astype(np.float64) / 255.0
    assert black[:, 56:72, 56:72].mean() < 0.15
    as_uint8 = (start.astype(np.float64) * 255).round().astype(np.uint8)
    assert np.array_equal(out, shipped(image=as_uint8, **args).images)


def test_shipped_model_weighting_moves_only_the_tag(shipped):
    plain = encode_weighted_prompts(shipped.text_encoder, shipped.tokenizer, [parse_prompt(ROUND)], 48)
    text = "sdss, smooth, {completely round galaxy:1.5}"  # tokens 5-7: completely round galaxy
    emb = encode_weighted_prompts(shipped.text_encoder, shipped.tokenizer, [parse_prompt(text)], 48)
    expected = np.array([[-3.9744, 1.9819, -0.6747, 3.2023], [-3.5476, 1.7707, -0.7714, 2.8771],
                         [-3.2456, 2.0540, -1.1545, 2.9149]])
    np.testing.assert_allclose(emb[0, 5:8, :4].numpy(), expected, atol=1e-3, rtol=1e-3)
    assert torch.allclose(emb[0, 5:8], 1.5 * plain[0, 5:8], atol=1e-6)
    others = torch.ones(48, dtype=torch.bool)
    others[5:8] = False
    assert torch.equal(emb[0, others], plain[0, others]), "padding and the other tags are untouched"
