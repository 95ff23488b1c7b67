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
