"""Limits and validation of the inputs of a pipeline call.

Every value a user can pass to :meth:`GalaxySDPipeline.__call__
<galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline.__call__>` is checked before any
work; a bad one raises :class:`~galaxysd_core.errors.GalaxySDValueError` saying how to fix it.
The check also does the per-call preparation that can fail: it parses every prompt (once), draws
or spreads the seeds, builds the fresh sampler and brings the start image to 8-bit RGB.
"""
from __future__ import annotations

import math
import numbers
import secrets
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np
from PIL import Image

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import ParsedPrompt

#: Input limits of one call.
MAX_STEPS = 200
MAX_IMAGES = 64
MAX_GUIDANCE = 30.0
#: Largest seed (``torch.Generator.manual_seed`` takes 64-bit values; A1111 and numpy signed 64-bit).
#: Image ``i`` of a call with one seed uses ``seed + i``: every one of them must stay <= MAX_SEED.
MAX_SEED = 2**63 - 1
#: Random seeds (``seed=None``) are drawn from ``[0, RANDOM_SEED_LIMIT)`` (A1111-sized, 31 bits).
RANDOM_SEED_LIMIT = 2**31
#: DDIM's eta (0 = deterministic DDIM, 1 = DDPM-like noise).
ETA_RANGE = (0.0, 1.0)


def img2img_steps(num_inference_steps: int, strength: float) -> int:
    """Denoising steps an img2img call runs: ``round(steps * strength)``, at most ``steps``
    (the diffusers rule: the start image is noised to ``strength`` of the schedule)."""
    return min(int(round(int(num_inference_steps) * float(strength))), int(num_inference_steps))


@dataclass
class CallInputs:
    """The checked inputs of one call.

    Attributes
    ----------
    prompts : list of str
    parsed : list of ParsedPrompt
        One per prompt (parsed once per call).
    negatives : list of ParsedPrompt or None
        The given negative prompt(s), parsed, one per prompt; None when none was given.
    seeds : list of int
        Seed of each image, all in ``[0, MAX_SEED]``.
    scheduler : diffusers scheduler
        A fresh sampler for this call.
    init_image : PIL.Image.Image or None
        The start image as 8-bit RGB (img2img).
    num_images_per_prompt, num_inference_steps : int
    guidance_scale, eta, strength : float
        The checked numbers as plain Python values (a numpy or ``Fraction`` input never reaches torch).
    """

    prompts: List[str]
    parsed: List[ParsedPrompt]
    negatives: Optional[List[ParsedPrompt]]
    seeds: List[int]
    scheduler: Any
    init_image: Optional[Image.Image]
    num_images_per_prompt: int
    num_inference_steps: int
    guidance_scale: float
    eta: float
    strength: float


def real_number(name: str, value, lo: float, hi: float, *, lo_open: bool = False, hint: str = "") -> float:
    """``value`` as a float if it is a finite real number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``).

    Raises
    ------
    GalaxySDValueError
        For a bool, a string, None, NaN, an infinity or a value out of range.
    """
    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    if ok:
        x = float(value)
        ok = (lo < x if lo_open else lo <= x) and x <= hi
    if not ok:
        raise GalaxySDValueError(f"{name} must be a number in {interval}{hint}, got {value!r}")
    return x


