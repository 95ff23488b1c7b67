"""Settings of a D-ETG search and its prompt sweep.

A search for dusty early-type galaxies (D-ETGs; :mod:`galaxysd_core.science.detg_search`) prompts
GalaxySD with feature-weighted prompts ``"sdss, smooth, {completely round galaxy:1.3}, {dust lane:w}"``
(GalaxySD, Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 4), sweeping the dust-lane weight ``w`` and
the roundness phrase. This module owns those prompts (:func:`detg_prompt`, :func:`detg_prompts`),
:class:`SearchConfig` (everything that defines a search, saved as provenance with its catalog),
:func:`search_config` (the default or quick search with overrides) and the GZ2 answer columns the
search reads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.science.binary_training import BinaryTrainSettings
from galaxysd_core.science.script_support import with_overrides

__all__ = ["SMOOTH_COLUMN", "ARTIFACT_COLUMN", "detg_prompt", "SearchConfig", "detg_prompts", "search_config"]

#: Smooth answer: real early types (smooth, no dust lane) are the negatives of the detector.
SMOOTH_COLUMN = "t01_smooth_or_features_a01_smooth"
#: Star-or-artifact answer: bright stars, satellite trails and blank cutouts are not galaxies, and the
#: detector (which never saw them) can score them high.
ARTIFACT_COLUMN = "t01_smooth_or_features_a03_star_or_artifact"


def detg_prompt(shape: str, dust_weight: float, shape_weight: float = 1.3) -> str:
    """The D-ETG prompt ``"sdss, smooth, {<shape>:1.3}, {dust lane:<w>}"``."""
    return f"sdss, smooth, {{{shape}:{shape_weight:g}}}, {{dust lane:{dust_weight:g}}}"


@dataclass
class SearchConfig:
    """Settings of a D-ETG search (saved as provenance with the catalog).

    Attributes
    ----------
    shapes : list of str
        Roundness phrases of the early-type prompts.
    dust_weights : list of float
        Dust-lane weight sweep.
    shape_weight : float
        Weight of the roundness phrase.
    n_per_prompt : int
        Synthetic images per (shape, weight) prompt.
    synthetic_seed : int
        Seed of the first image of the first prompt (prompt ``k`` starts at ``seed + 1000 k``).
    guidance_scale, num_inference_steps : generation settings (DDIM).
    n_negatives : int
        Real smooth galaxies drawn as negatives per detector.
    detector : BinaryTrainSettings
        Detector training (balanced batches + flips by default).
    heldout_seeds : list of int
        Detector seeds of the leave-one-out evaluation.
    catalog_seed : int
        Seed of the detector that writes the catalog.
    top_n : int
        Rows of the catalog (highest scores among galaxies not used in training).
    """

    shapes: List[str] = field(default_factory=lambda: ["completely round galaxy", "in-between round galaxy"])
    dust_weights: List[float] = field(default_factory=lambda: [1.0, 1.25, 1.5, 1.75, 2.0])
    shape_weight: float = 1.3
    n_per_prompt: int = 32
    synthetic_seed: int = 20_000
    guidance_scale: float = 5.0
    num_inference_steps: int = 20
    n_negatives: int = 2000
    detector: BinaryTrainSettings = field(default_factory=lambda: BinaryTrainSettings(
        steps=250, batch_size=32, balanced=True, augment=True))
    heldout_seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    catalog_seed: int = 0
    top_n: int = 300

    def __post_init__(self) -> None:
        if isinstance(self.detector, Mapping):
            self.detector = BinaryTrainSettings(**dict(self.detector))
        if not self.shapes or not self.dust_weights:
            raise GalaxySDValueError("give at least one shape phrase and one dust-lane weight")
        if any(not 0.0 <= float(w) <= 3.0 for w in self.dust_weights):
            raise GalaxySDValueError(f"dust-lane weights must lie in [0, 3], got {self.dust_weights}")
        if self.n_per_prompt < 1 or self.n_negatives < 1 or self.top_n < 1:
            raise GalaxySDValueError("n_per_prompt, n_negatives and top_n must be positive")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["detector"] = self.detector.to_dict()
        return d


def detg_prompts(config: SearchConfig) -> List[Tuple[str, float, str]]:
    """``(shape, dust weight, prompt)`` for every prompt of the sweep."""
    return [(s, float(w), detg_prompt(s, float(w), config.shape_weight)) for s in config.shapes
            for w in config.dust_weights]


def search_config(quick: bool = False, **overrides: Any) -> SearchConfig:
    """The default search, or with ``quick`` a tiny one that checks the set-up (2 prompts of 8
    images, 200 negatives, one held-out seed, 50 catalog rows, 20 detector steps), with the given
    settings replaced.

    Parameters
    ----------
    quick : bool
        Start from the tiny configuration.
    **overrides
        Fields of :class:`SearchConfig` (``dust_weights``, ``shapes``, ``n_per_prompt``,
        ``guidance_scale``, ``n_negatives``, ``heldout_seeds``, ``top_n``, ...) or of its detector's
        :class:`~galaxysd_core.science.binary_training.BinaryTrainSettings` (``steps``, ...); None
        values are ignored.

    Raises
    ------
    GalaxySDValueError
        Unknown settings or invalid values.
    """
    cfg = SearchConfig()
    if quick:
        cfg = SearchConfig(dust_weights=[1.0, 2.0], shapes=["completely round galaxy"], n_per_prompt=8,
                           n_negatives=200, heldout_seeds=[0], top_n=50,
                           detector=BinaryTrainSettings(steps=20, balanced=True, augment=True))
    return with_overrides(cfg, "detector", **overrides)
