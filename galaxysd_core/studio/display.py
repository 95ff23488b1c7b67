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


#: Stretches of the vetting view.
STRETCHES = ("linear", "asinh")
#: Zoom factors of the vetting view (central crop, enlarged back to the same size).
ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0)


def vetting_view(image: np.ndarray, zoom: float = 1.0, stretch: str = "linear", invert: bool = False,
                 asinh_a: float = 0.1) -> np.ndarray:
    """The enlarged candidate as the vetting view shows it: a central zoom, an asinh stretch that lifts
    faint structure (a dust lane's edges, tidal features) without saturating the bulge (Lupton et al.
    2004, PASP 116, 133; :class:`astropy.visualization.AsinhStretch`), and colour inversion (dark
    lanes on a light galaxy are easier to see inverted).

    Parameters
    ----------
    image : numpy.ndarray
        ``uint8 (H, W, 3)``.
    zoom : float
        In [1, 8]: the central ``1/zoom`` of the frame, resized (Lanczos) back to ``(H, W)``.
    stretch : {"linear", "asinh"}
    asinh_a : float
        Softening of the asinh stretch in (0, 1] (smaller = stronger lift of faint light).

    Raises
    ------
    GalaxySDValueError
        For an unknown stretch or a zoom outside [1, 8].
    """
    from PIL import Image

    from galaxysd_core.errors import GalaxySDValueError

    if stretch not in STRETCHES:
        raise GalaxySDValueError(f"stretch must be one of {list(STRETCHES)}, got {stretch!r}")
    if not 1.0 <= float(zoom) <= 8.0:
        raise GalaxySDValueError(f"zoom must be in [1, 8], got {zoom!r}")
    img = np.asarray(image, dtype=np.uint8)
    h, w = img.shape[:2]
    if zoom > 1.0:
        ch, cw = max(1, int(round(h / zoom))), max(1, int(round(w / zoom)))
        top, left = (h - ch) // 2, (w - cw) // 2
        img = np.asarray(Image.fromarray(img[top:top + ch, left:left + cw]).resize((w, h), Image.LANCZOS))
    x = img.astype(np.float64) / 255.0
    if stretch == "asinh":
        from astropy.visualization import AsinhStretch

        x = AsinhStretch(a=float(asinh_a))(x, clip=True)
    if invert:
        x = 1.0 - x
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
