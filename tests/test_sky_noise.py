"""Sky noise (measured, added after decoding) and the model folder's recommended generation settings."""
import json
import math

import numpy as np
import pytest
import torch

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.pipelines.generation_defaults import FALLBACK, GenerationDefaults
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from galaxysd_core.pipelines.sky_noise import (SkyNoise, kernel_for_lag1, measure_background,
                                               sky_noise_fields, sky_noise_from_backgrounds)

SMOOTH = "sdss, smooth, completely round galaxy"


def _noisy_images(n=40, size=64, level=(20.0, 30.0, 40.0), sigma=(3.0, 5.0, 7.0), kernel=0.0, seed=0):
    noise = SkyNoise(sigma=list(sigma), kernel_sigma=kernel, resolution=size)
    gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    f = sky_noise_fields(noise, gens, size, size).permute(0, 2, 3, 1).numpy()
    return np.clip(np.asarray(level)[None, None, None] + f, 0, 255).round().astype(np.uint8)


def test_measure_background_recovers_level_sigma_and_white_noise():
    bg = measure_background(_noisy_images())
    assert bg.level == pytest.approx([20, 30, 40], abs=0.6)
    assert bg.sigma == pytest.approx([3, 5, 7], rel=0.06)
    assert all(abs(r) < 0.08 for r in bg.lag1)
    assert bg.n_images == 40


def test_correlated_noise_keeps_sigma_and_reaches_the_lag1_of_its_kernel():
    # a bright galaxy in the centre must not bias the frame statistics
    imgs = _noisy_images(kernel=1.0, sigma=(6.0, 6.0, 6.0)).astype(np.float32)
    yy, xx = np.mgrid[0:64, 0:64] - 32
    imgs += (200 * np.exp(-(xx ** 2 + yy ** 2) / 40.0))[None, :, :, None]
    bg = measure_background(np.clip(imgs, 0, 255).astype(np.uint8))
    assert bg.sigma == pytest.approx([6, 6, 6], rel=0.1)
    expected = math.exp(-1 / (4 * 1.0 ** 2))  # 0.78
    assert np.mean(bg.lag1) == pytest.approx(expected, abs=0.06)
    assert kernel_for_lag1(expected) == pytest.approx(1.0, rel=1e-6)
    assert kernel_for_lag1(-0.2) == 0.0


def test_added_noise_is_the_missing_variance():
    real = measure_background(_noisy_images(sigma=(5.0, 5.0, 5.0)))
    smooth = measure_background(_noisy_images(sigma=(3.0, 3.0, 3.0), seed=100))
    noise = sky_noise_from_backgrounds(real, smooth, resolution=64)
    assert noise.sigma == pytest.approx([4.0, 4.0, 4.0], rel=0.1)  # sqrt(25 - 9)
    assert noise.kernel_sigma == 0.0
    # nothing is added where reconstructions are already as noisy as real cutouts
    assert sky_noise_from_backgrounds(smooth, real, 64).sigma == [0.0, 0.0, 0.0]


def test_measure_background_rejects_bad_input():
    with pytest.raises(GalaxySDValueError, match="expected uint8 images"):
        measure_background(np.zeros((4, 64, 64)))


def test_folder_files_round_trip_and_corrupt_files_are_named(tmp_path):
    assert SkyNoise.load(tmp_path) is None and GenerationDefaults.load(tmp_path) is None
    SkyNoise(sigma=[1.0, 2.0, 3.0], kernel_sigma=0.7, resolution=128).save(tmp_path)
    assert SkyNoise.load(tmp_path).sigma == [1.0, 2.0, 3.0]
    GenerationDefaults(guidance_scale=3.0, tree_negatives=False).save(tmp_path)
    assert GenerationDefaults.load(tmp_path) == GenerationDefaults(guidance_scale=3.0, tree_negatives=False)
    (tmp_path / "sky_noise.json").write_text(json.dumps({"sigma": [1, 2], "kernel_sigma": 0, "resolution": 8}))
    with pytest.raises(GalaxySDFileError, match="sky_noise.json"):
        SkyNoise.load(tmp_path)
    (tmp_path / "generation_defaults.json").write_text(json.dumps({"guidance_scale": 99, "tree_negatives": True}))
    with pytest.raises(GalaxySDFileError, match="generation_defaults.json"):
        GenerationDefaults.load(tmp_path)


def test_pipeline_uses_the_folder_defaults_and_adds_seeded_noise(saved, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    plain = load_pipeline(folder)
    assert plain.generation_defaults == FALLBACK and plain.sky_noise is None
    GenerationDefaults(guidance_scale=2.0, tree_negatives=False, num_inference_steps=3).save(folder)
    SkyNoise(sigma=[8.0, 8.0, 8.0], kernel_sigma=0.8, resolution=plain.default_size).save(folder)
    pipe = load_pipeline(folder)
    out = pipe(SMOOTH, seed=3, output_type="np")
    p = out.parameters
    assert (p["guidance_scale"], p["tree_negatives"], p["num_inference_steps"], p["sky_noise"]) == (2.0, False, 3, True)
    explicit = pipe(SMOOTH, seed=3, output_type="np", guidance_scale=2.0, tree_negatives=False,
                    num_inference_steps=3, sky_noise=False)
    assert explicit.parameters["sky_noise"] is False
    diff = out.images.astype(float) - explicit.images.astype(float)
    assert 4.0 < diff.std() < 10.0  # ~8 counts of noise (less where clipped at 0/255)
    again = pipe(SMOOTH, seed=3, output_type="np")
    np.testing.assert_array_equal(out.images, again.images)  # reproducible per seed
    other = pipe(SMOOTH, seed=4, output_type="np", guidance_scale=2.0, tree_negatives=False,
                 num_inference_steps=3)
    assert not np.array_equal(other.images, out.images)


def test_app_widgets_start_at_the_folder_defaults():
    """The Generate and Compare pages start at the model card's chosen settings (issue 13 point 3)."""
    from types import SimpleNamespace

    from galaxysd_core.studio.generation import recommended_ui_settings

    pipe = SimpleNamespace(generation_defaults=GenerationDefaults(guidance_scale=2.3, tree_negatives=False,
                                                                  num_inference_steps=80))
    assert recommended_ui_settings(pipe, max_steps=50) == {"guidance": 2.5, "steps": 50, "tree_negatives": False}
    assert recommended_ui_settings(None, max_steps=50) == {"guidance": FALLBACK.guidance_scale,
                                                           "steps": FALLBACK.num_inference_steps,
                                                           "tree_negatives": FALLBACK.tree_negatives}
    assert recommended_ui_settings(SimpleNamespace(generation_defaults=None), 50)["guidance"] == FALLBACK.guidance_scale
