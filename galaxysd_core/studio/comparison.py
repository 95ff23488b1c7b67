"""Real against generated galaxies on the Real vs synthetic page: light-profile statistics.

The statistics (half-light radius, concentration, asymmetry, ellipticity, g-r colour) and the
1-D Wasserstein distances come from :mod:`galaxysd_core.evaluation.metrics.physical`; they are
measured on the cutouts as shown, not on calibrated photometry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np
import pandas as pd

from galaxysd_core.evaluation.metrics.physical import STATS, compare_physical, physical_stats


@dataclass
class LightProfiles:
    """Light-profile statistics of a real and a generated sample, and their distances per statistic."""

    real: pd.DataFrame
    generated: pd.DataFrame
    distances: Dict[str, float]

    def summary(self) -> str:
        """One line: sample sizes and the Wasserstein distance of every statistic."""
        return (f"{len(self.real)} real vs {len(self.generated)} generated. 1-D Wasserstein distances: "
                + ", ".join(f"{s} {self.distances[f'wasserstein_{s}']:.3g}" for s in STATS)
                + ". Measured on the cutouts as shown (not calibrated photometry).")


def compare_light_profiles(real_images: np.ndarray, generated_images: np.ndarray) -> LightProfiles:
    """Statistics of both uint8 batches ``(N, H, W, 3)`` and their 1-D Wasserstein distances."""
    real, generated = physical_stats(real_images), physical_stats(generated_images)
    return LightProfiles(real=real, generated=generated, distances=compare_physical(real, generated))
