"""Image files with provenance: PNG (AUTOMATIC1111 ``parameters`` chunk + JSON), FITS, zip.

PNG
    Every generated PNG carries two text chunks:

    * ``parameters``: the AUTOMATIC1111 (A1111) convention read by many tools::

          sdss, smooth, {completely round galaxy:1.3}
          Negative prompt: merger
          Steps: 20, Sampler: DDIM, CFG scale: 6.5, Seed: 0, Size: 64x64, Model: galaxysd-mini

    * ``galaxysd``: JSON with every setting of the call (the pipeline's ``parameters`` dict plus
      prompt, seed, software version and creation time), from which the app restores its controls.

    :func:`read_png_parameters` prefers the JSON chunk and falls back to parsing the A1111 text, so
    settings can also be loaded from PNGs written by other A1111-style tools.

FITS
    :func:`fits_bytes` writes the image as a ``(3, H, W)`` cube (``float32`` in [0, 1] or
    ``uint8``), rows flipped so that FITS viewers (DS9, which put row 1 at the bottom) show the
    galaxy the right way up. The primary header records the provenance: ``PROMPT`` (long values
    continue on ``CONTINUE`` cards, the FITS long-string convention), ``NEGPROMP``, ``SEED``,
    ``STEPS``, ``GUIDANCE``, ``SAMPLER``, ``MODEL``, ``STRENGTH``, ``SOFTWARE``, ``DATE`` and the
    full JSON settings in ``GSDPARAM``.

Uploaded files (settings PNGs, start images) are validated by size, type and pixel count before
decoding; problems raise :class:`~galaxysd_core.errors.GalaxySDValueError` with a clear message.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from galaxysd_core.errors import GalaxySDValueError

__all__ = [
    "A1111_SAMPLER_NAMES", "PNG_PARAMETERS_KEY", "PNG_JSON_KEY", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS",
    "provenance", "format_a1111_parameters", "parse_a1111_parameters", "png_bytes", "save_png",
    "read_png_parameters", "fits_bytes", "save_fits", "read_fits", "zip_images", "load_uploaded_image",
    "image_file_name",
]

#: Scheduler names of :mod:`galaxysd_core.pipelines.pipeline_galaxysd` -> sampler names written by AUTOMATIC1111.
A1111_SAMPLER_NAMES: Dict[str, str] = {"ddim": "DDIM", "euler_a": "Euler a", "euler": "Euler",
                                       "dpmpp": "DPM++ 2M"}
_SAMPLER_FROM_A1111: Dict[str, str] = {v.lower(): k for k, v in A1111_SAMPLER_NAMES.items()}
_SAMPLER_FROM_A1111.update({"dpm++ 2m karras": "dpmpp", "euler_a": "euler_a", "ddim": "ddim"})
#: PNG text-chunk keys.
PNG_PARAMETERS_KEY = "parameters"
PNG_JSON_KEY = "galaxysd"
#: Largest accepted upload (bytes) and image (pixels).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A1111 parameter line: ``key: value`` items, values with commas quoted as JSON strings.
_A1111_PARAM_RE = re.compile(r'\s*(\w[\w \-/+]*):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

ImageLike = Union[Image.Image, np.ndarray]
FileLike = Union[str, os.PathLike, bytes, bytearray, BinaryIO]


# ----------------------------------------------------------------------------------- helpers
def _software() -> str:
    from galaxysd_core import __version__

    return f"galaxysd_core {__version__}"


def _to_uint8(image: ImageLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 array of a PIL image or array (float arrays are taken as [0, 1])."""
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


