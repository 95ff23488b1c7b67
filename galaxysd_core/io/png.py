"""PNG files with their settings: the A1111 ``parameters`` chunk and the ``galaxysd`` JSON chunk.

Every generated PNG carries two text chunks:

* ``parameters``: the AUTOMATIC1111 text (:mod:`galaxysd_core.io.a1111`), read by many tools;
* ``galaxysd``: JSON with every setting of the call (:func:`~galaxysd_core.io.provenance.provenance`:
  the pipeline's ``parameters`` dict plus prompt, seed, software version and creation time),
  from which the app restores its controls.

:func:`read_png_parameters` prefers the JSON chunk and falls back to parsing the A1111 text.
Uploaded PNGs are checked for size, signature and pixel count before their chunks are read.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.io.a1111 import format_a1111_parameters, parse_a1111_parameters
from galaxysd_core.io.provenance import ImageLike, as_rgb_uint8, provenance
from galaxysd_core.io.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, FileLike, read_limited

#: PNG text-chunk keys.
PNG_PARAMETERS_KEY = "parameters"
PNG_JSON_KEY = "galaxysd"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(image: ImageLike, prompt: str, seed: Optional[int], parameters: Optional[Mapping[str, Any]] = None,
              **extra: Any) -> bytes:
    """PNG file content with the ``parameters`` (A1111) and ``galaxysd`` (JSON) text chunks.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray
        RGB image (``uint8`` or float in [0, 1]).
    prompt, seed, parameters, **extra
        See :func:`~galaxysd_core.io.provenance.provenance`.
    """
    info = provenance(prompt, seed, parameters, **extra)
    meta = PngImagePlugin.PngInfo()
    meta.add_text(PNG_PARAMETERS_KEY, format_a1111_parameters(info))
    meta.add_text(PNG_JSON_KEY, json.dumps(info, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(as_rgb_uint8(image), mode="RGB").save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def save_png(path: Union[str, os.PathLike], image: ImageLike, prompt: str, seed: Optional[int],
             parameters: Optional[Mapping[str, Any]] = None, **extra: Any) -> Path:
    """Write :func:`png_bytes` to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image, prompt, seed, parameters, **extra))
    return path


def read_png_parameters(file: FileLike, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Dict[str, Any]:
    """Generation settings stored in a PNG (for "load settings from a PNG").

    Parameters
    ----------
    file : path, bytes or binary file-like (e.g. a Streamlit ``UploadedFile``)
    max_bytes : int
        Larger files are refused before decoding.

    Returns
    -------
    dict
        The ``galaxysd`` JSON chunk when present (every setting), else the settings parsed from
        the A1111 ``parameters`` chunk (see :func:`~galaxysd_core.io.a1111.parse_a1111_parameters`).
        Key ``source`` says which (``"galaxysd"`` or ``"a1111"``).

    Raises
    ------
    GalaxySDValueError
        For a file that is too large, empty, not a PNG, corrupt, or has no generation settings.
    """
    data, name = read_limited(file, max_bytes, "PNG file")
    if not data.startswith(_PNG_SIGNATURE):
        raise GalaxySDValueError(f"{Path(name).name!r} is not a PNG file (settings are read from PNGs saved "
                                 f"by GalaxySD Studio or AUTOMATIC1111)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > MAX_UPLOAD_PIXELS:
                    raise GalaxySDValueError(f"PNG {Path(name).name!r} declares {w}x{h} pixels, more than "
                                             f"{MAX_UPLOAD_PIXELS}")
                # text chunks before IDAT are in .info; .text also reads those after the pixels
                texts = dict(getattr(im, "text", {}) or {})
    except GalaxySDValueError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise GalaxySDValueError(f"PNG {Path(name).name!r} is corrupt or truncated ({type(exc).__name__}: {exc})") \
            from None
    raw_json = texts.get(PNG_JSON_KEY)
    if raw_json:
        try:
            info = json.loads(raw_json)
        except ValueError:
            info = None
        if isinstance(info, dict) and isinstance(info.get("prompt"), str):
            return {**info, "source": "galaxysd"}
    raw = texts.get(PNG_PARAMETERS_KEY)
    if raw:
        return {**parse_a1111_parameters(raw), "source": "a1111"}
    raise GalaxySDValueError(f"PNG {Path(name).name!r} has no generation settings (no 'parameters' or "
                             f"'galaxysd' text chunk); load a PNG downloaded from GalaxySD Studio or AUTOMATIC1111")
