"""Files coming in from users (settings PNGs, start images): size-limited reading and safe decoding.

:func:`read_limited` reads a path, bytes or file-like object (e.g. a Streamlit ``UploadedFile``)
refusing anything over a byte limit before it is read in full; :func:`load_uploaded_image` then
checks the format and the declared pixel count before decoding (decompression bombs). Problems
raise :class:`~galaxysd_core.errors.GalaxySDValueError` with a message the app can show; messages
name the file but never quote its content (nor the decoder's message, which may).

:func:`image_to_rgb` is the one conversion of any Pillow mode to 8-bit RGB, shared with
:func:`galaxysd_core.data.decode.load_image`: 16-bit images are reduced by their bit depth (not
clipped), floating-point and out-of-range 32-bit images are refused. Animated images (APNG, WebP,
multi-page TIFF) give their first frame.
"""
from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from galaxysd_core.errors import GalaxySDValueError

logger = logging.getLogger(__name__)

#: Largest accepted upload (bytes) and image (pixels).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000

#: What readers accept: a path, bytes, or a binary file-like object.
FileLike = Union[str, os.PathLike, bytes, bytearray, BinaryIO]
#: Pillow modes of 16-bit single-channel images (PNG, TIFF): reduced to 8 bits by their bit depth.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def image_to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB version of a loaded Pillow image of any mode.

    16-bit images (:data:`SIXTEEN_BIT_MODES`, and 32-bit integer images whose values lie in
    0..65535, e.g. 16-bit PGM) are scaled by 255 / 65535 instead of being clipped at 255 (which
    turns them white); palette, grey, alpha and CMYK images use Pillow's conversion (alpha dropped).

    Raises
    ------
    GalaxySDValueError
        For floating-point images (mode ``F``: no fixed range) and 32-bit integer images with
        values outside 0..65535.
    """
    if im.mode == "RGB":
        return im
    if im.mode == "F":
        raise GalaxySDValueError("floating-point pixels (mode F) have no fixed brightness range; save the "
                                 "image as an 8- or 16-bit PNG or JPEG")
    if im.mode in SIXTEEN_BIT_MODES or im.mode == "I":
        arr = np.asarray(im)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
            raise GalaxySDValueError("32-bit integer pixels outside 0..65535 have no fixed brightness range; "
                                     "save the image as an 8- or 16-bit PNG or JPEG")
        grey = np.round(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return im.convert("RGB")


def read_limited(file: FileLike, max_bytes: int, what: str) -> Tuple[bytes, str]:
    """Bytes and name of a path, bytes object or binary file-like, at most ``max_bytes`` long.

    Parameters
    ----------
    file : path, bytes or binary file-like
    max_bytes : int
        Larger files are refused (by their size when known, before reading).
    what : str
        What the file is, for messages (``"PNG file"``).

    Raises
    ------
    GalaxySDValueError
        For a missing, empty, too large or text-mode file, or an unsupported object.
    """
    name = getattr(file, "name", None) or (os.fspath(file) if isinstance(file, (str, os.PathLike)) else what)
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = bytes(file)
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file).expanduser()
        if not path.is_file():
            raise GalaxySDValueError(f"{what} {str(path)!r} does not exist or is not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise GalaxySDValueError(f"{what} {path.name!r} has {size / 1e6:.1f} MB; at most "
                                     f"{max_bytes / 1e6:.0f} MB are accepted")
        data = path.read_bytes()
    elif hasattr(file, "read"):
        size = getattr(file, "size", None)
        if isinstance(size, int) and size > max_bytes:
            raise GalaxySDValueError(f"{what} {name!r} has {size / 1e6:.1f} MB; at most "
                                     f"{max_bytes / 1e6:.0f} MB are accepted")
        if hasattr(file, "seek"):
            try:
                file.seek(0)
            except (OSError, ValueError):
                pass
        data = file.read(max_bytes + 1)
        if isinstance(data, str):
            raise GalaxySDValueError(f"{what} must be opened in binary mode")
    else:
        raise GalaxySDValueError(f"cannot read {what} from {type(file).__name__}; give a path, bytes or a file")
    if len(data) > max_bytes:
        raise GalaxySDValueError(f"{what} {name!r} is larger than {max_bytes / 1e6:.0f} MB")
    if not data:
        raise GalaxySDValueError(f"{what} {name!r} is empty (0 bytes)")
    return data, str(name)


def load_uploaded_image(file: FileLike, *, max_bytes: int = MAX_UPLOAD_BYTES,
                        max_pixels: int = MAX_UPLOAD_PIXELS,
                        formats: Sequence[str] = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")) -> np.ndarray:
    """Decode an uploaded image safely (size, type and pixel-count checks) as RGB ``uint8``.

    Parameters
    ----------
    file : path, bytes or binary file-like
    max_bytes : int
        Larger files are refused before decoding.
    max_pixels : int
        Images declaring more pixels are refused before decoding (decompression bombs).
    formats : sequence of str
        Accepted Pillow formats.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8.

    Raises
    ------
    GalaxySDValueError
        With the reason (too large, empty, not an image, unsupported format, corrupt).
    """
    data, name = read_limited(file, max_bytes, "image file")
    short = Path(name).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in formats:
                    raise GalaxySDValueError(f"{short!r} is a {im.format} file; upload one of {', '.join(formats)}")
                w, h = im.size
                if w < 8 or h < 8:
                    raise GalaxySDValueError(f"{short!r} is only {w}x{h} pixels; upload a galaxy cutout of at "
                                             f"least 8x8 (64x64 or more is best)")
                if w * h > max_pixels:
                    raise GalaxySDValueError(f"{short!r} declares {w}x{h} = {w * h} pixels, more than the "
                                             f"limit of {max_pixels}; crop it to the galaxy first")
                im.load()
                try:
                    arr = np.asarray(image_to_rgb(im), dtype=np.uint8)
                except GalaxySDValueError as exc:
                    raise GalaxySDValueError(f"{short!r}: {exc}") from None
    except GalaxySDValueError:
        raise
    except UnidentifiedImageError:
        raise GalaxySDValueError(f"{short!r} is not an image Pillow can read; upload a PNG or JPEG") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise GalaxySDValueError(f"{short!r} declares more than {limit} pixels (a possible decompression bomb) and "
                                 f"was not decoded; crop it to the galaxy first") from None
    except MemoryError:
        raise GalaxySDValueError(f"{short!r} needs more memory to decode than this server has; upload a "
                                 f"smaller image") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure (OSError, struct.error, ...) is a bad file
        # the decoder's message may quote bytes of the file: only its type is shown, the cause is logged
        logger.info("upload %r not decoded: %r", short, exc)
        raise GalaxySDValueError(f"{short!r} is corrupt or truncated ({type(exc).__name__}); upload a PNG or "
                                 f"JPEG that opens in an image viewer") from None
    return arr
