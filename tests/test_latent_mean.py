"""Sampling around the mean training latent (pipelines/latent_mean.py): measurement, the model-folder
file, the start latents of each sampler, the pipeline switch, and that training and the release write it."""
import shutil

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.pipelines.latent_mean import (LATENT_MEAN_FILE, initial_latents, load_latent_mean,
                                                 measure_latent_mean, save_latent_mean)
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

SMOOTH = "sdss, smooth, completely round galaxy"
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def test_mean_is_the_average_over_images_and_the_eight_flips_and_rotations():
    z = torch.zeros(2, 1, 4, 4)
    z[0, 0, 0, 0] = 8.0  # one bright corner pixel in one of two images
    plain = measure_latent_mean(z, dihedral=False)
    assert plain[0, 0, 0] == 4.0 and plain.sum() == 4.0
    sym = measure_latent_mean([z[:1], z[1:]], dihedral=True)  # batches give the same as one tensor
    # the corner spreads over the 4 corners (rotations map corners to corners; flips too)
    np.testing.assert_allclose(sym[0].numpy(), np.array([[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1.]]))
    assert torch.equal(sym, torch.rot90(sym, 1, dims=(1, 2))) and torch.equal(sym, torch.flip(sym, dims=(2,)))
    with pytest.raises(GalaxySDValueError, match="no latents"):
        measure_latent_mean([])
    with pytest.raises(GalaxySDValueError, match="square"):
        measure_latent_mean(torch.zeros(1, 1, 2, 4))
    with pytest.raises(GalaxySDValueError, match="NaN"):
        measure_latent_mean(torch.full((1, 1, 2, 2), float("nan")))


def test_folder_file_round_trip_and_bad_files_are_named(tmp_path):
    mean = torch.arange(8.0).reshape(2, 2, 2)
    save_latent_mean(tmp_path, mean, {"n_images": 3})
    assert torch.equal(load_latent_mean(tmp_path, (2, 2, 2)), mean)
    assert load_latent_mean(tmp_path / "missing") is None
    with pytest.raises(GalaxySDFileError, match="UNet expects"):
        load_latent_mean(tmp_path, (4, 2, 2))
    (tmp_path / LATENT_MEAN_FILE).write_bytes(b"not safetensors")
    with pytest.raises(GalaxySDFileError, match=LATENT_MEAN_FILE) as info:
        load_latent_mean(tmp_path)
    assert "not safetensors" not in str(info.value)  # no file content in the message


def test_start_latents_are_the_first_timestep_marginal_around_the_mean():
    noise = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    mean = torch.full((2, 4, 4), -1.5)
    ddim = DDIMScheduler(**SD_SCHEDULE, set_alpha_to_one=False, steps_offset=1)
    ddim.set_timesteps(20)
    t0 = ddim.timesteps[:1]
    assert torch.equal(initial_latents(noise, None, ddim, t0), noise * ddim.init_noise_sigma)
    ab = ddim.alphas_cumprod[int(t0)]
    expected = ab.sqrt() * mean + (1 - ab).sqrt() * noise
    torch.testing.assert_close(initial_latents(noise, mean, ddim, t0), expected)
    assert int(t0) == 951 and float(ab.sqrt()) == pytest.approx(0.0903, abs=1e-3)  # SD keeps 9% signal here
    euler = EulerDiscreteScheduler(**SD_SCHEDULE, steps_offset=1)
    euler.set_timesteps(20)
    sigma = float(euler.sigmas[0])  # Euler works on x0 + sigma * noise
    torch.testing.assert_close(initial_latents(noise, mean, euler, euler.timesteps[:1]), mean + sigma * noise)


def test_pipeline_starts_around_the_folder_mean_when_it_has_one(saved, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    plain = load_pipeline(folder)
    assert plain.latent_mean is None
    base = plain(SMOOTH, seed=1, num_inference_steps=3, output_type="latent")
    assert base.parameters["latent_mean"] is False
    c, s = plain.unet.config.in_channels, plain.unet.config.sample_size
    save_latent_mean(folder, torch.full((c, s, s), 3.0))
    pipe = load_pipeline(folder)
    used = pipe(SMOOTH, seed=1, num_inference_steps=3, output_type="latent")
    off = pipe(SMOOTH, seed=1, num_inference_steps=3, output_type="latent", latent_mean=False)
    assert used.parameters["latent_mean"] is True and off.parameters["latent_mean"] is False
    torch.testing.assert_close(off.images, base.images)  # switched off = the folder without the file
    assert float((used.images - off.images).mean()) > 0.05  # a positive mean pulls the result up
    again = pipe(SMOOTH, seed=1, num_inference_steps=3, output_type="latent")
    torch.testing.assert_close(again.images, used.images)  # still reproducible per seed
    start = np.full((s * pipe.vae_scale_factor, s * pipe.vae_scale_factor, 3), 40, np.uint8)
    img2img = pipe(SMOOTH, seed=1, num_inference_steps=3, image=start, strength=0.5, output_type="np")
    assert img2img.parameters["latent_mean"] is False  # img2img starts from its image, not the mean
    (folder / LATENT_MEAN_FILE).write_bytes(b"\x00" * 20)
    with pytest.raises(GalaxySDFileError, match=LATENT_MEAN_FILE):
        load_pipeline(folder)


def test_release_helper_measures_the_mean_from_a_runs_latent_cache(tmp_path, saved):
    from galaxysd_core.evaluation.release import ensure_latent_mean, run_latent_mean
    from galaxysd_core.training.latent_cache import encode_latent_cache

    pipe = load_pipeline(saved)
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    cache = encode_latent_cache(pipe.vae, images, tmp_path / "run" / "latents", size=32, show_progress=False)
    mean = run_latent_mean(tmp_path / "run")
    z = torch.as_tensor(np.asarray(cache.latents[np.arange(cache.n * cache.copies)]))
    torch.testing.assert_close(mean, measure_latent_mean(z))
    out = tmp_path / "release"
    out.mkdir()
    assert ensure_latent_mean(tmp_path / "run", out) and (out / LATENT_MEAN_FILE).is_file()
    assert run_latent_mean(tmp_path / "empty") is None and not ensure_latent_mean(tmp_path / "empty", tmp_path / "x")
