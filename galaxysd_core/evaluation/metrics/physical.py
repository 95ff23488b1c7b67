"""Real-vs-generated comparison of light-profile statistics.

The statistics themselves (half-light radius, concentration, asymmetry, ellipticity, colour proxy;
definitions and references there) are measured by :mod:`galaxysd_core.data.morphometry`; this module
compares their distributions (1-D Wasserstein distances) and summarises them for benchmarks.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np

from galaxysd_core.data.morphometry import STAT_UNITS, STATS, light_profile_stats, physical_stats

__all__ = ["STATS", "STAT_UNITS", "light_profile_stats", "physical_stats", "compare_physical", "summarize_physical"]


def compare_physical(real_stats, fake_stats, stats: Sequence[str] = STATS) -> Dict[str, float]:
    """1-D Wasserstein distance (``scipy.stats.wasserstein_distance``) per statistic.

    NaN values are dropped per statistic; a statistic with no finite value on one side gives NaN.
    Keys are ``wasserstein_<stat>`` in the units of the statistic (:data:`STAT_UNITS`).
    """
    from scipy.stats import wasserstein_distance

    out: Dict[str, float] = {}
    for s in stats:
        a = np.asarray(real_stats[s], dtype=float)
        b = np.asarray(fake_stats[s], dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        out[f"wasserstein_{s}"] = float(wasserstein_distance(a, b)) if len(a) and len(b) else math.nan
    return out


def summarize_physical(stats_table, stats: Sequence[str] = STATS) -> Dict[str, Dict[str, float]]:
    """Median and 16th/84th percentiles per statistic (for the real-image benchmark JSON)."""
    out: Dict[str, Dict[str, float]] = {}
    for s in stats:
        v = np.asarray(stats_table[s], dtype=float)
        v = v[np.isfinite(v)]
        out[s] = ({"median": float(np.median(v)), "p16": float(np.percentile(v, 16)),
                   "p84": float(np.percentile(v, 84)), "n": int(len(v))} if len(v) else
                  {"median": math.nan, "p16": math.nan, "p84": math.nan, "n": 0})
    return out
