"""The default scale of every feature's guidance a model folder recommends (``feature_defaults.json``).

Chosen at release time from the measured effect-versus-scale curves
(:mod:`galaxysd_core.evaluation.feature_curves`: classifier v2's effect of the feature, with the
diversity and realism of the images at each scale), saved next to the weights like
``generation_defaults.json``, and read by the pipeline, the CLI and the app's feature sliders.

A scale is stored twice: as ``strength`` (a multiple of the guidance scale it was measured at,
what the app's sliders show: 1 = as in the plain prompt) and as the absolute ``scale`` of
:mod:`galaxysd_core.pipelines.feature_guidance` (``strength x guidance_scale``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Union

from galaxysd_core.errors import GalaxySDFileError

__all__ = ["FEATURE_DEFAULTS_FILE", "FeatureDefaults"]

#: File of the recommended feature scales in a model folder.
FEATURE_DEFAULTS_FILE = "feature_defaults.json"


@dataclass(frozen=True)
class FeatureDefaults:
    """Recommended guidance strength per feature phrase of one model.

    Attributes
    ----------
    guidance_scale : float
        The classifier-free guidance scale the strengths were measured at.
    strengths : dict of str to float
        Phrase -> strength (multiple of ``guidance_scale``; 1 = the plain prompt).
    contrast : dict of str to float
        Phrase -> contrast weight of the features whose slider also pushes the other answers of
        their GZ2 question away (:func:`~galaxysd_core.pipelines.feature_guidance.contrast_scales`);
        chosen where the measured curves say it helps. Absent phrases: no contrast.
    source : dict
        Why these values (the measured curve points they were chosen from).
    """

    guidance_scale: float
    strengths: Dict[str, float] = field(default_factory=dict)
    contrast: Dict[str, float] = field(default_factory=dict)
    source: dict = field(default_factory=dict, compare=False, hash=False)

    def strength(self, phrase: str, default: float = 1.0) -> float:
        """The recommended strength of ``phrase`` (``default`` when not measured)."""
        return float(self.strengths.get(phrase, default))

    def scale(self, phrase: str, guidance_scale: Optional[float] = None) -> float:
        """Absolute feature scale at ``guidance_scale`` (default: the measured one)."""
        g = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        return self.strength(phrase) * g

    def contrast_weight(self, phrase: str) -> float:
        """Contrast weight of ``phrase`` (0: its slider guides the feature alone)."""
        return float(self.contrast.get(phrase, 0.0))

    def slider_scales(self, phrase: str, strength: float, guidance_scale: Optional[float] = None):
        """Feature-guidance pairs of one slider at ``strength`` (with the feature's contrast, if any):
        :func:`~galaxysd_core.pipelines.feature_guidance.contrast_scales`."""
        from galaxysd_core.pipelines.feature_guidance import contrast_scales

        g = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        return contrast_scales(phrase, strength, g, self.contrast_weight(phrase))

    def save(self, folder: Union[str, Path]) -> Path:
        path = Path(folder) / FEATURE_DEFAULTS_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder: Union[str, Path]) -> Optional["FeatureDefaults"]:
        """The folder's recommended strengths, None when it has none.

        Raises
        ------
        GalaxySDFileError
            If the file exists but is not valid.
        """
        path = Path(folder) / FEATURE_DEFAULTS_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            out = cls(guidance_scale=float(data["guidance_scale"]),
                      strengths={str(k): float(v) for k, v in dict(data.get("strengths", {})).items()},
                      contrast={str(k): float(v) for k, v in dict(data.get("contrast", {})).items()},
                      source=dict(data.get("source", {})))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise GalaxySDFileError(f"{str(path)!r} is not a valid feature-defaults file ({type(exc).__name__}); "
                                    "re-run the release or delete it") from exc
        if not all(math.isfinite(v) for v in (out.guidance_scale, *out.strengths.values(), *out.contrast.values())):
            raise GalaxySDFileError(f"{str(path)!r} holds a non-finite value; re-run the release or delete it")
        return out
