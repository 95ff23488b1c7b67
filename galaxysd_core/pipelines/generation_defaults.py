"""The generation settings a model folder recommends (``generation_defaults.json``).

Chosen at release time from measurements (:mod:`galaxysd_core.evaluation.defaults`: the realism /
diversity / consistency front over guidance and negative-prompt policy, GalaxySD Fig. 5), saved
next to the weights, and read by the pipeline, the CLI and the app, so all three use the numbers
the model card reports. A folder without the file gets :data:`FALLBACK`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

from galaxysd_core.errors import GalaxySDFileError

#: File of the recommended settings in a model folder.
GENERATION_DEFAULTS_FILE = "generation_defaults.json"


@dataclass(frozen=True)
class GenerationDefaults:
    """Recommended settings of one model.

    Attributes
    ----------
    guidance_scale : float
        Classifier-free guidance scale.
    tree_negatives : bool
        Use the automatic GZ2-tree negative prompt.
    num_inference_steps : int
        Denoising steps.
    sky_noise : bool
        Add the folder's measured SDSS sky noise after decoding (needs ``sky_noise.json``).
    source : dict
        Why these values (the measured front they were chosen from).
    """

    guidance_scale: float = 6.5
    tree_negatives: bool = True
    num_inference_steps: int = 20
    sky_noise: bool = True
    source: dict = field(default_factory=dict, compare=False, hash=False)

    def save(self, folder: Union[str, Path]) -> Path:
        path = Path(folder) / GENERATION_DEFAULTS_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, folder: Union[str, Path]) -> Optional["GenerationDefaults"]:
        """The recommended settings of a model folder, None when it has none.

        Raises
        ------
        GalaxySDFileError
            If the file exists but is not valid.
        """
        path = Path(folder) / GENERATION_DEFAULTS_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            out = cls(guidance_scale=float(data["guidance_scale"]), tree_negatives=bool(data["tree_negatives"]),
                      num_inference_steps=int(data.get("num_inference_steps", 20)),
                      sky_noise=bool(data.get("sky_noise", True)), source=dict(data.get("source", {})))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GalaxySDFileError(f"{str(path)!r} is not a valid generation-defaults file: {exc}") from exc
        if not (0.0 <= out.guidance_scale <= 30.0 and 1 <= out.num_inference_steps <= 200):
            raise GalaxySDFileError(f"{str(path)!r}: guidance_scale must be in [0, 30] and num_inference_steps "
                                    f"in [1, 200]")
        return out


#: Settings of a folder without ``generation_defaults.json`` (the pre-v2 behaviour).
FALLBACK = GenerationDefaults()