def whole_number(name: str, value, lo: int, hi: int, hint: str = "") -> int:
    """``value`` as an int if it is an integer (not a bool or a float) in ``[lo, hi]``.

    Raises
    ------
    GalaxySDValueError
        Otherwise.
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) or not lo <= int(value) <= hi:
        raise GalaxySDValueError(f"{name} must be an integer in [{lo}, {hi}]{hint}, got {value!r}")
    return int(value)


def check_inputs(pipe, prompt, negative_prompt, num_images_per_prompt, seed, num_inference_steps,
                 guidance_scale, scheduler, height, width, image, strength, output_type, eta=0.0) -> CallInputs:
    """Validate every input of a call of ``pipe`` and prepare what depends on them.

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
    parsed = [pipe.parse(p) for p in prompts]
    negatives = None
    if negative_prompt is not None:
        negs = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        if len(negs) not in (1, len(prompts)):
            raise GalaxySDValueError(f"give one negative prompt or one per prompt ({len(prompts)}), not {len(negs)}")
        if not all(isinstance(n, str) for n in negs):
            raise GalaxySDValueError("negative_prompt must be a string or list of strings")
        negatives = [pipe.parse_negative(n) for n in negs]
        negatives = negatives * len(prompts) if len(negatives) == 1 else negatives
    if not isinstance(num_images_per_prompt, numbers.Integral) or isinstance(num_images_per_prompt, (bool, np.bool_)) \
            or num_images_per_prompt < 1:
        raise GalaxySDValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
    total = len(prompts) * int(num_images_per_prompt)
    if total > MAX_IMAGES:
        raise GalaxySDValueError(f"{total} images requested; at most {MAX_IMAGES} per call — split the request")
    seeds = image_seeds(seed, total)
    steps = whole_number("num_inference_steps", num_inference_steps, 1, MAX_STEPS)
    guidance = real_number("guidance_scale", guidance_scale, 0.0, MAX_GUIDANCE, hint=" (<= 1 turns guidance off)")
    eta = real_number("eta", eta, *ETA_RANGE, hint=" (DDIM's noise: 0 = deterministic)")
    strength = real_number("strength", strength, 0.0, 1.0, lo_open=True, hint=" (1 = ignore the start image)")
    sampler = pipe.make_scheduler(scheduler)
    for name, value in (("height", height), ("width", width)):
        if value is None:
            continue
        step = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < step or value % step \
                or value > 4 * pipe.default_size:
            raise GalaxySDValueError(f"{name} must be a multiple of {step} between {step} and "
                                     f"{4 * pipe.default_size} pixels (the model was trained at "
                                     f"{pipe.default_size}), got {value!r}")
    init = None
    if image is not None:
        init = start_image_rgb8(image)
        if img2img_steps(steps, strength) < 1:
            raise GalaxySDValueError(f"strength {strength:g} with {steps} steps leaves no denoising step; "
                                     f"raise strength or steps")
    if output_type not in ("pil", "np", "latent"):
        raise GalaxySDValueError(f"output_type must be 'pil', 'np' or 'latent', got {output_type!r}")
    return CallInputs(prompts=prompts, parsed=parsed, negatives=negatives, seeds=seeds, scheduler=sampler,
                      init_image=init, num_images_per_prompt=int(num_images_per_prompt), num_inference_steps=steps,
                      guidance_scale=guidance, eta=eta, strength=strength)


def image_seeds(seed, total: int) -> List[int]:
    """The seed of each of ``total`` images: random in ``[0, RANDOM_SEED_LIMIT)`` for None, ``seed + i``
    for one integer, or the given list (one per image).

    At the top of the range a single seed is refused rather than wrapped: ``2**63 - 1`` with two
    images would need ``2**63``, which no 64-bit signed seed (A1111, numpy) can record.

    Raises
    ------
    GalaxySDValueError
        For a non-integer, a seed outside ``[0, MAX_SEED]`` (for any image), or a list of the wrong length.
    """
    if seed is None:
        return [secrets.randbelow(RANDOM_SEED_LIMIT) for _ in range(total)]
    single = isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_))
    values = [seed] if single else seed
    if not isinstance(values, (list, tuple)) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in values):
        raise GalaxySDValueError(f"seed must be an integer or a list of integers, got {seed!r}")
    if any(not 0 <= int(s) <= MAX_SEED for s in values):
        raise GalaxySDValueError(f"seeds must lie in [0, 2**63-1], got {seed!r}")
    if single:
        first = int(seed)
        if first + total - 1 > MAX_SEED:
            raise GalaxySDValueError(
                f"seed {first} with {total} images needs seeds up to {first + total - 1}, beyond the largest "
                f"seed 2**63-1 (image i uses seed + i); use a seed of at most {MAX_SEED - total + 1}")
        return [first + i for i in range(total)]
    if len(values) != total:
        raise GalaxySDValueError(f"{len(values)} seeds given for {total} images; give one seed or one per image")
    return [int(s) for s in values]


def start_image_rgb8(image) -> Image.Image:
    """The img2img start image as an 8-bit RGB PIL image, the one form the pipeline converts from
    (``diffusers.image_processor.VaeImageProcessor``): a PIL image, a uint8 array ``(H, W, 3)`` or
    a float array ``(H, W, 3)`` with values in [0, 1] (quantized to 8 bits, as a PNG would be).

    Raises
    ------
    GalaxySDValueError
        For any other type, shape or dtype, or a float array outside [0, 1] (or with NaN).
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if not isinstance(image, np.ndarray):
        raise GalaxySDValueError("image must be a PIL image, a uint8 array (H, W, 3) or a float array "
                                 "(H, W, 3) with values in [0, 1]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise GalaxySDValueError(f"image array must have shape (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        return Image.fromarray(image, "RGB")
    if not np.issubdtype(image.dtype, np.floating):
        raise GalaxySDValueError(f"image array must be uint8 (0-255) or float with values in [0, 1], "
                                 f"got dtype {image.dtype}")
    lo, hi = float(np.min(image)), float(np.max(image))
    if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo and hi <= 1.0):
        raise GalaxySDValueError(f"a float image array must hold values in [0, 1], got values in [{lo:g}, {hi:g}] "
                                 f"(divide 0-255 values by 255, or pass a uint8 array)")
    return Image.fromarray((image.astype(np.float64) * 255.0).round().astype(np.uint8), "RGB")
