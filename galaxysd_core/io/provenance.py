"""The record of how an image was made, written into every PNG, FITS and zip manifest.

:func:`provenance` gathers the prompt, seed and every setting of the pipeline call (its
``parameters`` dict) into one JSON-safe dict; :func:`software` names the writing software. The
writers (:mod:`galaxysd_core.io.png`, :mod:`galaxysd_core.io.fits`, :mod:`galaxysd_core.io.archives`)
store it; :func:`as_rgb_uint8` is the pixel form they all write.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
from PIL import Image

from galaxysd_core._utils import jsonable
from galaxysd_core.errors import GalaxySDValueError

#: An image given to a writer: a PIL image or an array (``uint8``, or float in [0, 1]).
ImageLike = Union[Image.Image, np.ndarray]


def software() -> str:
    """``"galaxysd_core <version>"``: the software recorded in every written file."""
    from galaxysd_core import __version__

    return f"galaxysd_core {__version__}"


def utc_now() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (the ``created_utc`` of :func:`provenance`)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_rgb_uint8(image: ImageLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 array of a PIL image or array.

    Float arrays are taken as [0, 1] (clipped, NaN -> 0, rounded to 0..255); grey ``(H, W)``
    arrays are repeated over three channels and ``(3, H, W)`` arrays moved to channels-last.

    Raises
    ------
    GalaxySDValueError
        For another shape or an integer dtype other than ``uint8``.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise GalaxySDValueError(f"expected an RGB image of shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise GalaxySDValueError(f"image arrays must be uint8 or float in [0, 1], got {arr.dtype}")
        arr = np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)
        arr = np.round(arr * 255.0).astype(np.uint8)
    return np.ascontiguousarray(arr)


def provenance(prompt: str, seed: Optional[int], parameters: Optional[Mapping[str, Any]] = None,
               **extra: Any) -> Dict[str, Any]:
    """Everything known about how one image was made (the content of the PNG ``galaxysd`` chunk).

    Parameters
    ----------
    prompt : str
        Prompt of the image, with weights.
    seed : int or None
        Seed of the image.
    parameters : mapping, optional
        The pipeline's ``out.parameters`` (negative prompt, steps, guidance, scheduler, size, ...).
    **extra
        More keys (e.g. ``sweep_feature``).

    Returns
    -------
    dict
        JSON-serialisable (:func:`galaxysd_core._utils.jsonable`: numpy scalars to Python numbers,
        NaN to None, unknown objects to their ``str``); ``software`` and ``created_utc`` are added
        when absent.
    """
    info: Dict[str, Any] = {"prompt": str(prompt), "seed": None if seed is None else int(seed)}
    for key, value in (parameters or {}).items():
        if key not in ("prompt", "seed"):
            info[key] = value
    info.update(extra)
    info.setdefault("software", software())
    info.setdefault("created_utc", utc_now())
    return jsonable(info)
