"""Matching the apparent size of galaxies between sources: a crop fraction chosen by measurement.

Sources frame their galaxies differently: ``gz1_sdss`` cutouts (423 px) show the galaxy small,
the GZ2 release images (424 px at 0.02 x ``petroR90_r`` per pixel, Willett et al. 2013) frame it
more tightly, and ``gz2_cutouts`` (128 px at 0.2"/px) have it fill the frame. A model trained on a
mix should see galaxies at one scale, so each source is centre-cropped until the median
half-light radius, as a fraction of the frame side, matches a reference.

Reference: :data:`REFERENCE_R50_FRACTION` = 0.198, the median ``r50 / side`` of 150 ``gz2_cutouts``
galaxies at full frame (16th-84th percentile 0.16-0.23), measured with
:func:`galaxysd_core.data.morphometry.light_profile_stats` (circular apertures about the light
centroid, background from the border). Measured the same way, the crops in use give
``gz1_sdss`` 0.186 at crop 0.35 (0.204 at 0.30) and ``gz2_examples`` 0.169 at crop 0.5 (0.193 at
0.40); :func:`match_crop_fraction` finds the crop of any new source by bisection, since ``r50 /
side`` falls monotonically as more of the frame is kept.
"""
from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError, ImageRejected

logger = logging.getLogger(__name__)

#: Median half-light radius / frame side of ``gz2_cutouts`` at full frame (see module docstring).
REFERENCE_R50_FRACTION = 0.198
#: Galaxies measured per trial crop (enough for a median to +-0.005 on these sources).
DEFAULT_SAMPLE = 150
#: Resolution the measurement decodes to (pixels); r50 / side does not depend on it above ~64 px.
MEASURE_RESOLUTION = 128


@dataclass(frozen=True)
class ScaleMeasurement:
    """Median and 16th/84th percentiles of ``r50 / side`` of a sample at one crop fraction."""

    crop_fraction: float
    median: float
    p16: float
    p84: float
    n: int


def measure_r50_fraction(paths: Sequence[os.PathLike], crop_fraction: float, *,
                         resolution: int = MEASURE_RESOLUTION) -> ScaleMeasurement:
    """Half-light radius as a fraction of the frame side, over images decoded at ``crop_fraction``.

    Unreadable images are left out (they are reported by the preparation itself).
    """
    from galaxysd_core.data.decode import load_image
    from galaxysd_core.data.morphometry import light_profile_stats

    values: List[float] = []
    for p in paths:
        try:
            img = load_image(p, resolution=resolution, crop_fraction=crop_fraction)
        except ImageRejected:
            continue
        r50 = light_profile_stats(img)["r50"]
        if math.isfinite(r50):
            values.append(r50 / resolution)
    if not values:
        raise GalaxySDDataError("no readable image to measure the galaxy scale on")
    v = np.asarray(values)
    return ScaleMeasurement(float(crop_fraction), float(np.median(v)), float(np.percentile(v, 16)),
                            float(np.percentile(v, 84)), len(v))


def sample_paths(paths: Sequence[os.PathLike], n: int = DEFAULT_SAMPLE, seed: int = 0) -> List[os.PathLike]:
    """A reproducible random sample of at most ``n`` paths."""
    paths = [p for p in paths if p]
    if len(paths) <= n:
        return list(paths)
    return random.Random(seed).sample(list(paths), n)


def match_crop_fraction(paths: Sequence[os.PathLike], target: float = REFERENCE_R50_FRACTION, *,
                        bounds: Tuple[float, float] = (0.15, 1.0), tolerance: float = 0.005,
                        max_steps: int = 8, n: int = DEFAULT_SAMPLE, seed: int = 0
                        ) -> Tuple[float, List[ScaleMeasurement]]:
    """Crop fraction at which the median ``r50 / side`` of a source matches ``target``.

    Parameters
    ----------
    paths : sequence of path-like
        Image files of the source (a sample of ``n`` is measured).
    target : float
        Wanted median half-light radius as a fraction of the frame side.
    bounds : (float, float)
        Range of crop fractions searched.
    tolerance : float
        Stop when the median is within this of ``target``.

    Returns
    -------
    crop_fraction : float
        Rounded to 0.01; a bound when the target lies outside what the bounds reach.
    trials : list of ScaleMeasurement
        Every crop measured, for the preparation config.
    """
    if not 0 < target < 0.5:
        raise GalaxySDValueError(f"target r50 fraction must be in (0, 0.5), got {target}")
    lo, hi = bounds
    if not 0 < lo < hi <= 1:
        raise GalaxySDValueError(f"crop bounds must satisfy 0 < lo < hi <= 1, got {bounds}")
    sample = sample_paths(paths, n, seed)
    trials: List[ScaleMeasurement] = []

    def at(c: float) -> float:
        m = measure_r50_fraction(sample, c)
        trials.append(m)
        logger.info("crop %.3f: median r50/side %.3f (n=%d)", c, m.median, m.n)
        return m.median

    # r50/side decreases as the kept fraction grows: bisect on the crop
    if at(hi) >= target:
        return round(hi, 2), trials
    if at(lo) <= target:
        return round(lo, 2), trials
    for _ in range(max_steps):
        mid = 0.5 * (lo + hi)
        value = at(mid)
        if abs(value - target) <= tolerance:
            return round(mid, 2), trials
        lo, hi = (mid, hi) if value > target else (lo, mid)
    return round(0.5 * (lo + hi), 2), trials


def matched_crop_for_records(records, target: Optional[float] = None) -> Tuple[float, dict]:
    """:func:`match_crop_fraction` over the image paths of ``records``; returns the crop and a
    JSON-ready description of the measurement (for ``prepare_config.json``)."""
    paths = [r.image_path for r in records if getattr(r, "image_path", None)]
    target = REFERENCE_R50_FRACTION if target is None else float(target)
    crop, trials = match_crop_fraction(paths, target)
    return crop, {"method": "median half-light radius / frame side matched to the reference",
                  "target_r50_fraction": target, "crop_fraction": crop,
                  "trials": [t.__dict__ for t in trials]}
