"""Files coming in from users (settings PNGs, start images): size-limited reading and safe decoding.

:func:`read_limited` reads a path, bytes or file-like object (e.g. a Streamlit ``UploadedFile``)
refusing anything over a byte limit before it is read in full; :func:`load_uploaded_image` then
checks the format and the declared pixel count before decoding (decompression bombs). Problems
raise :class:`~galaxysd_core.errors.GalaxySDValueError` with a message the app can show.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from galaxysd_core.errors import GalaxySDValueError

#: Largest accepted upload (bytes) and image (pixels).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000

#: What readers accept: a path, bytes, or a binary file-like object.
FileLike = Union[str, os.PathLike, bytes, bytearray, BinaryIO]


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
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except GalaxySDValueError:
        raise
    except UnidentifiedImageError:
        raise GalaxySDValueError(f"{short!r} is not an image Pillow can read; upload a PNG or JPEG") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise GalaxySDValueError(f"{short!r} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    return arr
