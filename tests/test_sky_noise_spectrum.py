"""Sky noise with a measured power spectrum (pipelines.sky_noise): the measurement recovers known
spectra and channel correlations, noise drawn from a spectrum has that spectrum again, the folder
file round-trips, and the band ratios of the sharpness figure see the difference."""
import numpy as np
import pytest
import torch

from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.pipelines.sky_noise import (NoiseSpectrum, SkyNoise, measure_noise_spectrum, missing_spectrum,
                                               sky_noise_fields)

CORR = [[1.0, 0.8, 0.5], [0.8, 1.0, 0.6], [0.5, 0.6, 1.0]]


def _steep_spectrum(n=32, amplitude=40.0, slope=3.0):
    freq = (np.arange(1, int(np.ceil(n / np.sqrt(2))) + 1) / n).tolist()
    power = [(amplitude * (np.asarray(freq) / freq[0]) ** -slope * k).tolist() for k in (1.0, 0.7, 0.5)]
    return NoiseSpectrum(freq=freq, power=power, correlation=CORR, patch=n, n_patches=0)


def _draw(noise, n, size, seed=0):
    gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return sky_noise_fields(noise, gens, size, size).permute(0, 2, 3, 1).numpy()


def test_white_noise_has_a_flat_spectrum_at_its_variance_and_no_channel_correlation():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, [3.0, 5.0, 7.0], size=(64, 128, 128, 3)).astype(np.float32) + 50
    s = measure_noise_spectrum(x, trim=0.0)
    assert s.patch == 32 and s.n_patches == 256
    p = np.asarray(s.power)
    np.testing.assert_allclose(p[:, 1:16].mean(axis=1), [9.0, 25.0, 49.0], rtol=0.06)
    assert np.abs(np.asarray(s.correlation) - np.eye(3)).max() < 0.05


def test_noise_drawn_from_a_spectrum_has_that_spectrum_and_correlation():
    spec = _steep_spectrum()
    noise = SkyNoise(sigma=[0, 0, 0], kernel_sigma=0.0, resolution=128, spectrum=spec)
    x = _draw(noise, 48, 128)
    got = measure_noise_spectrum(x, trim=0.0)
    # from the 5th ring on (>= 0.15 cycles per pixel): below, the Hann window leaks power of a steep
    # spectrum into the lowest rings (x1.2-2 at rings 1-4; there the galaxy dominates the images anyway)
    ratio = np.asarray(got.power)[:, 4:16] / np.asarray(spec.power)[:, 4:16]
    assert 0.9 < ratio.min() and ratio.max() < 1.1, ratio.round(2)
    assert np.abs(np.asarray(got.correlation) - np.asarray(CORR)).max() < 0.08
    # reproducible per seed, different across seeds
    np.testing.assert_array_equal(_draw(noise, 2, 128), _draw(noise, 2, 128))
    assert np.abs(_draw(noise, 1, 128, seed=0) - _draw(noise, 1, 128, seed=1)).max() > 1


def test_trimming_drops_patches_with_sources():
    rng = np.random.default_rng(1)
    x = rng.normal(50.0, 4.0, size=(40, 64, 64, 3)).astype(np.float32)
    x[:8, 2:8, 2:8] += 120.0  # a bright star in one corner of 8 images: 8 of 160 patches
    clean = measure_noise_spectrum(x, trim=0.2)
    dirty = measure_noise_spectrum(x, trim=0.0)
    assert np.asarray(clean.power)[:, 1:].mean() == pytest.approx(16.0, rel=0.1)
    assert np.asarray(dirty.power)[:, 1:].mean() > 1.5 * np.asarray(clean.power)[:, 1:].mean()


def test_missing_spectrum_is_clipped_at_zero():
    a, b = _steep_spectrum(amplitude=10.0), _steep_spectrum(amplitude=20.0)
    assert np.asarray(missing_spectrum(a, b).power).max() == 0.0
    np.testing.assert_allclose(missing_spectrum(b, a).power, np.asarray(b.power) / 2, rtol=1e-4, atol=1e-5)


def test_folder_file_round_trips_and_a_bad_spectrum_is_named(tmp_path):
    noise = SkyNoise(sigma=[1.0, 2.0, 3.0], kernel_sigma=1.5, resolution=128, spectrum=_steep_spectrum())
    noise.save(tmp_path)
    back = SkyNoise.load(tmp_path)
    assert back.spectrum.patch == 32 and back.spectrum.correlation == CORR
    np.testing.assert_allclose(back.spectrum.power, noise.spectrum.power)
    old_style = SkyNoise(sigma=[1.0, 2.0, 3.0], kernel_sigma=1.5, resolution=128)
    old_style.save(tmp_path)
    assert SkyNoise.load(tmp_path).spectrum is None
    import json

    data = json.loads((tmp_path / "sky_noise.json").read_text())
    data["spectrum"] = dict(_steep_spectrum().__dict__, power=[[1.0, -1.0]] * 3)
    (tmp_path / "sky_noise.json").write_text(json.dumps(data))
    with pytest.raises(GalaxySDFileError, match="not a valid sky-noise model"):
        SkyNoise.load(tmp_path)


def test_spectrum_scaled_to_the_frame_sigma_draws_noise_of_that_sigma():
    from galaxysd_core.pipelines.sky_noise import spectrum_to_sigma

    spec = spectrum_to_sigma(_steep_spectrum(), [4.0, 3.0, 2.0], 128)
    x = _draw(SkyNoise(sigma=[4.0, 3.0, 2.0], kernel_sigma=0.0, resolution=128, spectrum=spec), 32, 128)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), [4.0, 3.0, 2.0], rtol=0.05)
    # the shape is kept: every ring scaled by the same factor per channel
    k = np.asarray(spec.power) / np.asarray(_steep_spectrum().power)
    np.testing.assert_allclose(k / k[:, :1], 1.0, rtol=1e-3)