def _clean_json(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def provenance(prompt: str, seed: Optional[int], parameters: Optional[Mapping[str, Any]] = None,
               **extra: Any) -> Dict[str, Any]:
    """Everything known about how one image was made (the content of the ``galaxysd`` chunk).

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
        JSON-serialisable; ``software`` and ``created_utc`` are added when absent.
    """
    info: Dict[str, Any] = {"prompt": str(prompt), "seed": None if seed is None else int(seed)}
    for key, value in (parameters or {}).items():
        if key not in ("prompt", "seed"):
            info[key] = value
    info.update(extra)
    info.setdefault("software", _software())
    info.setdefault("created_utc", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _clean_json(info)


def _a1111_value(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if any(c in text for c in ',:"\n'):
        return json.dumps(text)
    return text


def format_a1111_parameters(info: Mapping[str, Any]) -> str:
    """The A1111 ``parameters`` text of a :func:`provenance` dict.

    Examples
    --------
    >>> print(format_a1111_parameters({"prompt": "sdss, smooth", "seed": 3, "num_inference_steps": 20,
    ...       "scheduler": "ddim", "guidance_scale": 6.5, "width": 64, "height": 64}))
    sdss, smooth
    Steps: 20, Sampler: DDIM, CFG scale: 6.5, Seed: 3, Size: 64x64
    """
    lines = [str(info.get("prompt", ""))]
    neg = info.get("negative_prompt")
    if isinstance(neg, str) and neg.strip():
        lines.append(f"Negative prompt: {neg}")
    items: List[Tuple[str, Any]] = []
    if info.get("num_inference_steps") is not None:
        items.append(("Steps", int(info["num_inference_steps"])))
    sched = info.get("scheduler")
    if sched:
        items.append(("Sampler", A1111_SAMPLER_NAMES.get(str(sched), str(sched))))
    if info.get("guidance_scale") is not None:
        items.append(("CFG scale", float(info["guidance_scale"])))
    if info.get("seed") is not None:
        items.append(("Seed", int(info["seed"])))
    if info.get("width") and info.get("height"):
        items.append(("Size", f"{int(info['width'])}x{int(info['height'])}"))
    model = info.get("model_name") or (Path(str(info["model"])).name if info.get("model") else None)
    if model:
        items.append(("Model", model))
    if info.get("strength") is not None and info.get("init_image"):
        items.append(("Denoising strength", float(info["strength"])))
    if info.get("software"):
        items.append(("Version", info["software"]))
    lines.append(", ".join(f"{k}: {_a1111_value(v)}" for k, v in items))
    return "\n".join(lines)


def _number(text: str, kind: type, what: str) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise GalaxySDValueError(f"PNG parameters: {what} {text!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise GalaxySDValueError(f"PNG parameters: {what} {text!r} is not finite")
    return value


def parse_a1111_parameters(text: str) -> Dict[str, Any]:
    """Settings from an A1111 ``parameters`` text (the inverse of :func:`format_a1111_parameters`).

    Returns
    -------
    dict
        ``prompt``, ``negative_prompt`` and, when present, ``num_inference_steps``, ``scheduler``
        (our name; unknown samplers are kept in ``sampler`` only), ``guidance_scale``, ``seed``,
        ``width``, ``height``, ``model_name``, ``strength``.

    Raises
    ------
    GalaxySDValueError
        For a text without a prompt, or a malformed number.
    """
    if not isinstance(text, str) or not text.strip():
        raise GalaxySDValueError("PNG 'parameters' chunk is empty")
    lines = text.strip().split("\n")
    params_line = ""
    if len(lines) > 1 and _A1111_PARAM_RE.findall(lines[-1]) and lines[-1].lstrip().startswith(
            ("Steps:", "Sampler:", "Seed:", "CFG scale:", "Size:", "Model:")):
        params_line = lines.pop()
    prompt_lines: List[str] = []
    neg_lines: List[str] = []
    in_neg = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:"):].strip()
        (neg_lines if in_neg else prompt_lines).append(line)
    out: Dict[str, Any] = {"prompt": "\n".join(prompt_lines).strip(), "negative_prompt": "\n".join(neg_lines).strip()}
    if not out["prompt"]:
        raise GalaxySDValueError("PNG 'parameters' chunk has no prompt")
    for key, raw in _A1111_PARAM_RE.findall(params_line):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        key = key.strip()
        if key == "Steps":
            out["num_inference_steps"] = _number(value, int, "Steps")
        elif key == "Sampler":
            out["sampler"] = value
            sched = _SAMPLER_FROM_A1111.get(value.lower())
            if sched:
                out["scheduler"] = sched
        elif key == "CFG scale":
            out["guidance_scale"] = _number(value, float, "CFG scale")
        elif key == "Seed":
            out["seed"] = _number(value, int, "Seed")
        elif key == "Size":
            m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", value)
            if not m:
                raise GalaxySDValueError(f"PNG parameters: Size {value!r} is not WIDTHxHEIGHT")
            out["width"], out["height"] = int(m.group(1)), int(m.group(2))
        elif key == "Model":
            out["model_name"] = value
        elif key == "Denoising strength":
            out["strength"] = _number(value, float, "Denoising strength")
            out["init_image"] = True
        elif key == "Version":
            out["software"] = value
    return out


# ----------------------------------------------------------------------------------- PNG
def png_bytes(image: ImageLike, prompt: str, seed: Optional[int], parameters: Optional[Mapping[str, Any]] = None,
              **extra: Any) -> bytes:
    """PNG file content with the ``parameters`` (A1111) and ``galaxysd`` (JSON) text chunks.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray
        RGB image (``uint8`` or float in [0, 1]).
    prompt, seed, parameters, **extra
        See :func:`provenance`.
    """
    info = provenance(prompt, seed, parameters, **extra)
    meta = PngImagePlugin.PngInfo()
    meta.add_text(PNG_PARAMETERS_KEY, format_a1111_parameters(info))
    meta.add_text(PNG_JSON_KEY, json.dumps(info, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(image), mode="RGB").save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def save_png(path: Union[str, os.PathLike], image: ImageLike, prompt: str, seed: Optional[int],
             parameters: Optional[Mapping[str, Any]] = None, **extra: Any) -> Path:
    """Write :func:`png_bytes` to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image, prompt, seed, parameters, **extra))
    return path


def _read_limited(file: FileLike, max_bytes: int, what: str) -> Tuple[bytes, str]:
    """Bytes of a path, bytes object or file-like (e.g. a Streamlit UploadedFile), at most ``max_bytes``."""
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
        the A1111 ``parameters`` chunk (see :func:`parse_a1111_parameters`). Key ``source`` says
        which (``"galaxysd"`` or ``"a1111"``).

    Raises
    ------
    GalaxySDValueError
        For a file that is too large, empty, not a PNG, corrupt, or has no generation settings.
    """
    data, name = _read_limited(file, max_bytes, "PNG file")
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


# ----------------------------------------------------------------------------------- FITS
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
    hdr["SOFTWARE"] = (str(info.get("software") or _software()), "software that wrote the file")
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
        See :func:`provenance`.
    dtype : {"float32", "uint8"}
        ``float32`` scales to [0, 1] (``BUNIT`` = ``'relative'``); ``uint8`` keeps 0-255.

    Notes
    -----
    Rows are flipped (FITS row 1 is the bottom of the image in viewers such as DS9).
    """
    from astropy.io import fits

    if dtype not in ("float32", "uint8"):
        raise GalaxySDValueError(f"FITS dtype must be 'float32' or 'uint8', got {dtype!r}")
    arr = _to_uint8(image)
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
    """
    from astropy.io import fits

    data, name = _read_limited(file, max_bytes, "FITS file")
    try:
        with fits.open(io.BytesIO(data)) as hdul:
            hdr = hdul[0].header
            cube = np.asarray(hdul[0].data)
            keys = {k: hdr[k] for k in ("PROMPT", "NEGPROMP", "SEED", "STEPS", "GUIDANCE", "SAMPLER", "MODEL",
                                        "STRENGTH", "SOFTWARE", "DATE", "GSDPARAM") if k in hdr}
    except OSError as exc:
        raise GalaxySDValueError(f"{Path(name).name!r} is not a readable FITS file: {exc}") from None
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
        names = {"PROMPT": "prompt", "NEGPROMP": "negative_prompt", "SEED": "seed", "STEPS": "num_inference_steps",
                 "GUIDANCE": "guidance_scale", "SAMPLER": "scheduler", "MODEL": "model_name", "STRENGTH": "strength",
                 "SOFTWARE": "software", "DATE": "created_utc"}
        info = {names[k]: v for k, v in keys.items() if k in names}
    return np.ascontiguousarray(image), info


# ----------------------------------------------------------------------------------- zip
def image_file_name(index: int, seed: Optional[int], stem: str = "galaxysd") -> str:
    """File stem of the ``index``-th image: ``galaxysd_003_seed42``."""
    return f"{stem}_{int(index):03d}" + (f"_seed{int(seed)}" if seed is not None else "")


def zip_images(items: Iterable[Any], *, include_fits: bool = True, fits_dtype: str = "float32",
               stem: str = "galaxysd") -> bytes:
    """One zip with a PNG (and FITS) per image and a ``manifest.json`` of all settings ("download all").

    Parameters
    ----------
    items : iterable
        Objects with attributes (or mappings with keys) ``image``, ``prompt``, ``seed`` and
        ``parameters``, e.g. :class:`galaxysd_core.studio.app_state.GalleryItem`.
    include_fits : bool
        Also write ``<name>.fits``.
    fits_dtype : {"float32", "uint8"}
    stem : str
        File name prefix.

    Returns
    -------
    bytes
        Zip archive content (deflated).

    Raises
    ------
    GalaxySDValueError
        When ``items`` is empty.
    """
    def get(item: Any, key: str) -> Any:
        return item[key] if isinstance(item, Mapping) else getattr(item, key)

    manifest: List[Dict[str, Any]] = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, item in enumerate(items):
            image, prompt, seed = get(item, "image"), get(item, "prompt"), get(item, "seed")
            params = get(item, "parameters") or {}
            name = image_file_name(i, seed, stem)
            zf.writestr(f"{name}.png", png_bytes(image, prompt, seed, params))
            if include_fits:
                zf.writestr(f"{name}.fits", fits_bytes(image, prompt, seed, params, dtype=fits_dtype))
            manifest.append({"file": f"{name}.png", **provenance(prompt, seed, params)})
        if not manifest:
            raise GalaxySDValueError("no images to put in the zip; generate some first")
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return buf.getvalue()


# ----------------------------------------------------------------------------------- uploads
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
    data, name = _read_limited(file, max_bytes, "image file")
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
