"""Limits and validation of the inputs of a pipeline call.

Every value a user can pass to :meth:`GalaxySDPipeline.__call__
<galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline.__call__>` is checked before any
work; a bad one raises :class:`~galaxysd_core.errors.GalaxySDValueError` saying how to fix it.
"""
from __future__ import annotations

from typing import List

import numpy as np
from PIL import Image

from galaxysd_core.errors import GalaxySDValueError

#: Input limits of one call.
MAX_STEPS = 200
MAX_IMAGES = 64
MAX_GUIDANCE = 30.0
MAX_SEED = 2**63 - 1


def check_inputs(pipe, prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps,
                 guidance_scale, scheduler, height, width, image, strength, output_type) -> List[str]:
    """Validate every input of a call of ``pipe``; returns the prompts as a list.

    ``pipe`` provides the vocabulary (``parse``, ``parse_negative``), the sampler names
    (``make_scheduler``) and the sizes (``vae_scale_factor``, ``unet.config``, ``default_size``).

    Raises
    ------
    GalaxySDValueError
        Naming the first bad input and its allowed range.
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else None
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise GalaxySDValueError("prompt must be a non-empty string or list of strings, "
                                 "e.g. 'sdss, smooth, completely round galaxy'")
    for p in prompts:
        pipe.parse(p)
    if negative_prompt is not None:
        negs = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        if len(negs) not in (1, len(prompts)):
            raise GalaxySDValueError(f"give one negative prompt or one per prompt ({len(prompts)}), not {len(negs)}")
        for n in negs:
            if not isinstance(n, str):
                raise GalaxySDValueError("negative_prompt must be a string or list of strings")
            pipe.parse_negative(n)
    if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
        raise GalaxySDValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
    total = len(prompts) * num_images_per_prompt
    if total > MAX_IMAGES:
        raise GalaxySDValueError(f"{total} images requested; at most {MAX_IMAGES} per call — split the request")
    if seed is not None:
        _check_seeds(seed, total)
    if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= MAX_STEPS:
        raise GalaxySDValueError(f"num_inference_steps must be an integer in [1, {MAX_STEPS}], got {num_inference_steps!r}")
    if not isinstance(guidance_scale, (int, float)) or not 0.0 <= float(guidance_scale) <= MAX_GUIDANCE \
            or not np.isfinite(guidance_scale):
        raise GalaxySDValueError(f"guidance_scale must be a number in [0, {MAX_GUIDANCE}], got {guidance_scale!r}")
    pipe.make_scheduler(scheduler)
    for name, value in (("height", height), ("width", width)):
        if value is None:
            continue
        step = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
        if not isinstance(value, int) or value < step or value % step or value > 4 * pipe.default_size:
            raise GalaxySDValueError(f"{name} must be a multiple of {step} between {step} and "
                                     f"{4 * pipe.default_size} pixels (the model was trained at "
                                     f"{pipe.default_size}), got {value!r}")
    if image is not None:
        _check_init_image(image, strength)
    if output_type not in ("pil", "np", "latent"):
        raise GalaxySDValueError(f"output_type must be 'pil', 'np' or 'latent', got {output_type!r}")
    return prompts


def _check_seeds(seed, total: int) -> None:
    seeds = [seed] if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else seed
    if not isinstance(seeds, (list, tuple)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise GalaxySDValueError(f"seed must be an integer or a list of integers, got {seed!r}")
    if any(not 0 <= int(s) <= MAX_SEED for s in seeds):
        raise GalaxySDValueError(f"seeds must lie in [0, 2**63-1], got {seed!r}")
    if isinstance(seed, (list, tuple)) and len(seed) != total:
        raise GalaxySDValueError(f"{len(seed)} seeds given for {total} images; give one seed or one per image")


def _check_init_image(image, strength) -> None:
    if not isinstance(image, (Image.Image, np.ndarray)):
        raise GalaxySDValueError("image must be a PIL image or an RGB uint8 array (H, W, 3)")
    if isinstance(image, np.ndarray) and (image.ndim != 3 or image.shape[2] != 3):
        raise GalaxySDValueError(f"image array must have shape (H, W, 3), got {image.shape}")
    if not isinstance(strength, (int, float)) or not 0.0 < float(strength) <= 1.0:
        raise GalaxySDValueError(f"strength must be in (0, 1], got {strength!r}")
