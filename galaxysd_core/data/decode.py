"""Safe decoding of one galaxy image: centre crop and resize to the model resolution.

Cropping
--------
SDSS cutouts are centred on the galaxy. The Galaxy Zoo 1 cutouts (e.g. ``gz1_sdss``, 423 px) show
the galaxy small in the frame, so only the central :data:`GZ1_CROP_FRACTION` (0.35) of the shorter
side is kept; the GZ2 images (Willett et al. 2013; 424 px scaled to 0.02 x the Petrosian radius
``petroR90_r``) frame the galaxy more tightly, so :data:`GZ2_CROP_FRACTION` (0.5) keeps the galaxy
and its outskirts, as in the Galaxy Zoo 2 CNN literature (e.g. Dieleman et al. 2015, MNRAS 450,
1441, crop 207 of 424 px).

Safety
------
Missing, unreadable, truncated, non-image, tiny (under :data:`MIN_IMAGE_SIDE` pixels a side) and
oversized files (more than ``max_pixels`` pixels, a "decompression bomb", refused from the header
before decoding) raise :class:`~galaxysd_core.errors.ImageRejected` with the reason, which the
cache preparation (:mod:`galaxysd_core.data.cache`), ``galaxysd classify`` and ``galaxysd detg
scan`` write to their skip reports. Any failure of a decoder (Pillow raises many types for corrupt
files) is such a rejection, never a crash. Pillow's own :class:`PIL.Image.DecompressionBombWarning`
is turned into an error locally (the global ``Image.MAX_IMAGE_PIXELS`` is left untouched).

Modes
-----
Every mode becomes 8-bit RGB through :func:`galaxysd_core.io.uploads.image_to_rgb`: 16-bit images
are reduced by their bit depth, floating-point images are refused, CMYK/palette/grey/alpha images
are converted by Pillow. Animated images (GIF, APNG, WebP) and multi-page TIFFs give their first frame.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from galaxysd_core.errors import GalaxySDValueError, ImageRejected
from galaxysd_core.io.uploads import image_to_rgb

#: Central fraction of the shorter side kept for Galaxy Zoo 1 style cutouts (galaxy small in frame).
GZ1_CROP_FRACTION = 0.35
#: Central fraction of the shorter side kept for GZ2 images (galaxy scaled to the frame).
GZ2_CROP_FRACTION = 0.5
#: Largest accepted image, in pixels (width x height). SDSS cutouts have ~0.18 Mpx; 64 Mpx leaves
#: room for large user images while refusing decompression bombs before decoding.
DEFAULT_MAX_PIXELS = 64_000_000
#: Smallest and largest accepted output resolution (pixels).
MIN_RESOLUTION, MAX_RESOLUTION = 8, 2048
#: Smallest accepted image side (pixels): a smaller image holds no galaxy to crop (a 1x1 "image").
MIN_IMAGE_SIDE = 8


def default_crop_fraction(label_kind: Optional[str] = None, source: Optional[str] = None) -> float:
    """Default central crop fraction: :data:`GZ1_CROP_FRACTION` for Galaxy Zoo 1 style cutouts
    (records labelled by GZ1 class, or a source named ``gz1*``), else :data:`GZ2_CROP_FRACTION`."""
    if label_kind == "gz1_class" or (source or "").lower().startswith("gz1"):
        return GZ1_CROP_FRACTION
    return GZ2_CROP_FRACTION


def check_decode_settings(resolution: int, crop_fraction: float, max_pixels: int) -> None:
    """Refuse an output resolution, crop fraction or pixel limit that :func:`load_image` cannot use.

    Raises
    ------
    GalaxySDValueError
        Naming the setting and its accepted range.
    """
    if not isinstance(resolution, (int, np.integer)) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise GalaxySDValueError(f"resolution must be an integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] "
                                 f"pixels, got {resolution!r}; the shipped model uses 64")
    if not (isinstance(crop_fraction, (int, float)) and 0.0 < crop_fraction <= 1.0):
        raise GalaxySDValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}; "
                                 f"{GZ1_CROP_FRACTION} suits GZ1 cutouts, {GZ2_CROP_FRACTION} GZ2 images")
    if max_pixels < 1:
        raise GalaxySDValueError(f"max_pixels must be positive, got {max_pixels}")


def load_image(path: os.PathLike | str, resolution: int = 64, crop_fraction: float = GZ2_CROP_FRACTION,
               *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one image safely, crop its centre and resize it.

    Parameters
    ----------
    path : path-like
        Image file (any format Pillow reads; JPEG is decoded in draft mode at a reduced scale
        that still exceeds the output resolution).
    resolution : int
        Output side in pixels.
    crop_fraction : float
        Side of the central square crop as a fraction of the shorter image side, in (0, 1].
    max_pixels : int
        Images with more pixels (declared in the header) are refused before decoding.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(resolution, resolution, 3)``, RGB.

    Raises
    ------
    ImageRejected
        With the reason, for a missing, unreadable, truncated, non-image, tiny (under
        :data:`MIN_IMAGE_SIDE` pixels a side), floating-point or oversized file.
    """
    check_decode_settings(resolution, crop_fraction, max_pixels)
    path = Path(path)
    if not str(path).strip() or str(path) == ".":
        raise ImageRejected("no image path")
    if "\x00" in str(path):
        raise ImageRejected("the path contains a NUL character")
    try:
        if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO or device: would block or never end
            raise ImageRejected("not a regular file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as fp, Image.open(fp) as im:
                w, h = im.size
                if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
                    raise ImageRejected(f"image is only {w}x{h} pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                                        f"are needed to crop a galaxy")
                if w * h > max_pixels:
                    raise ImageRejected(f"image declares {w}x{h} = {w * h} pixels, more than the limit "
                                        f"of {max_pixels} (possible decompression bomb)")
                side = crop_fraction * min(w, h)
                if im.format == "JPEG":
                    # Ask the decoder for the smallest DCT scale keeping the crop >= resolution.
                    scale = resolution / side
                    im.draft("RGB", (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
                im.load()
                dw, dh = im.size
                f = dw / w
                cx, cy, half = dw / 2.0, dh / 2.0, side * f / 2.0
                box = (cx - half, cy - half, cx + half, cy + half)
                try:
                    rgb = image_to_rgb(im)
                except GalaxySDValueError as exc:
                    raise ImageRejected(str(exc)) from None
                out = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)
                arr = np.asarray(out, dtype=np.uint8)
    except ImageRejected:
        raise
    except FileNotFoundError:
        raise ImageRejected("file not found") from None
    except IsADirectoryError:
        raise ImageRejected("is a folder, not an image file") from None
    except PermissionError:
        raise ImageRejected("permission denied") from None
    except UnidentifiedImageError:
        size = path.stat().st_size if path.exists() else -1
        raise ImageRejected("empty file (0 bytes)" if size == 0 else "not an image Pillow can identify") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb refused: {exc}") from None
    except OSError as exc:
        if exc.filename is not None:  # open() failed (name too long, not a regular file, ...): not the data
            raise ImageRejected(f"cannot open the file ({exc.strerror or type(exc).__name__})") from None
        raise ImageRejected(f"corrupt or truncated image: {exc}") from None
    except MemoryError:
        raise ImageRejected("not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for corrupt data (struct.error, ...)
        raise ImageRejected(f"cannot decode image ({type(exc).__name__}: {exc})") from None
    if arr.shape != (resolution, resolution, 3):  # pragma: no cover - defensive
        raise ImageRejected(f"unexpected decoded shape {arr.shape}")
    return arr
