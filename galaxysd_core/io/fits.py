"""FITS files with provenance: the image as a ``(3, H, W)`` cube and every setting in the header.

:func:`fits_bytes` writes the image as ``float32`` in [0, 1] or ``uint8``, rows flipped so that FITS
viewers (DS9, which put row 1 at the bottom) show the galaxy the right way up. The primary header
records the provenance: ``PROMPT`` (long values continue on ``CONTINUE`` cards, the FITS
long-string convention), ``NEGPROMP``, ``SEED``, ``STEPS``, ``GUIDANCE``, ``SAMPLER``, ``MODEL``,
``STRENGTH``, ``FEATGUID`` (guidance per feature, ``phrase=scale; ...``), ``SOFTWARE``, ``DATE``
and the full JSON settings in ``GSDPARAM``.
:func:`read_fits` undoes the flip and returns the settings.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from galaxysd_core._utils import format_feature_text, parse_feature_list
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.io.provenance import ImageLike, as_rgb_uint8, provenance, software
from galaxysd_core.io.uploads import FileLike, read_limited

#: Header keyword -> provenance key, for files without the ``GSDPARAM`` JSON card.
_CARD_KEYS = {"PROMPT": "prompt", "NEGPROMP": "negative_prompt", "SEED": "seed", "STEPS": "num_inference_steps",
              "GUIDANCE": "guidance_scale", "SAMPLER": "scheduler", "MODEL": "model_name", "STRENGTH": "strength",
              "SOFTWARE": "software", "DATE": "created_utc"}


def _fits_header(info: Mapping[str, Any]):
    from astropy.io import fits

    hdr = fits.Header()
    hdr["PROMPT"] = (str(info.get("prompt", "")), "text prompt (GalaxySD grammar)")
    neg = info.get("negative_prompt")
    if isinstance(neg, str) and neg:
        hdr["NEGPROMP"] = (neg, "negative prompt")
    if info.get("seed") is not None:
        hdr["SEED"] = (int(info["seed"]), "random seed of this image")
    if info.get("num_inference_steps") is not None:
        hdr["STEPS"] = (int(info["num_inference_steps"]), "denoising steps")
    if info.get("guidance_scale") is not None:
        hdr["GUIDANCE"] = (float(info["guidance_scale"]), "classifier-free guidance scale")
    if info.get("scheduler"):
        hdr["SAMPLER"] = (str(info["scheduler"]), "scheduler (ddim, euler_a, euler, dpmpp)")
    model = info.get("model_name") or info.get("model")
    if model:
        hdr["MODEL"] = (str(model), "model folder name")
    if info.get("init_image") and info.get("strength") is not None:
        hdr["STRENGTH"] = (float(info["strength"]), "img2img strength (start from a real galaxy)")
    feats = info.get("feature_guidance") or []
    if feats:
        hdr["FEATGUID"] = (format_feature_text(feats), "guidance per feature (phrase=scale)")
    hdr["SOFTWARE"] = (str(info.get("software") or software()), "software that wrote the file")
    created = str(info.get("created_utc") or "")
    hdr["DATE"] = (created.rstrip("Z") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                   "file creation date (UTC)")
    hdr["CHANNELS"] = ("R,G,B", "axis 3: red, green, blue (SDSS i, r, g style)")
    hdr["GSDPARAM"] = (json.dumps(info, sort_keys=True), "all settings as JSON")
    return hdr


def fits_bytes(image: ImageLike, prompt: str, seed: Optional[int], parameters: Optional[Mapping[str, Any]] = None,
               *, dtype: str = "float32", **extra: Any) -> bytes:
    """FITS file content: the image as a ``(3, H, W)`` cube with a provenance header.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray
        RGB image.
    prompt, seed, parameters, **extra
        See :func:`~galaxysd_core.io.provenance.provenance`.
    dtype : {"float32", "uint8"}
        ``float32`` scales to [0, 1] (``BUNIT`` = ``'relative'``); ``uint8`` keeps 0-255.

    Notes
    -----
    Rows are flipped (FITS row 1 is the bottom of the image in viewers such as DS9).
    """
    from astropy.io import fits

    if dtype not in ("float32", "uint8"):
        raise GalaxySDValueError(f"FITS dtype must be 'float32' or 'uint8', got {dtype!r}")
    arr = as_rgb_uint8(image)
    cube = np.ascontiguousarray(np.moveaxis(arr[::-1], -1, 0))  # (3, H, W), bottom row first
    data = cube.astype(np.float32) / 255.0 if dtype == "float32" else cube
    info = provenance(prompt, seed, parameters, **extra)
    hdu = fits.PrimaryHDU(data=data, header=_fits_header(info))
    hdu.header["BUNIT"] = ("relative" if dtype == "float32" else "adu", "pixel values: 0..1 or 0..255")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's VerifyWarning about long strings is expected
        hdu.writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def save_fits(path: Union[str, os.PathLike], image: ImageLike, prompt: str, seed: Optional[int],
              parameters: Optional[Mapping[str, Any]] = None, *, dtype: str = "float32", **extra: Any) -> Path:
    """Write :func:`fits_bytes` to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fits_bytes(image, prompt, seed, parameters, dtype=dtype, **extra))
    return path


def read_fits(file: FileLike, *, max_bytes: int = 200 * 1024 * 1024) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Image and settings of a FITS file written by :func:`fits_bytes`.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W, 3)`` in the file's dtype, top row first (the flip undone).
    info : dict
        The ``GSDPARAM`` JSON when present, else the individual header cards.

    Raises
    ------
    GalaxySDValueError
        For a file that is too large, not FITS, or not a ``(3, H, W)`` cube.
    """
    from astropy.io import fits

    data, name = read_limited(file, max_bytes, "FITS file")
    try:
        with fits.open(io.BytesIO(data)) as hdul:
            hdr = hdul[0].header
            cube = np.asarray(hdul[0].data)
            keys = {k: hdr[k] for k in (*_CARD_KEYS, "GSDPARAM") if k in hdr}
            hdr = hdr.copy()
    except OSError as exc:
        raise GalaxySDValueError(f"{Path(name).name!r} is not a readable FITS file: {exc}") from exc
    if cube.ndim != 3 or cube.shape[0] != 3:
        raise GalaxySDValueError(f"{Path(name).name!r} does not hold a (3, H, W) RGB cube (shape {cube.shape})")
    image = np.moveaxis(cube, 0, -1)[::-1]
    info: Dict[str, Any] = {}
    if "GSDPARAM" in keys:
        try:
            info = json.loads(keys["GSDPARAM"])
        except ValueError:
            info = {}
    if not info:
        info = {_CARD_KEYS[k]: v for k, v in keys.items() if k in _CARD_KEYS}
        if "FEATGUID" in hdr:
            info["feature_guidance"] = parse_feature_list(hdr["FEATGUID"])
    return np.ascontiguousarray(image), info
