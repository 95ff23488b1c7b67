"""Metrics of generated galaxies: prompt consistency, distribution metrics, light profiles.

* :mod:`.consistency`: does the morphology classifier see the prompted features?
* :mod:`.distribution`: precision/recall, density/coverage, domain Frechet distance and KID in the
  classifier's embedding space.
* :mod:`.physical`: half-light radius, concentration, asymmetry, ellipticity, colour proxy, and
  their real-vs-generated Wasserstein distances.
"""
from galaxysd_core.evaluation.metrics.consistency import (PAPER_REAL_CONSISTENCY, ConsistencyResult,
                                                         consistency_from_probs, consistency_on_real,
                                                         prompt_consistency, prompted_features)
from galaxysd_core.evaluation.metrics.distribution import (PRDC, ClassifierEmbedding, distribution_metrics, domain_fd,
                                                          domain_kid, kth_neighbour_distances, prdc)
from galaxysd_core.evaluation.metrics.physical import (STAT_UNITS, STATS, compare_physical, light_profile_stats,
                                                      physical_stats, summarize_physical)

__all__ = [
    "PAPER_REAL_CONSISTENCY", "ConsistencyResult", "consistency_from_probs", "consistency_on_real",
    "prompt_consistency", "prompted_features", "PRDC", "ClassifierEmbedding", "distribution_metrics",
    "domain_fd", "domain_kid", "kth_neighbour_distances", "prdc", "STATS", "STAT_UNITS",
    "compare_physical", "light_profile_stats", "physical_stats", "summarize_physical",
]
