"""Small helpers shared across the subpackages (one definition each).

Image batches here are ``uint8`` arrays ``(N, H, W, 3)`` (the layout of prepared caches and of
pipeline output with ``output_type="np"`` after :func:`to_uint8`) or ``NCHW`` torch tensors.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 batch ``(N, H, W, 3)`` to ``size`` x ``size`` pixels with Lanczos (Pillow).

    Returned unchanged when it already has that size. Pillow's Lanczos is the filter the cache
    preparation uses (:func:`galaxysd_core.data.decode.load_image`), so resized synthetic and real
    images go through the same resampling.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return images
    if len(images) == 0:
        return np.zeros((0, size, size, *images.shape[3:]), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                     for im in images]).astype(np.uint8)


def dihedral(x, k: int):
    """One of the 8 symmetries of the square (k in 0..7: k >= 4 flips left-right, then ``k % 4``
    quarter turns) applied to the last two axes of a torch tensor (``NCHW``)."""
    import torch

    if not 0 <= int(k) < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, int(k) % 4, dims=(-2, -1))


def library_versions() -> Dict[str, str]:
    """Versions of Python, the platform, galaxysd_core and the main libraries (for artefact configs)."""
    import importlib.metadata as md
    import platform

    from galaxysd_core import __version__

    out = {"python": platform.python_version(), "galaxysd_core": __version__}
    for dist in ("torch", "diffusers", "transformers", "accelerate", "safetensors", "torchmetrics", "numpy",
                 "scipy", "pandas", "scikit-learn", "pillow"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, paths, tuples and non-finite floats made JSON-safe (NaN -> None)."""
    import math
    from pathlib import PurePath

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, PurePath):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def parse_feature_text(text: str):
    """``"dust lane=4"`` -> ``("dust lane", 4.0)``: one guided feature as the CLI, the A1111 text and
    the FITS ``FEATGUID`` card write it (:mod:`galaxysd_core.pipelines.feature_guidance`).

    Raises
    ------
    GalaxySDValueError
        Without ``=`` or with a scale that is not a number.
    """
    from galaxysd_core.errors import GalaxySDValueError

    if not isinstance(text, str) or "=" not in text:
        raise GalaxySDValueError(f"a feature is PHRASE=SCALE, e.g. 'dust lane=4', got {text!r}")
    phrase, _, raw = text.rpartition("=")
    try:
        scale = float(raw)
    except ValueError:
        raise GalaxySDValueError(f"the scale of feature {phrase.strip()!r} must be a number, got {raw.strip()!r}") \
            from None
    return phrase.strip(), scale


def format_feature_text(features) -> str:
    """``[("dust lane", 4.0), ("merger", -2.0)]`` -> ``"dust lane=4; merger=-2"`` (inverse: split on ``;``)."""
    return "; ".join(f"{p}={float(v):g}" for p, v in features)


def parse_feature_list(text: str):
    """Inverse of :func:`format_feature_text`: ``[[phrase, scale], ...]``."""
    return [list(parse_feature_text(x)) for x in str(text).split(";") if x.strip()]
