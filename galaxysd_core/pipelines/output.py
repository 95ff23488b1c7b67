"""Output dataclass of :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Union

import numpy as np
from diffusers.utils import BaseOutput
from PIL import Image


@dataclass
class GalaxySDPipelineOutput(BaseOutput):
    """Output of :class:`GalaxySDPipeline`.

    Attributes
    ----------
    images : list of PIL.Image.Image or numpy.ndarray
        Generated images; ``output_type="np"`` gives one uint8 array ``(N, H, W, 3)``.
    seeds : list of int
        Seed of each image (the same seed and parameters give the same image).
    prompts : list of str
        Prompt (with weights) of each image.
    parameters : dict
        Every setting of the call (negative prompt, steps, guidance, scheduler, sizes, strength, model).
    negative_prompts : list of str
        Negative prompt of each image as used (given, or the automatic GZ2-tree one; "" = none).
    """

    images: Union[List[Image.Image], np.ndarray]
    seeds: List[int]
    prompts: List[str]
    parameters: Dict[str, Any] = field(default_factory=dict)
    negative_prompts: List[str] = field(default_factory=list)
