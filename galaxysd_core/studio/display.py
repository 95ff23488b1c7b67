"""Images as the app shows them: crisp integer upscaling and difference images (no Streamlit).

Generated images are small (the model's :attr:`~GalaxySDPipeline.default_size`, 64 or 128 px); a
browser asked to show them larger blurs them (bilinear resampling). :func:`upscale` enlarges them on
the server by an integer factor with nearest-neighbour sampling, so every model pixel becomes a
sharp square and the browser shows the array 1:1. :func:`difference_image` shows where two images
of an A/B comparison differ.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from galaxysd_core.errors import GalaxySDValueError

#: Smallest display side (pixels) of the latest results, the enlarged view, and the gallery thumbnails.
RESULT_PX = 256
ENLARGED_PX = 512
THUMB_PX = 160


def display_factor(side: int, min_px: int = RESULT_PX) -> int:
    """Integer factor that brings an image of ``side`` pixels to at least ``min_px`` (1 when already large)."""
    return max(1, math.ceil(int(min_px) / max(int(side), 1)))


def upscale(image: np.ndarray, min_px: int = RESULT_PX, method: str = "nearest") -> np.ndarray:
    """``image`` (``(H, W, 3)`` uint8) enlarged by :func:`display_factor` for display.

    ``method`` ``"nearest"`` repeats pixels (the model's real pixels stay visible); ``"lanczos"``
    resamples smoothly (for photographs). Images already at least ``min_px`` are returned as they are.
    """
    arr = np.asarray(image)
    k = display_factor(max(arr.shape[0], arr.shape[1]), min_px)
    if k == 1:
        return arr
    if method == "nearest":
        return np.repeat(np.repeat(arr, k, axis=0), k, axis=1)
    if method == "lanczos":
        im = Image.fromarray(arr.astype(np.uint8))
        return np.asarray(im.resize((arr.shape[1] * k, arr.shape[0] * k), Image.Resampling.LANCZOS))
    raise GalaxySDValueError(f"method must be 'nearest' or 'lanczos', got {method!r}")


def difference_image(a: np.ndarray, b: np.ndarray, vmax: Optional[float] = None) -> Tuple[np.ndarray, float]:
    """Where two images differ: ``(heat image (H, W, 3) uint8, mean absolute difference)``.

    The per-pixel difference is the mean over the colour channels of ``|a - b|`` (0-255 scale).
    It is drawn black (equal) through red and yellow to white (``vmax`` or more); ``vmax``
    defaults to the image's own largest difference (at least 8), so pass a common ``vmax`` to
    compare several pairs on one scale. The mean is over all pixels, 0-255.

    Raises
    ------
    GalaxySDValueError
        When the images differ in shape.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise GalaxySDValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    d = np.abs(a - b).mean(axis=-1) if a.ndim == 3 else np.abs(a - b)
    top = float(vmax) if vmax is not None else max(float(d.max()), 8.0)
    t = np.clip(d / max(top, 1e-6), 0.0, 1.0)
    # a black -> red -> yellow -> white ramp ("hot"), readable without a colour bar
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return (rgb * 255).round().astype(np.uint8), float(d.mean())
