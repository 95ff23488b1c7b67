"""Scale matching between sources (galaxysd_core.data.scale): the crop that gives a wanted half-light radius."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from galaxysd_core.data.scale import match_crop_fraction, measure_r50_fraction
from galaxysd_core.errors import GalaxySDValueError


def _galaxies(folder, sigma_px, n=6, side=200):
    """Gaussian 'galaxies' of known size: r50 of a circular Gaussian = sigma * sqrt(2 ln 2)."""
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = 230 * np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma_px ** 2)) + 10 + rng.normal(0, 1.5, (side, side))
        rgb = np.clip(np.stack([img] * 3, -1), 0, 255).astype(np.uint8)
        path = folder / f"g{i}.png"
        Image.fromarray(rgb).save(path)
        paths.append(path)
    return paths


def test_measure_and_match_a_known_size(tmp_path):
    paths = _galaxies(tmp_path, sigma_px=12.0)
    r50_fraction_full = 12.0 * np.sqrt(2 * np.log(2)) / 200  # 0.0706 of the frame at crop 1
    full = measure_r50_fraction(paths, 1.0)
    assert full.median == pytest.approx(r50_fraction_full, rel=0.1)
    # keeping half the frame doubles the apparent size
    assert measure_r50_fraction(paths, 0.5).median == pytest.approx(2 * r50_fraction_full, rel=0.1)
    crop, trials = match_crop_fraction(paths, target=0.2, bounds=(0.2, 1.0))
    assert crop == pytest.approx(r50_fraction_full / 0.2, abs=0.03)  # 0.35
    assert trials[-1].median == pytest.approx(0.2, abs=0.01)
    # a target the bounds cannot reach returns the bound
    assert match_crop_fraction(paths, target=0.05)[0] == 1.0


def test_match_refuses_bad_settings(tmp_path):
    with pytest.raises(GalaxySDValueError, match="target"):
        match_crop_fraction([], target=0.7)
    with pytest.raises(GalaxySDValueError, match="bounds"):
        match_crop_fraction([], bounds=(0.5, 0.2))
