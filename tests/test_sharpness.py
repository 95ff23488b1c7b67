"""Radially averaged power spectra and band ratios (evaluation.sharpness) with expected values."""
from __future__ import annotations

import numpy as np
import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.sharpness import BANDS, band_ratios, radial_power_spectrum


def _galaxies(n=12, size=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    out = []
    for _ in range(n):
        a = rng.uniform(4, 10)
        g = 200 * np.exp(-0.5 * (x ** 2 + (y / 1.5) ** 2) / a ** 2)
        g += 30 * np.sin(x / 1.5) * np.exp(-0.5 * (x ** 2 + y ** 2) / (2 * a) ** 2)  # arm-like ripples
        out.append(np.clip(g + rng.normal(10, 4, g.shape), 0, 255)[..., None].repeat(3, -1))
    return np.stack(out).astype(np.uint8)


def test_identical_sets_have_ratio_one_and_a_blur_removes_middle_power():
    real = _galaxies()
    r = band_ratios(real, real)
    assert r == pytest.approx({"low": 1.0, "middle": 1.0, "high": 1.0})
    # a blur of 1.5 px keeps the light profile (low band) and removes the arms' band and the noise
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(real.astype(float), sigma=(0, 1.5, 1.5, 0))
    b = band_ratios(blurred, real)
    assert b["low"] > 0.8 and b["middle"] < 0.5 and b["high"] < b["middle"]


def test_spectrum_of_a_pure_frequency_peaks_at_it():
    n = 64
    x = np.arange(n)
    img = np.tile(np.sin(2 * np.pi * 0.25 * x), (n, 1))[None]
    f, p = radial_power_spectrum(img)
    assert f[np.argmax(p)] == pytest.approx(0.25, abs=1 / n)
    assert set(BANDS) == {"low", "middle", "high"}
    with pytest.raises(GalaxySDValueError):
        radial_power_spectrum(np.zeros((2, 8, 9)))


def _ripples(n=16, size=128, noise=0.0, seed=0):
    """Galaxies with arm-like ripples at ~0.24 cycles per pixel in the centre and sky noise of
    ``noise`` counts (white, the same in all channels) everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    out = []
    for _ in range(n):
        a = rng.uniform(8, 12)
        g = 120 * np.exp(-0.5 * (x ** 2 + y ** 2) / a ** 2)
        g += 25 * np.sin(1.5 * x + rng.uniform(0, 6)) * np.exp(-0.5 * (x ** 2 + y ** 2) / (1.5 * a) ** 2)
        g = g[..., None].repeat(3, -1) + 40 + (rng.normal(0, noise, (size, size, 1)) if noise else 0)
        out.append(g)
    return np.clip(np.stack(out), 0, 255).astype(np.float32)


def test_noise_floor_is_the_power_of_the_sky_alone():
    from galaxysd_core.evaluation.sharpness import noise_floor

    noisy = _ripples(noise=6.0)
    sky = _ripples(noise=6.0, seed=1) * 0 + 40 + np.random.default_rng(2).normal(0, 6, noisy.shape[:3] + (1,))
    f, p_sky = radial_power_spectrum(sky)
    floor = noise_floor(noisy, f)
    m = (f > BANDS["middle"][0]) & (f <= BANDS["high"][1])
    assert floor[m].sum() / p_sky[m].sum() == pytest.approx(1.0, rel=0.12)


def test_structure_ratio_sees_the_ripples_through_the_noise_and_not_a_blur():
    from scipy.ndimage import gaussian_filter

    from galaxysd_core.evaluation.sharpness import structure_ratios

    real = _ripples(noise=16.0)
    clean = _ripples(noise=0.0)  # the same galaxies without sky noise
    r = structure_ratios(clean, real)
    assert 0.3 < r["real_noise_share"]["middle"] < 0.95
    assert r["structure"]["middle"] == pytest.approx(1.0, abs=0.25)
    blurred = structure_ratios(gaussian_filter(clean, sigma=(0, 2, 2, 0)), real)
    assert blurred["structure"]["middle"] < 0.2
    # the total band ratio of clean images is low only because the real power is mostly noise
    assert band_ratios(clean, real)["middle"] < r["structure"]["middle"]
